"""MS-CHAPv2 and EAP sign-ins from a NAS: the first factor relayed to the upstream RADIUS server
that holds the passwords (``[radius_upstream]``), then a push held until the phone answers.

MS-CHAPv2 (RFC 2759 in RFC 2548's attributes; a client with ``--mschap yes``): the lock is
checked first (a locked user's response is not relayed), then the request is relayed through
the node's one first-factor rule (``node.first_factor``): a Reject is a wrong password (the
upstream's verdict on that user's response, counted toward the lock as for PAP; no push, the
NAS gets the upstream's MS-CHAP-Error); an Accept starts an
approve-only push (no number: such a NAS shows nothing), held within the client's
``--hold-seconds``; approved, the NAS gets the upstream's MS-CHAP2-Success and MPPE keys
re-encrypted for it (``relay.accept_attributes``); refused or unanswered, an Access-Reject with
an MS-CHAP-Error (E=691). With ``--primary ntlm`` Active Directory checks the response instead
(``ntlm``, through the same rule) and OpenMFA makes the MS-CHAP2-Success and MPPE keys from
the PasswordHashHash it returns (``relay.mschap_accept``). The person asked is the User-Name
without a ``DOMAIN\\`` prefix (Windows clients add one); the upstream gets it as sent.

EAP (PEAP, EAP-TTLS, EAP-TLS; a client with ``--eap relay``): each round is relayed with the
NAS's State as it came, so the conversation lives at the upstream, not here: a round may reach
another node of the farm, or this node's next process after a restart, and it goes on (a
draining node answers those, but leaves a new conversation, a round without State, to the NAS's
next server: its last round would hold a push here). The upstream's Access-Challenge goes to
the NAS at once; its Access-Accept starts the push to the person it names in User-Name (the
inner identity of a tunnel), and the NAS's Access-Accept names that person (RFC 2865 §5.1, for
its accounting). An Access-Accept that names nobody is an Access-Reject (EAP-Failure), audited,
with no push: the request's User-Name is the outer identity, which the supplicant chooses freely
(outer "mallory", inner "alice" with alice's password would push to Mallory's phone). A refused
push is an Access-Reject with an EAP-Failure in place of the upstream's EAP-Success. The
upstream's Access-Reject is audited but not counted toward anyone's lock: the password is
checked inside the tunnel, which OpenMFA cannot see, and the outer identity is whatever the
supplicant says — anyone in reach of a Wi-Fi network could send rounds of garbage under a
victim's name and lock them out of every channel; a refusal of a round whose conversation the
upstream forgot (a restart) would count too. The upstream's own lockout (Active Directory's,
say) guards its passwords; a locked user's new conversation is still not relayed, and a refusal
never sends a push.

Policy rules apply as for PAP (channel ``radius``, the client's name, the NAS's address or the
Calling-Station-Id): a ``skip`` accepts once the upstream accepted, with no push (audited with
the rule's name); a rule that allows no push, or wants a numbered one (these NAS show no
number), refuses the push (an Access-Reject); no PIN can travel here, so a ``pin=required``
rule's ``pin_elsewhere`` says whether the push goes on without it or the sign-in is refused.

A relayed request held for a push when the node stops is answered at once with its refusal and
its push closed (``relay_rounds``, which says why and what is left out).

Invariants owned here: no push is ever sent before the upstream accepted the first factor, and
no Access-Accept leaves without an approved push (or the user's open bypass); the upstream's
silence is an Access-Reject and a log line, never a hang; no Reply-Message of OpenMFA's is
added (such NAS do not show it); every answer goes through the server's ``respond`` on the
commit thread, so a NAS's retransmission joins it and is never relayed twice; each request is
answered once (``relay_rounds.Answer``), also when its answer would be too long for a packet or
its task fails unexpectedly (an Access-Reject and the exception logged).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..core.verification import Decision, MethodKind, Reason
from ..errors import MalformedPacket, OpenMfaError, PrimaryUnavailable
from ..node import audit, pins
from ..node.authenticator import Attempt
from ..node.commit_queue import Result
from ..node.first_factor import PasswordCheck
from ..node.radius_clients import RadiusClient
from ..store.changes import AuditEvent
from . import packet as p
from . import relay as r
from .ntlm import NtlmAuth
from .primary import exchange
from .relay_rounds import Answer, HeldRounds
from .replies import NOWHERE, Reply, Respond, Where

if TYPE_CHECKING:
    from .flows import AccessFlows

log = logging.getLogger("openmfa.radius")
SAY_EVERY = 60.0
"""A refusal that an administrator can fix is logged once a minute per client and kind."""


class _Relayed:
    """A first-factor backend (``node.first_factor.PasswordCheck``) that relays one request:
    the upstream's answer is kept for the reply to the NAS."""

    def __init__(self, upstream: dict[str, Any], attributes: list[tuple[int, bytes]]) -> None:
        self.upstream = upstream
        self.attributes = attributes
        self.authenticator = os.urandom(16)
        self.reply: p.Packet | None = None

    async def check(self, user: str, password: str) -> bool:
        reply = await exchange(self.upstream, self.attributes, self.authenticator)
        if reply.ma_at < 0 and r.is_eap(self.attributes):
            # RFC 3579 §3.2: an answer to EAP carries one (checked by ``exchange``)
            raise PrimaryUnavailable("the upstream answered EAP without a Message-Authenticator")
        self.reply = reply
        return reply.code == p.ACCESS_ACCEPT


