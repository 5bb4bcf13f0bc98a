"""How a device is woken for a new push request: one interface, several channels.

``send(device_id, subscription, wake_up)`` answers ``Delivered``, ``Gone`` (the channel will
never reach this device again) or ``RetryAfter``. The wake-up carries only the request id; the
device then fetches the request itself with a signed poll (so a channel sees nothing secret and
a lost wake-up costs only time).

- ``LongPoll``: the device's own held poll on this service. Always on; no third party at all.
- ``WebPush``: RFC 8030 delivery, RFC 8291 message encryption (aes128gcm), RFC 8292 VAPID, with
  ``pywebpush``. The same sender serves browsers' push services and UnifiedPush distributors
  (ntfy, NextPush), so a phone needs no Google or Apple service. Firebase and APNs fit behind
  the same interface (an FCM HTTP v1 or APNs sender) and are not shipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from ..sdk.models import WebPushSubscription

log = logging.getLogger("openmfa.mobile")


@dataclass(frozen=True, slots=True)
class Delivered:
    pass


@dataclass(frozen=True, slots=True)
class Gone:
    why: str


@dataclass(frozen=True, slots=True)
class RetryAfter:
    seconds: float
    why: str = ""


Sent = Delivered | Gone | RetryAfter


class PushProvider(Protocol):
    name: str
    public_key: str

    async def send(
        self, device_id: str, subscription: WebPushSubscription | None, wake_up: dict[str, str]
    ) -> Sent: ...


class WebPush:
    """RFC 8030/8291/8292 through ``pywebpush`` (run in a worker thread: it is synchronous)."""

    name = "webpush"

    def __init__(self, vapid_key_file: Path, subject: str, *, allow_http: bool = False) -> None:
        from py_vapid import Vapid

        self.vapid = Vapid.from_file(str(vapid_key_file))
        self.subject = subject
        self.allow_http = allow_http
        from cryptography.hazmat.primitives import serialization

        from ..core.push import b64u

        self.public_key = b64u(
            self.vapid.public_key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        """The application server key devices subscribe with (base64url, uncompressed)."""

    async def send(
        self, device_id: str, subscription: WebPushSubscription | None, wake_up: dict[str, str]
    ) -> Sent:
        if subscription is None:
            return Gone("the device has no WebPush subscription")
        url = urlsplit(subscription.endpoint)
        if url.scheme != "https" and not (self.allow_http and url.scheme == "http"):
            return Gone("a WebPush endpoint must be https")
        return await asyncio.to_thread(self._send, subscription, json.dumps(wake_up))

    def _send(self, s: WebPushSubscription, data: str) -> Sent:
        from pywebpush import WebPushException, webpush

        url = urlsplit(s.endpoint)
        claims = {"sub": self.subject, "aud": f"{url.scheme}://{url.netloc}"}
        try:
            r = webpush(
                {"endpoint": s.endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth}},
                data=data,
                vapid_private_key=self.vapid,
                vapid_claims=claims,
                ttl=120,
                headers={"Urgency": "high"},
                timeout=10,
                content_encoding="aes128gcm",
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (404, 410):
                return Gone(f"the push service no longer knows this device ({status})")
            if status == 429 and exc.response is not None:
                after = exc.response.headers.get("Retry-After", "30")
                return RetryAfter(
                    float(after)
                    if after.isascii() and after.isdigit() and len(after) < 9
                    else 30.0,
                    "rate limited",
                )
            return RetryAfter(5.0, str(exc)[:200])
        except Exception as exc:  # the push service is unreachable: a wake-up is best effort
            return RetryAfter(5.0, str(exc)[:200])
        if isinstance(r, bool) or 200 <= r.status_code < 300:
            return Delivered()
        return RetryAfter(5.0, f"the push service answered {r.status_code}")
