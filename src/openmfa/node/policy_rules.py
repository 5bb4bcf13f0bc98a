"""Policy rules as configuration: ``openmfa policy list|add|move|remove|test`` (one service),
and the compiled rules the authenticator evaluates (``RuleCache``).

Rules owned here:
- a rule is checked by ``core.policy.check_rule`` (with ``node.groups``'s rule for a group's
  name) before it is written; its name is unique, ``default`` is never a stored rule;
- rules change only through ``policy.rule.*`` records (``store.policy_records``), written only
  once the data set is at data format 12 (``formats.POLICY_FORMAT``): before that, a clear
  refusal that says how to get there;
- the rules are compiled once per configuration generation that changed them: the
  authenticator's ``RuleCache`` is told by ``node.auth_state`` when a ``policy.*`` record was
  applied (or the gap could not be read), and rebuilds then, never per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection

from ..core.policy import (
    CHANNELS,
    DEFAULT,
    MAX_RULES,
    Context,
    Explanation,
    Rule,
    RuleBook,
    check_rule,
)
from ..core.verification import VerifyPolicy
from ..errors import Conflict, InvalidInput, NotFound
from ..store import formats
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.policy_records import ordered
from .accounts import Accounts
from .groups import check_group_name


@dataclass(frozen=True, slots=True)
class Tested:
    """``openmfa policy test``'s answer: the person's groups and the rule that applies."""

    groups: list[str]
    explanation: Explanation


def stored_rules(conn: Connection) -> list[Rule]:
    return [Rule.from_payload(r) for _, r in ordered(conn)]


class PolicyRules:
    def __init__(self, store: Store, accounts: Accounts | None = None) -> None:
        self.store = store
        self.accounts = accounts
        self.writer = ChangeWriter(store)

    def all(self) -> list[Rule]:
        """The rules in the order they are tried; the default rule is not among them."""
        with self.store.read() as conn:
            return stored_rules(conn)

    def add(
        self,
        rule: Rule,
        *,
        position: int | None = None,
        allow_no_mfa: bool = False,
        client: str = "cli",
    ) -> Rule:
        """Add ``rule`` at ``position`` (1 first; None: last, before the default rule)."""
        rule = check_rule(rule, allow_no_mfa=allow_no_mfa, group_name=check_group_name)
        names = self._names(POLICY_WRITE)
        if rule.name in names:
            raise Conflict(
                f"a rule named {rule.name!r} exists already; remove it first, or give the new "
                "one another name"
            )
        if len(names) >= MAX_RULES:
            raise Conflict(f"there are {MAX_RULES} rules already, the most a node keeps")
        at = len(names) if position is None else _index(position, len(names) + 1)
        no_mfa = " no-mfa-allowed" if rule.skips and not rule.networks else ""
        self.writer.commit(
            [
                Change(
                    "policy.rule.add", {"rule": rule.payload(), "position": at, "at": time.time()}
                )
            ],
            [
                AuditEvent(
                    "policy.rule.add",
                    "ok",
                    client=client,
                    detail=f"{rule.name} at {at + 1}: {rule.describe()}{no_mfa}",
                )
            ],
        )
        return rule

    def move(self, name: str, position: int, *, client: str = "cli") -> None:
        """Move the rule ``name`` to ``position`` (1 first)."""
        names = self._names(POLICY_WRITE)
        self._exists(name, names)
        at = _index(position, len(names))
        self.writer.commit(
            [Change("policy.rule.move", {"name": name, "position": at, "at": time.time()})],
            [AuditEvent("policy.rule.move", "ok", client=client, detail=f"{name} to {at + 1}")],
        )

    def remove(self, name: str, *, client: str = "cli") -> None:
        names = self._names(POLICY_WRITE)
        self._exists(name, names)
        self.writer.commit(
            [Change("policy.rule.remove", {"name": name})],
            [AuditEvent("policy.rule.remove", "ok", client=client, detail=name)],
        )

    def test(self, user: str, ctx: Context, base: VerifyPolicy) -> Tested:
        """Which rule applies to ``user`` signing in as ``ctx`` says, and why."""
        if self.accounts is None:
            raise RuntimeError("PolicyRules.test needs the accounts")
        groups = self.accounts.get_user(user).groups  # NotFound for an unknown user
        if ctx.channel not in CHANNELS:
            raise InvalidInput(f"--channel must be one of {', '.join(CHANNELS)}")
        book = RuleBook(self.all(), base)
        return Tested(groups, book.explain(ctx, frozenset(groups)))

    def _names(self, what: str) -> list[str]:
        with self.store.read() as conn:
            formats.require(conn, formats.POLICY_FORMAT, what)
            return [n for n, _ in ordered(conn)]

    @staticmethod
    def _exists(name: str, names: list[str]) -> None:
        if name == DEFAULT:
            raise Conflict(
                "the default rule always exists, last (every method, the second factor "
                "always): it cannot be moved or removed"
            )
        if name not in names:
            raise NotFound(f"no policy rule named {name!r} (`openmfa policy list` shows them)")


POLICY_WRITE = "policy rules"


def _index(position: int, slots: int) -> int:
    """A 1-based position among ``slots`` places as a 0-based index; InvalidInput if outside."""
    if not 1 <= position <= max(slots, 1):
        raise InvalidInput(f"the position must be from 1 to {max(slots, 1)}")
    return position - 1


class RuleCache:
    """The compiled rules of the authenticator (one thread): rebuilt when ``stale`` (a
    ``policy.*`` record was applied, or the cache could not follow the generation)."""

    def __init__(self, base: VerifyPolicy) -> None:
        self.base = base
        self.book = RuleBook([], base)
        self.stale = True

    def current(self, conn: Connection) -> RuleBook:
        if self.stale:
            self.book = RuleBook(stored_rules(conn), self.base)
            self.stale = False
        return self.book