class _NtlmCheck:
    """A first-factor backend that asks Active Directory (``ntlm.NtlmAuth``) about one
    MS-CHAPv2 response; the PasswordHashHash or the refusal's MS-CHAP error code is kept."""

    def __init__(self, auth: NtlmAuth, request: r.MsChap) -> None:
        self.auth, self.request = auth, request
        self.hash_hash: bytes | None = None
        self.error = 691

    async def check(self, user: str, password: str) -> bool:
        q = self.request
        said = await self.auth.verify(q.user, q.challenge, q.response)
        self.hash_hash, self.error = said.hash_hash, said.error or 691
        return said.hash_hash is not None


class RelayFlows:
    def __init__(self, flows: AccessFlows, config: Config) -> None:
        """``config``: its ``[radius_upstream]`` and ``[ntlm]`` tables."""
        self.flows = flows
        self.upstream: dict[str, Any] = config.values["radius_upstream"]
        self._ntlm_config: dict[str, Any] = config.values["ntlm"]
        self._ntlm: NtlmAuth | None = None
        self._said: dict[tuple[str, str], float] = {}
        self.rounds = HeldRounds(flows)
        """The requests between the upstream's Accept and their answer (a stop ends them)."""

    @staticmethod
    def wants(pkt: p.Packet) -> bool:
        """Whether a request without a User-Password is MS-CHAP or EAP (relayed here)."""
        return r.is_eap(pkt.attributes) or r.is_mschap(pkt.attributes)

    @staticmethod
    def answered_while_draining(client: RadiusClient, pkt: p.Packet) -> bool | None:
        """EAP rounds of a conversation in progress (with a State) are answered by a draining
        node (the conversation lives upstream); a new conversation is not, nor MS-CHAPv2: each
        would hold a push here. None for other requests."""
        if pkt.get(p.USER_PASSWORD) is not None:
            return None
        if r.is_eap(pkt.attributes):
            return client.eap == "relay" and pkt.get(p.STATE) is not None
        return False if r.is_mschap(pkt.attributes) else None

    def end_rounds(self) -> None:
        """The node stops: answer the requests held for a push now (``relay_rounds``)."""
        self.rounds.end()

    def handle(self, client: RadiusClient, pkt: p.Packet, respond: Respond, nas: str = "") -> None:
        """On the commit thread: refuse at once what cannot be relayed; the rest goes to the
        event loop. ``nas``: the sender's address (policy rules match it, as for PAP)."""
        station = pkt.get(p.CALLING_STATION_ID)
        where = (nas, station.decode("utf-8", "replace") if station else "", p.origin_of(pkt))
        eap = r.is_eap(pkt.attributes)
        plain = r.eap_split(r.eap_failure(r.eap_identifier(pkt.attributes))) if eap else []
        answer = Answer(respond, pkt, _reply(p.ACCESS_REJECT, plain), client.name)
        if eap:
            self._eap(client, pkt, answer, where)
        else:
            self._mschap(client, pkt, answer, where)

    def _relay(
        self,
        client: RadiusClient,
        respond: Respond,
        work: Callable[..., Coroutine[Any, Any, None]],
        *args: object,
    ) -> None:
        """Run ``work(*args, respond)`` on the event loop; should it fail unexpectedly (the
        audit's database, a bad ``[radius_upstream] address``), the request is still answered:
        an Access-Reject (``Answer.too_long``, unless answered already) and the exception
        logged."""
        self.flows._on_loop(self._guarded, client, respond, work, args)

    async def _guarded(
        self,
        client: RadiusClient,
        respond: Respond,
        work: Callable[..., Coroutine[Any, Any, None]],
        args: tuple[object, ...],
    ) -> None:
        try:
            await work(*args, respond)
        except Exception:
            log.exception("RADIUS client %s: a relayed request failed; rejected", client.name)
            if isinstance(respond, Answer):
                self._answer(respond, respond.too_long)

    # -- MS-CHAPv2 ----------------------------------------------------------------------

    def _mschap(self, client: RadiusClient, pkt: p.Packet, respond: Respond, where: Where) -> None:
        try:
            request = r.parse_mschap(pkt)
        except MalformedPacket as exc:
            self.say(client, "malformed-mschap", "an MS-CHAP request that cannot be read: %s", exc)
            respond(_reply(p.ACCESS_REJECT, []))
            return
        if not client.mschap:
            self.say(
                client,
                "mschap-off",
                "MS-CHAPv2 request rejected: enable it with `openmfa radius client add %s "
                "--primary radius --mschap yes ...` (remove and add the client again)",
                client.name,
            )
            respond(_reply(p.ACCESS_REJECT, r.mschap_reject(None, request.ident)))
            return
        if client.primary == "ntlm":
            self._relay(client, respond, self._mschap_ntlm, client, pkt, request, where)
            return
        relayed = r.upstream_attributes(pkt, request.attributes)
        self._relay(client, respond, self._mschap_relay, client, pkt, request, relayed, where)

    async def _mschap_relay(
        self,
        client: RadiusClient,
        pkt: p.Packet,
        request: r.MsChap,
        relayed: list[tuple[int, bytes]],
        where: Where,
        respond: Respond,
    ) -> None:
        refused = _reply(p.ACCESS_REJECT, r.mschap_reject(None, request.ident))
        asked = self._attempt(client, request.person, where)
        checked = self._checked(asked, "radius mschapv2")
        backend = _Relayed(self.upstream, relayed)
        decision = await self._first(client, backend, asked, checked, refused, respond)
        if decision is None:
            return
        if not decision.accepted or backend.reply is None:
            ms_error = r.mschap_reject(backend.reply, request.ident)
            self._answer(respond, _reply(p.ACCESS_REJECT, ms_error))
            return
        keys = self._keys(backend, client, pkt)
        await self._second_factor(
            client, asked, backend.reply, keys, refused, respond, skipped=_skipped(decision)
        )

    async def _mschap_ntlm(
        self,
        client: RadiusClient,
        pkt: p.Packet,
        request: r.MsChap,
        where: Where,
        respond: Respond,
    ) -> None:
        """``--primary ntlm``: Active Directory checks the response (``ntlm``); OpenMFA makes
        the MS-CHAP2-Success and the MPPE keys from the PasswordHashHash it returns."""
        refused = _reply(p.ACCESS_REJECT, r.mschap_reject(None, request.ident))
        asked = self._attempt(client, request.person, where)
        try:
            backend = _NtlmCheck(self._ntlm_auth(), request)
        except ValueError as exc:
            log.error("[ntlm] is not usable (%s); MS-CHAPv2 for %s rejected", exc, client.name)
            self._answer(respond, refused)
            return
        checked = self._checked(asked, "ntlm mschapv2")
        decision = await self._first(client, backend, asked, checked, refused, respond)
        if decision is None:
            return
        if not decision.accepted or backend.hash_hash is None:
            error = backend.error if backend.hash_hash is None else 691
            ms_error = r.mschap_reject(None, request.ident, error)
            self._answer(respond, _reply(p.ACCESS_REJECT, ms_error))
            return
        accept = r.mschap_accept(request, backend.hash_hash, client.secret, pkt.authenticator)
        accepted = _reply(p.ACCESS_ACCEPT, accept)
        await self._push(client, asked, accepted, refused, respond, _skipped(decision))

    async def _first(
        self,
        client: RadiusClient,
        backend: PasswordCheck,
        asked: Attempt,
        checked: AuditEvent,
        refused: Reply,
        respond: Respond,
    ) -> Decision | None:
        """The MS-CHAPv2 response checked under the one first-factor rule (the lock first, a
        wrong password counted); None when it could not be, the request answered with
        ``refused`` and a log line."""
        try:
            return await self.flows.first.check(backend, asked, "", checked)
        except PrimaryUnavailable as exc:
            log.error("MS-CHAPv2 for RADIUS client %s: %s; rejected", client.name, exc)
        except OpenMfaError as exc:
            log.error("MS-CHAPv2 for RADIUS client %s failed: %s", client.name, exc.message)
        self._answer(respond, refused)
        return None

    def _ntlm_auth(self) -> NtlmAuth:
        if self._ntlm is None:
            c = self._ntlm_config
            self._ntlm = NtlmAuth(
                c["ntlm_auth"],
                domain=c["domain"],
                smb_conf=c["smb_conf"],
                timeout=float(c["timeout_seconds"]),
                max_concurrent=int(c["max_concurrent"]),
            )
        return self._ntlm

    # -- EAP ----------------------------------------------------------------------------

    def _eap(self, client: RadiusClient, pkt: p.Packet, respond: Respond, where: Where) -> None:
        ident = r.eap_identifier(pkt.attributes)
        refused = _reply(p.ACCESS_REJECT, r.eap_split(r.eap_failure(ident)))
        if client.eap != "relay":
            self.say(
                client,
                "eap-off",
                "EAP request rejected: enable it with `openmfa radius client add %s --primary "
                "radius --eap relay ...` (remove and add the client again)",
                client.name,
            )
            respond(refused)
            return
        if pkt.ma_at < 0:  # RFC 3579 §3.2: EAP without a Message-Authenticator is not taken
            self.say(client, "eap-no-ma", "EAP request without a Message-Authenticator: %s", "")
            respond(refused)
            return
        try:
            message = r.eap_join(pkt.attributes)
        except MalformedPacket as exc:
            self.say(client, "eap-malformed", "an EAP request that cannot be read: %s", exc)
            respond(refused)
            return
        relayed = r.upstream_attributes(pkt, r.eap_round(pkt, message))
        self._relay(client, respond, self._eap_relay, client, pkt, relayed, refused, where)

    async def _eap_relay(
        self,
        client: RadiusClient,
        pkt: p.Packet,
        relayed: list[tuple[int, bytes]],
        refused: Reply,
        where: Where,
        respond: Respond,
    ) -> None:
        outer = (pkt.get(p.USER_NAME) or b"").decode(errors="replace")
        try:
            if pkt.get(p.STATE) is None and outer and await self._locked(client, outer):
                self._answer(respond, refused)  # a new conversation of a locked user
                return
            backend = _Relayed(self.upstream, relayed)
            await backend.check(outer, "")
        except PrimaryUnavailable as exc:
            log.error("EAP for RADIUS client %s: %s; rejected", client.name, exc)
            self._answer(respond, refused)
            return
        except OpenMfaError as exc:
            log.error("EAP for RADIUS client %s failed: %s", client.name, exc.message)
            self._answer(respond, refused)
            return
        reply = backend.reply
        assert reply is not None
        if reply.code == p.ACCESS_CHALLENGE:
            self._answer(respond, _reply(p.ACCESS_CHALLENGE, r.challenge_attributes(reply)))
            return
        if reply.code != p.ACCESS_ACCEPT:
            ident = r.eap_identifier(pkt.attributes)
            self._answer(respond, _reply(p.ACCESS_REJECT, r.eap_reject(reply, ident)))
            await self._refused(client, outer)
            return
        failure = _reply(
            p.ACCESS_REJECT, r.eap_split(r.eap_failure(r.eap_success_identifier(reply)))
        )
        inner = reply.get(p.USER_NAME)
        if not inner:
            await self._unnamed(client, outer, failure, respond)
            return
        named = inner.decode(errors="replace")
        user = named.rpartition("\\")[2]  # (PEAP-MSCHAPv2 from Windows: DOMAIN\user)
        asked = self._attempt(client, user, where)
        event = self._checked(asked, "radius eap")
        await asyncio.to_thread(audit.record, self.flows.store, event)
        # A policy rule's skip (a trusted network) after the upstream's Accept: no push.
        skip = await self.flows.queue.submit(replace(asked, first_factor_passed=True))
        if isinstance(skip, OpenMfaError):
            raise skip
        keys = self._keys(backend, client, pkt)
        await self._second_factor(
            client, asked, reply, keys, failure, respond, eap=True, skipped=_skipped(skip)
        )

    async def _unnamed(
        self, client: RadiusClient, outer: str, failure: Reply, respond: Respond
    ) -> None:
        """The upstream's EAP Access-Accept names nobody: an Access-Reject (EAP-Failure), audited,
        no push. The outer identity is not whom the tunnel authenticated — the supplicant
        chooses it freely, so a push to it would go to whoever holds the phone of a name they
        typed (Mallory with alice's password, outer identity "mallory")."""
        self.say(
            client,
            "eap-unnamed",
            "the upstream's EAP Access-Accept names no user (User-Name), so whom to ask is "
            "unknown; rejected%s. Make the upstream name the person the tunnel authenticated: "
            "in FreeRADIUS, in the inner-tunnel site's post-auth `update outer.session-state "
            "{ &User-Name := &User-Name }` and in the default site's post-auth `if "
            "(&session-state:User-Name) { update reply { &User-Name := "
            "&session-state:User-Name } }` (README, MS-CHAPv2 and EAP)",
            "",
        )
        self._answer(respond, failure)
        asked = self._attempt(client, outer)
        event = AuditEvent(
            "primary",
            "rejected",
            user_name=outer,
            client=asked.client,
            request_id=asked.request_id,
            reason="upstream_unnamed",
            detail="radius eap: the upstream's Access-Accept named no user (no push)",
        )
        await asyncio.to_thread(audit.record, self.flows.store, event)

    async def _locked(self, client: RadiusClient, user: str) -> bool:
        """Whether the person is locked (then audited, and the upstream is not asked)."""
        asked = replace(self._attempt(client, user), before_first_factor=True, push=False)
        result = await self.flows.queue.submit(asked)
        if isinstance(result, OpenMfaError):
            raise result
        return result.reason is Reason.LOCKED

    async def _refused(self, client: RadiusClient, outer: str) -> None:
        """The upstream refused an EAP conversation: audited for its outer identity, counted
        toward no lock (see the module's docstring)."""
        asked = self._attempt(client, outer)
        event = AuditEvent(
            "primary",
            "rejected",
            user_name=outer,
            client=asked.client,
            request_id=asked.request_id,
            reason="upstream_rejected",
            detail="radius eap (not counted toward the lock)",
        )
        try:
            await asyncio.to_thread(audit.record, self.flows.store, event)
        except OpenMfaError as exc:
            log.error("could not audit a refused EAP conversation: %s", exc.message)

    # -- both: the push -------------------------------------------------------------------

    async def _second_factor(
        self,
        client: RadiusClient,
        asked: Attempt,
        reply: p.Packet,
        keys: r.Keys,
        refused: Reply,
        respond: Respond,
        *,
        eap: bool = False,
        skipped: bool = False,
    ) -> None:
        """After the upstream's Accept: the Access-Accept made from it, once the push is
        approved (at once when a policy rule ``skipped`` the second factor)."""
        user = asked.user
        try:
            accept = _reply(
                p.ACCESS_ACCEPT,
                r.accept_attributes(
                    reply, keys, r.allow_list(client.reply_attributes), eap=eap, user=user
                ),
            )
        except (MalformedPacket, ValueError) as exc:
            log.error(
                "the upstream's Access-Accept for RADIUS client %s cannot be passed on (%s): "
                "is [radius_upstream] secret the upstream's?",
                client.name,
                exc,
            )
            self._answer(respond, refused)
            return
        await self._push(client, asked, accept, refused, respond, skipped)

    async def _push(
        self,
        client: RadiusClient,
        asked: Attempt,
        accept: Reply,
        refused: Reply,
        respond: Respond,
        skipped: bool = False,
    ) -> None:
        """The person's approve-only push, held (``flows._hold`` counts it in ``holding``):
        approved → ``accept``, else ``refused``. None once the node stops (``relay_rounds``).
        The policy rule decides on the push attempt (channel ``radius``, this client, the NAS
        address and Calling-Station-Id): a rule whose methods exclude push, or that wants a
        numbered push (these NAS show no number), refuses it (``method_not_allowed``, audited
        with the rule's name); a ``pin=required`` rule's ``pin_elsewhere`` says whether the
        push goes on with no PIN (none can travel here) or is refused."""
        user = asked.user
        if skipped:
            self._answer(respond, accept)  # audited where the rule skipped it
            return
        if self.rounds.stopping:
            self._answer(respond, refused)
            return
        if not await asyncio.to_thread(self._has_push, user):
            self.say(
                client,
                "no-push",
                "%s has no push device: MS-CHAPv2 and EAP sign-ins need one (rejected)",
                user,
            )
            self._answer(respond, refused)
            return
        held = replace(client, push="hold")
        answer = self.rounds.start(respond, accept, refused)
        attempt, callback, _ = self.flows._job(held, user, "push", answer, _where(asked))
        attempt = replace(attempt, pin=pins.ELSEWHERE)
        self.flows.queue.submit_callback(attempt, self.rounds.decided(answer, callback))

    def _has_push(self, user: str) -> bool:
        try:
            return any(m.kind == MethodKind.PUSH for m in self.flows.accounts.list_methods(user))
        except OpenMfaError:
            return False

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _checked(asked: Attempt, how: str) -> AuditEvent:
        """The audit event of a first factor the upstream or the domain accepted."""
        return AuditEvent(
            "primary",
            "accepted",
            user_name=asked.user,
            client=asked.client,
            request_id=asked.request_id,
            detail=how,
        )

    def _keys(self, backend: _Relayed, client: RadiusClient, pkt: p.Packet) -> r.Keys:
        secret = self.upstream["secret"].encode()
        return r.Keys(secret, backend.authenticator, client.secret, pkt.authenticator)

    def _attempt(self, client: RadiusClient, user: str, where: Where = NOWHERE) -> Attempt:
        f = self.flows
        return Attempt(
            user,
            "",
            client="radius:" + client.name,
            request_id=f"radius-{f._run}-{next(f._ids)}",
            push=False,
            channel="radius",
            channel_client=client.name,
            network=where[0],
            station=where[1],
            source=where[2],
        )

    def _answer(self, respond: Respond, answer: Reply) -> None:
        """From the event loop: answer on the commit thread."""
        self.flows.queue.call(lambda: respond(answer))

    def say(self, client: RadiusClient, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        key = (client.name, kind)
        if now - self._said.get(key, -SAY_EVERY) >= SAY_EVERY:
            if len(self._said) > 10_000:
                self._said.clear()
            self._said[key] = now
            log.warning("RADIUS client %s: " + message, client.name, *args)


def _reply(code: int, attributes: list[tuple[int, bytes]]) -> Reply:
    return Reply(code, attributes)


def _skipped(decision: Result) -> bool:
    """A policy rule skipped the second factor (accepted ``skipped``, audited with its name)."""
    return isinstance(decision, Decision) and decision.accepted and decision.reason is _SKIPPED


def _where(asked: Attempt) -> Where:
    return (asked.network, asked.station, asked.source)


_SKIPPED = Reason.SKIPPED
