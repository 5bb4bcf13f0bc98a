"""Policy rules: who must prove what, by channel, client, group and source network — the rule
model, its one validation, and the evaluator it is compiled into (pure: no I/O, no clock).

Invariants owned here:
- the rules are an ordered list; the first rule whose every condition matches decides, and a
  condition a rule does not set matches everything. After the administrators' rules comes the
  ``default`` rule, which always exists, matches everything and decides what a node did before
  rules existed: every method, the second factor always, ``[policy]``'s lockout;
- a rule that skips the second factor with no source network is "no second factor from
  everywhere": ``check_rule`` refuses it unless the administrator said so (``allow_no_mfa``);
- a source network condition matches only an address the channel vouches for (``Context``): a
  request with no such address never matches one;
- evaluation is a scan of the rules that can match the request's channel, comparing integers
  (addresses) and frozensets (clients, groups): compiled once per configuration generation
  (``RuleBook``), a few microseconds for fifty rules (``bench/policy.py``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidInput
from .lockout import LockoutPolicy
from .verification import VerifyPolicy

CHANNELS = ("sdk", "radius", "portal", "forward-auth", "oidc", "lemonldap")
"""Where a sign-in comes from."""
CLIENT_CHANNELS = {"sdk": "API key", "radius": "RADIUS client", "oidc": "OpenID Connect client"}
"""The channels whose requests name a client (and what that client is)."""
METHODS = {
    "passkey": "passkey",
    "push": "push",
    "totp": "totp",
    "hotp": "hotp",
    "backup": "backup-codes",
    "access-code": "access-code",
}
"""A rule's method names and the method kinds (``verification.MethodKind``) they allow."""
SECOND_FACTOR = ("require", "skip")
PIN_MODES = ("off", "required")
PIN_ELSEWHERE = ("refuse", "push")
"""What a ``pin=required`` rule does where no PIN can travel (MS-CHAPv2, EAP): refuse the
sign-in (the default: safe), or let the push after the upstream's Accept do without it."""
SOURCES = ("address", "calling-station")
"""What a RADIUS request's source network is read from: the NAS's address (the datagram's
sender), or the Calling-Station-Id it reports (when that is an IP address)."""
DEFAULT = "default"
"""The name of the rule that always exists, last."""
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_LOCKOUT = 1000
MAX_REMEMBER_MINUTES = 60 * 24 * 90
MAX_RULES = 1000
MAX_CACHE_USES = 1000


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy rule. An empty condition matches everything; ``methods`` empty: all."""

    name: str
    channels: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    """RADIUS clients, OpenID Connect clients or SDK API keys by name (with ``channels``)."""
    groups: tuple[str, ...] = ()
    """The person is in any of these groups (by hand or from the directory)."""
    networks: tuple[str, ...] = ()
    """The source address is in any of these networks (CIDR, canonical)."""
    source: str = "address"
    """RADIUS: the NAS's ``address`` or the ``calling-station`` (Calling-Station-Id)."""
    methods: tuple[str, ...] = ()
    numbered: bool = False
    """A push must be one whose number the person types (a channel that cannot show one gets
    no push)."""
    second_factor: str = "require"
    pin: str = "off"
    """``required``: the person types their PIN before the code (``node.pins``)."""
    pin_elsewhere: str = "refuse"
    """With ``pin=required``: what applies where a PIN cannot travel (``PIN_ELSEWHERE``)."""
    lockout_threshold: int | None = None
    """Failures that lock, in place of ``[policy] lockout_threshold``."""
    remember_minutes: int = 0
    """How long a success may be remembered. On a RADIUS rule with ``cache_uses``: the cache
    window (``node.radius_cache``); at the User Portal (channels ``portal``, ``forward-auth``,
    ``oidc``): how long a browser its person asked to be remembered skips the second factor
    (``node.remembered``; not on a rule that skips it, nor the ``default`` rule)."""
    cache_uses: int = 0
    """RADIUS caching: how many requests a full success of the same person, RADIUS client and
    Calling-Station-Id lets in with the password alone within ``remember_minutes`` (0: none)."""

    def payload(self) -> dict[str, Any]:
        """The rule as a change record carries it (JSON)."""
        return {
            "name": self.name,
            "channels": list(self.channels),
            "clients": list(self.clients),
            "groups": list(self.groups),
            "networks": list(self.networks),
            "source": self.source,
            "methods": list(self.methods),
            "numbered": self.numbered,
            "second_factor": self.second_factor,
            "pin": self.pin,
            "pin_elsewhere": self.pin_elsewhere,
            "lockout_threshold": self.lockout_threshold,
            "remember_minutes": self.remember_minutes,
            "cache_uses": self.cache_uses,
        }

    @staticmethod
    def from_payload(p: dict[str, Any]) -> Rule:
        threshold = p.get("lockout_threshold")
        return Rule(
            name=str(p["name"]),
            channels=tuple(str(c) for c in p.get("channels", ())),
            clients=tuple(str(c) for c in p.get("clients", ())),
            groups=tuple(str(g) for g in p.get("groups", ())),
            networks=tuple(str(n) for n in p.get("networks", ())),
            source=str(p.get("source", "address")),
            methods=tuple(str(m) for m in p.get("methods", ())),
            numbered=bool(p.get("numbered", False)),
            second_factor=str(p.get("second_factor", "require")),
            pin=str(p.get("pin", "off")),
            pin_elsewhere=str(p.get("pin_elsewhere", "refuse")),
            lockout_threshold=None if threshold is None else int(threshold),
            remember_minutes=int(p.get("remember_minutes", 0)),
            cache_uses=int(p.get("cache_uses", 0)),
        )

    @property
    def skips(self) -> bool:
        return self.second_factor == "skip"

    @property
    def caches(self) -> bool:
        """A RADIUS rule that lets a recent full success stand for the second factor."""
        return self.cache_uses > 0 and self.remember_minutes > 0

    def describe(self) -> str:
        """One line: what the rule matches and decides."""
        when = [
            f"{k}={','.join(v)}"
            for k, v in (
                ("channel", self.channels),
                ("client", self.clients),
                ("group", self.groups),
                ("source", self.networks),
            )
            if v
        ]
        if self.networks and self.source != "address":
            when.append(f"source-from={self.source}")
        then = [f"second-factor={self.second_factor}"]
        if self.methods:
            then.append(f"methods={','.join(self.methods)}")
        if self.numbered:
            then.append("numbered-push")
        if self.pin != "off":
            then.append(f"pin={self.pin}")
            then.append(f"pin-elsewhere={self.pin_elsewhere}")
        if self.lockout_threshold is not None:
            then.append(f"lockout-threshold={self.lockout_threshold}")
        if self.remember_minutes:
            then.append(f"remember-minutes={self.remember_minutes}")
        if self.cache_uses:
            then.append(f"cache-uses={self.cache_uses}")
        return f"{' '.join(when) or 'everything'} -> {' '.join(then)}"


