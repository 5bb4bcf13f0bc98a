"""What a node's RADIUS server carries over a restart in place, to the next process of the same
node: the challenges it opened that are not finished (someone typing a code, a phone about to
approve), the answers it sent lately (a gateway's retransmission gets the same answer, not a
second decision: RFC 5080 §2.2.2; among them the refusals a stop gives the relayed requests it
held for a push, ``relay_rounds``) and the pushes it opened at the farm's master.

The process that stops writes it after its last answer; the next one reads it at start, before
its first request, and removes it. It is sealed under the node's key (``SecretBox``, mode 0600
beside the data file). Only this node's next process reads it, once: a State stays single-use,
and a State one node issued is still no good at another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import msgspec

from ..errors import KeyFileError
from ..store.database import Store

log = logging.getLogger("openmfa.radius")

FILE = "radius-carry.sealed"
CONTEXT = "radius-carry"


class OpenState(msgspec.Struct, array_like=True, frozen=True):
    state: bytes
    user: str
    client: str
    expires: float
    """Wall-clock time (a State is good until then)."""
    push: str


class SentAnswer(msgspec.Struct, array_like=True, frozen=True):
    address: list[str | int]
    identifier: int
    authenticator: bytes
    reply: bytes
    at: float
    """Wall-clock time the request arrived."""


class Carried(msgspec.Struct, kw_only=True):
    written: float
    states: list[OpenState] = []
    answers: list[SentAnswer] = []
    remote_pushes: dict[str, float] = {}
    """Push requests opened at the master, and until when (wall clock) to ask it about them."""


def save(store: Store, carried: Carried) -> None:
    """Write what the next process takes over (replacing any older file)."""
    path = store.data_dir.root / FILE
    sealed = store.box.seal(msgspec.msgpack.encode(carried), CONTEXT)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(sealed)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def take(store: Store) -> Carried | None:
    """What the previous process left, once (the file is removed); None when there is none or
    it cannot be read (a warning says why: the sign-ins it held start again)."""
    path = store.data_dir.root / FILE
    try:
        sealed = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # another user's file, say: the node starts all the same
        log.warning("the RADIUS sign-ins left by the previous process are not taken over: %s", exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    try:
        carried = msgspec.msgpack.decode(store.box.open(sealed, CONTEXT), type=Carried)
    except (KeyFileError, msgspec.DecodeError) as exc:
        log.warning("the RADIUS sign-ins left by the previous process are not taken over: %s", exc)
        return None
    if carried.written > time.time() + 60:
        log.warning("the RADIUS carry-over is dated in the future; not taken over")
        return None
    return carried
