"""Passkeys (WebAuthn) for the User Portal: registered by a signed-in user, then a second
factor that needs no typing (WCAG 2.2's accessible authentication).

The node does the relying party's checks (``webauthn``, py_webauthn): each ceremony's challenge
is random, sealed with the data key into a short-lived token the portal hands back with the
browser's answer (so any node of a farm can check it, and nothing is kept meanwhile); user
verification is required; the origin must be one of ``[portal] passkey_origins`` (empty: the
page's origin the portal states), and the relying party id is that origin's host unless
``[portal] passkey_rp_id`` names a parent domain.

A passkey is a method of kind ``passkey``: its credential id and public key are sealed like any
method's secret. An authenticator that counts its signatures has its count kept (the method's
``counter``, moved only forward as an HOTP counter is, from the count it registered with): an
answer whose count is not above the last one — replayed, or from a cloned authenticator — is
refused. Every authenticator's answer is taken once: the challenge's issue second moves
forward like a TOTP step (``last_step``), so an answer is not taken twice, nor one to a challenge
older than the last one taken. It answers no typed code
(RADIUS, the SDK's authenticate): only the portal's passkey ceremony.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..config import Config
from ..contract import MethodView
from ..core.verification import MethodKind
from ..errors import InvalidInput
from ..store import tables as t
from ..store.changes import Change
from .accounts import Accounts, Actor, _check_text
from .auth_state import counter_forward, step_forward
from .portal import CHALLENGE, PortalTokens

CEREMONY_MS = 120_000
MAX_PASSKEYS = 10


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Passkeys:
    def __init__(self, accounts: Accounts, tokens: PortalTokens, config: Config) -> None:
        self.accounts = accounts
        self.tokens = tokens
        p = config.values["portal"]
        self.rp_id = str(p["passkey_rp_id"])
        self.origins = [str(o) for o in p["passkey_origins"]]
        self.rp_name = str(config.values["enroll"]["issuer"])

    def _relying_party(self, origin: str) -> str:
        if self.origins and origin not in self.origins:
            raise InvalidInput(
                f"passkeys are not set up for {origin}: add it to [portal] passkey_origins"
            )
        host = urlsplit(origin).hostname or ""
        rp_id = self.rp_id or host
        if host != rp_id and not host.endswith("." + rp_id):
            raise InvalidInput(f"[portal] passkey_rp_id {rp_id!r} is not {host!r} or its parent")
        return rp_id

    def stored(self, user: str) -> list[tuple[str, bytes, bytes]]:
        """The user's passkeys: (method id, credential id, public key)."""
        user_id = self.accounts.user_id(user)
        store = self.accounts.store
        with store.read() as conn:
            rows = conn.execute(
                select(t.methods.c.id, t.methods.c.secret_enc).where(
                    t.methods.c.user_id == user_id, t.methods.c.kind == str(MethodKind.PASSKEY)
                )
            ).all()
        out = []
        for method_id, sealed in rows:
            data = json.loads(store.box.open(bytes(sealed), method_id))
            out.append((method_id, _unb64u(data["id"]), _unb64u(data["key"])))
        return out

    def _challenge(
        self, user: str, client: str, purpose: str, origin: str, rp_id: str
    ) -> tuple[bytes, str, float]:
        challenge = secrets.token_bytes(32)
        extra = {"c": _b64u(challenge), "o": origin, "r": rp_id, "p": purpose}
        token, expires = self.tokens.issue(CHALLENGE, user, client, time.time(), extra)
        return challenge, token, expires

    def _opened(self, token: str, user: str, client: str, purpose: str) -> dict[str, str]:
        grant = self.tokens.check(token, CHALLENGE, client, time.time())
        extra = dict(grant.extra or {})
        if grant.user != user or extra.get("p") != purpose:
            raise InvalidInput("this passkey challenge is not this sign-in's; start again")
        extra["issued"] = str(int(grant.issued_at))
        return extra

    # -- registration (a signed-in user) --------------------------------------------------

    def registration(self, user: str, client: str, origin: str) -> tuple[str, str, float]:
        rp_id = self._relying_party(origin)
        have = self.stored(user)
        if len(have) >= MAX_PASSKEYS:
            raise InvalidInput(f"at most {MAX_PASSKEYS} passkeys a user; remove one first")
        challenge, token, expires = self._challenge(user, client, "register", origin, rp_id)
        options = generate_registration_options(
            rp_id=rp_id,
            rp_name=self.rp_name,
            user_name=user,
            user_id=self.accounts.user_id(user).to_bytes(8, "big"),
            challenge=challenge,
            timeout=CEREMONY_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for _, c, _ in have],
        )
        return options_to_json(options), token, expires

    def register(
        self, user: str, client: str, token: str, credential: str, label: str, actor: Actor
    ) -> MethodView:
        extra = self._opened(token, user, client, "register")
        try:
            done = verify_registration_response(
                credential=credential,
                expected_challenge=_unb64u(extra["c"]),
                expected_rp_id=extra["r"],
                expected_origin=extra["o"],
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"the passkey could not be registered ({type(exc).__name__}); try again"
            ) from None
        label = _check_text("label", label or "passkey")
        user_id = self.accounts.user_id(user)
        method_id = "k" + secrets.token_hex(6)
        data = json.dumps(
            {"id": _b64u(done.credential_id), "key": _b64u(done.credential_public_key)}
        ).encode()
        now = time.time()
        payload: dict[str, Any] = {
            "id": method_id,
            "user_id": user_id,
            "kind": str(MethodKind.PASSKEY),
            "label": label,
            "digits": 6,
            "period": 30,
            "algorithm": "SHA1",
            "at": now,
            "secret_enc": self.accounts.store.box.seal(data, method_id).hex(),
            # The count the authenticator registered with: a later answer must be above it
            # (WebAuthn L3 7.1 step 27), or it comes from a clone.
            "counter": int(done.sign_count),
        }
        event = self.accounts._event(
            "method.add", user, actor, method_id=method_id, detail="passkey"
        )
        self.accounts.writer.commit([Change("method.add", payload)], [event])
        return MethodView(
            id=method_id,
            kind=str(MethodKind.PASSKEY),
            label=label,
            digits=6,
            period=30,
            algorithm="SHA1",
            created_at=now,
        )

    # -- sign-in (the second factor) --------------------------------------------------------

    def authentication(self, user: str, client: str, origin: str) -> tuple[str, str, float]:
        rp_id = self._relying_party(origin)
        have = self.stored(user)
        if not have:
            raise InvalidInput(f"user {user!r} has no passkey; use a code")
        challenge, token, expires = self._challenge(user, client, "sign-in", origin, rp_id)
        options = generate_authentication_options(
            rp_id=rp_id,
            challenge=challenge,
            timeout=CEREMONY_MS,
            allow_credentials=[PublicKeyCredentialDescriptor(id=c) for _, c, _ in have],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json(options), token, expires

    def authenticate(self, user: str, client: str, token: str, credential: str) -> str | None:
        """The method id of the passkey that signed the challenge, or None."""
        extra = self._opened(token, user, client, "sign-in")
        try:
            raw_id = _unb64u(str(json.loads(credential)["rawId"]))
        except (ValueError, KeyError, TypeError):
            return None
        store = self.accounts.store
        ms = t.method_state
        for method_id, credential_id, public_key in self.stored(user):
            if not secrets.compare_digest(credential_id, raw_id):
                continue
            with store.read() as conn:
                seen = conn.scalar(select(ms.c.counter).where(ms.c.method_id == method_id)) or 0
            try:
                verified = verify_authentication_response(
                    credential=credential,
                    expected_challenge=_unb64u(extra["c"]),
                    expected_rp_id=extra["r"],
                    expected_origin=extra["o"],
                    credential_public_key=public_key,
                    credential_current_sign_count=seen,
                    require_user_verification=True,
                )
            except (WebAuthnException, ValueError, KeyError, TypeError):
                return None  # a wrong signature, or a sign count not above the last one
            with store.write() as conn:
                # Each challenge is taken once, and none issued before the last one taken
                # (its issue second, kept as a TOTP step is): an answer replayed while its
                # challenge lives is refused even from an authenticator that does not count.
                taken = conn.execute(step_forward(), {"mid": method_id, "v": int(extra["issued"])})
                if taken.rowcount != 1:
                    return None
                if verified.new_sign_count or seen:
                    # Authenticators that count: each answer's count is taken once (a
                    # cloned one is refused), even when two arrive at the same moment.
                    moved = conn.execute(
                        counter_forward(), {"mid": method_id, "v": verified.new_sign_count}
                    )
                    if moved.rowcount != 1:
                        return None
            return method_id
        return None