DEFAULT_RULE = Rule(DEFAULT)
"""Every method, the second factor always, ``[policy]``'s lockout."""


def check_rule(
    rule: Rule, *, allow_no_mfa: bool = False, group_name: Callable[[str], str] = str
) -> Rule:
    """The rule in its canonical spelling, or ``InvalidInput`` saying what is wrong.
    ``group_name`` checks and normalises a group's name (``node.groups``)."""
    if NAME_RE.fullmatch(rule.name) is None:
        raise InvalidInput(
            "a rule's name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    if rule.name == DEFAULT:
        raise InvalidInput(
            "'default' is the rule that always comes last (every method, the second factor "
            "always); it cannot be added or changed: add a rule of your own instead"
        )
    channels = _known(rule.channels, CHANNELS, "channel")
    if rule.clients:
        named = [c for c in channels if c in CLIENT_CHANNELS]
        if not channels or len(named) != len(channels):
            raise InvalidInput(
                "--client names a client of a channel that has them: say --channel "
                f"{', '.join(CLIENT_CHANNELS)} ({', '.join(CLIENT_CHANNELS.values())})"
            )
    clients = _unique(c.strip() for c in rule.clients)
    if any(not c or len(c) > 255 for c in clients):
        raise InvalidInput("a client's name is 1 to 255 characters")
    groups = _unique(group_name(g) for g in rule.groups)
    networks = _unique(_network(n) for n in rule.networks)
    if rule.source not in SOURCES:
        raise InvalidInput(f"--source-from must be one of {', '.join(SOURCES)}")
    if rule.source != "address" and channels != ("radius",):
        raise InvalidInput(
            "--source-from calling-station is a RADIUS request's: use it with --channel radius "
            "alone"
        )
    methods = _known(rule.methods, tuple(METHODS), "method")
    if rule.second_factor not in SECOND_FACTOR:
        raise InvalidInput(f"--second-factor must be one of {', '.join(SECOND_FACTOR)}")
    if rule.pin not in PIN_MODES:
        raise InvalidInput(f"--pin must be one of {', '.join(PIN_MODES)}")
    if rule.pin_elsewhere not in PIN_ELSEWHERE:
        raise InvalidInput(f"--pin-elsewhere must be one of {', '.join(PIN_ELSEWHERE)}")
    if rule.pin_elsewhere != "refuse" and rule.pin != "required":
        raise InvalidInput("--pin-elsewhere says what replaces a PIN: use it with --pin required")
    if rule.numbered and methods and "push" not in methods:
        raise InvalidInput("--numbered-push says how a push must be: allow push in --methods too")
    if rule.lockout_threshold is not None and not 1 <= rule.lockout_threshold <= MAX_LOCKOUT:
        raise InvalidInput(f"--lockout-threshold must be from 1 to {MAX_LOCKOUT}")
    if not 0 <= rule.remember_minutes <= MAX_REMEMBER_MINUTES:
        raise InvalidInput(f"--remember-minutes must be from 0 to {MAX_REMEMBER_MINUTES}")
    if rule.cache_uses:
        _check_cache(rule, channels)
    if rule.second_factor == "skip" and not networks and not allow_no_mfa:
        who = f"group {', '.join(groups)}" if groups else "everyone it matches"
        raise InvalidInput(
            f"this rule lets {who} in with no second factor from everywhere (it names no "
            "source network): give --source CIDR (a trusted network), or say --allow-no-mfa "
            "if that is what you mean"
        )
    return replace(
        rule,
        channels=channels,
        clients=clients,
        groups=groups,
        networks=networks,
        methods=methods,
    )


def _check_cache(rule: Rule, channels: tuple[str, ...]) -> None:
    """RADIUS caching is a RADIUS rule's, with a window, a bounded count, and a second factor
    to cache (a rule that skips it has nothing to remember)."""
    if not 1 <= rule.cache_uses <= MAX_CACHE_USES:
        raise InvalidInput(f"--cache-uses must be from 1 to {MAX_CACHE_USES}")
    if channels != ("radius",):
        raise InvalidInput(
            "--cache-uses caches a RADIUS sign-in: use it with --channel radius alone"
        )
    if rule.remember_minutes <= 0:
        raise InvalidInput(
            "--cache-uses needs the window a success is cached for: give --remember-minutes N"
        )
    if rule.second_factor == "skip":
        raise InvalidInput(
            "--cache-uses caches a second factor; this rule skips it (--second-factor skip)"
        )


def _known(values: Iterable[str], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    out = _unique(v.strip().lower() for v in values)
    for v in out:
        if v not in known:
            raise InvalidInput(f"{v!r} is not a {what}; name one of {', '.join(known)}")
    return out


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _network(text: str) -> str:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a network: give an address or CIDR block (like 10.0.0.0/8 or "
            "2001:db8::/32)"
        ) from None
    return str(net)


# -- the evaluator -----------------------------------------------------------------------------

_V6 = 1 << 128
"""IPv6 addresses are numbered after every IPv4 one, so one integer range says both."""


def address_number(text: str) -> int | None:
    """An address as one integer (IPv4 below 2**32, IPv6 from 2**128; an IPv4-mapped IPv6
    address is its IPv4 one), or None when ``text`` is not an IP address.

    >>> address_number("10.1.2.3"), address_number("::ffff:10.1.2.3")
    (167838211, 167838211)
    >>> address_number("2001:db8::1") > 2**128, address_number("00-11-22-33-44-55")
    (True, None)
    """
    if not text:
        return None
    try:
        if ":" not in text:
            return int.from_bytes(_pton(_AF_INET, text), "big")
        raw = _pton(_AF_INET6, text.split("%", 1)[0])
    except (OSError, ValueError):
        return None
    if raw[:12] == _MAPPED:
        return int.from_bytes(raw[12:], "big")
    return _V6 + int.from_bytes(raw, "big")


_pton, _AF_INET, _AF_INET6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6
_MAPPED = b"\0" * 10 + b"\xff\xff"


def _within(n: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= n <= hi for lo, hi in ranges)


def _range(cidr: str) -> tuple[int, int]:
    net = ipaddress.ip_network(cidr)
    base = 0 if net.version == 4 else _V6
    return base + int(net.network_address), base + int(net.broadcast_address)


@dataclass(frozen=True, slots=True)
class Context:
    """What a request says of itself, as its channel vouches for it."""

    channel: str
    client: str = ""
    address: str = ""
    """The source address (the NAS's; the SDK caller's ``source`` from a key that may assert
    it; "" for none)."""
    station: str = ""
    """RADIUS: the Calling-Station-Id."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """A rule as evaluation uses it (sets and integer ranges; None: no condition)."""

    rule: Rule
    channels: frozenset[str] | None
    clients: frozenset[str] | None
    groups: frozenset[str] | None
    ranges: tuple[tuple[int, int], ...] | None
    station: bool
    """The source is the Calling-Station-Id (else the address)."""
    kinds: frozenset[str] | None
    """The method kinds it allows (None: every one)."""
    policy: VerifyPolicy
    """``[policy]`` with this rule's lockout threshold."""
    default: bool = False

    @property
    def name(self) -> str:
        return self.rule.name


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of one rule, as ``RuleBook.explain`` reports it."""

    what: str
    matched: bool
    why: str


@dataclass(frozen=True, slots=True)
class Explanation:
    rule: Rule
    checked: list[tuple[Rule, list[Condition]]] = field(default_factory=list)
    """Every rule looked at, in order, with its conditions (the last one matched)."""


def compile_rule(rule: Rule, base: VerifyPolicy, default: bool = False) -> Compiled:
    policy = base
    if rule.lockout_threshold is not None:
        policy = replace(base, lockout=LockoutPolicy(rule.lockout_threshold, base.lockout.minutes))
    return Compiled(
        rule,
        frozenset(rule.channels) or None,
        frozenset(rule.clients) or None,
        frozenset(rule.groups) or None,
        tuple(_range(n) for n in rule.networks) or None,
        rule.source == "calling-station",
        frozenset(METHODS[m] for m in rule.methods) or None,
        policy,
        default,
    )


class RuleBook:
    """The rules of one configuration generation, compiled (immutable once built)."""

    def __init__(self, rules: list[Rule], base: VerifyPolicy) -> None:
        self.rules = [compile_rule(r, base) for r in rules]
        self.default = compile_rule(DEFAULT_RULE, base, default=True)
        self.uses_groups = any(c.groups is not None for c in self.rules)
        """Whether any rule asks for the person's groups (else they are never read)."""
        self._by_channel: dict[str, tuple[Compiled, ...]] = {
            ch: tuple(c for c in self.rules if c.channels is None or ch in c.channels)
            for ch in CHANNELS
        }
        self._by_client: dict[tuple[str, str], tuple[Compiled, ...]] = {}
        self._by_address: dict[tuple[str, str, str], tuple[Compiled, ...]] = {}
        self._numbers: dict[str, int | None] = {}
        """Addresses seen, as numbers (``address_number``; None: not an address)."""

    def match(
        self, ctx: Context, groups: Callable[[], frozenset[str]] | frozenset[str]
    ) -> Compiled:
        """``evaluate`` with the request as a ``Context``."""
        return self.evaluate(ctx.channel, ctx.client, ctx.address, ctx.station, groups)

    def evaluate(
        self,
        channel: str,
        client: str,
        address: str,
        station: str,
        groups: Callable[[], frozenset[str]] | frozenset[str],
    ) -> Compiled:
        """The first rule that matches (the default rule if none does). ``groups``: the
        person's groups, or a function that reads them (called only if a rule asks)."""
        candidates = self._at(channel, client, address)
        if not candidates:
            return self.default
        known: frozenset[str] | None = groups if isinstance(groups, frozenset) else None
        came: int | None = None
        read = False
        for c in candidates:
            if c.station:  # its networks are the Calling-Station-Id's (``_at`` left it in)
                if not read:
                    came, read = self._number(station), True
                if came is None or not _within(came, c.ranges or ()):
                    continue
            if c.groups is not None:
                if known is None:
                    assert callable(groups)
                    known = groups()
                if c.groups.isdisjoint(known):
                    continue
            return c
        return self.default

    def _at(self, channel: str, client: str, address: str) -> tuple[Compiled, ...]:
        """The rules that can match a request of ``channel`` from ``client`` at ``address``,
        in order: those whose source networks hold the address (or that name none, or name
        the Calling-Station-Id's), worked out once per address (a RADIUS client's, the SDK's
        callers': few), so a request costs one look-up however many rules name networks."""
        key = (channel, client, address)
        found = self._by_address.get(key)
        if found is None:
            at = self._number(address)
            found = tuple(
                c
                for c in self._candidates(channel, client)
                if c.ranges is None or c.station or (at is not None and _within(at, c.ranges))
            )
            if len(self._by_address) >= 4096:
                self._by_address.clear()
            self._by_address[key] = found
        return found

    def _number(self, said: str) -> int | None:
        """``address_number``, remembered (a node sees the same addresses again and again)."""
        if not said:
            return None
        numbers = self._numbers
        if said in numbers:
            return numbers[said]
        n = numbers[said] = address_number(said)
        if len(numbers) > 4096:
            numbers.clear()
        return n

    def _candidates(self, channel: str, client: str) -> tuple[Compiled, ...]:
        """The rules that can match a request of ``channel`` from ``client``, in order (worked
        out once per pair; the pairs are the node's clients, so few)."""
        key = (channel, client)
        found = self._by_client.get(key)
        if found is None:
            found = tuple(
                c
                for c in self._by_channel.get(channel, ())
                if c.clients is None or client in c.clients
            )
            if len(self._by_client) >= 4096:
                self._by_client.clear()
            self._by_client[key] = found
        return found

    def explain(self, ctx: Context, groups: frozenset[str]) -> Explanation:
        """Which rule applies to ``ctx`` and why: every rule up to it, condition by
        condition (``openmfa policy test``)."""
        address, station = address_number(ctx.address), address_number(ctx.station)
        checked: list[tuple[Rule, list[Condition]]] = []
        for c in self.rules:
            conds: list[Condition] = []
            r = c.rule
            if c.channels is not None:
                conds.append(
                    Condition("channel", ctx.channel in c.channels, f"{ctx.channel or '-'}")
                )
            if c.clients is not None:
                conds.append(Condition("client", ctx.client in c.clients, ctx.client or "none"))
            if c.ranges is not None:
                what = "calling-station" if c.station else "source"
                said = ctx.station if c.station else ctx.address
                n = station if c.station else address
                ok = n is not None and any(lo <= n <= hi for lo, hi in c.ranges)
                conds.append(Condition(what, ok, said or "no address"))
            if c.groups is not None:
                inside = sorted(c.groups & groups)
                conds.append(
                    Condition("group", bool(inside), ",".join(inside) or "in none of them")
                )
            checked.append((r, conds))
            if all(x.matched for x in conds):
                return Explanation(r, checked)
        checked.append((DEFAULT_RULE, []))
        return Explanation(DEFAULT_RULE, checked)
