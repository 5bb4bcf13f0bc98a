"""The change records of policy rules (data format 12), applied like every other record
(``changes.ChangeWriter``), so the rules replicate to every node of a farm, in the same order,
and are in every backup.

- ``policy.rule.add``: ``rule`` (``core.policy.Rule.payload``), ``position`` (0 first; past the
  end: last) and ``at``. A rule of that name already there is replaced, at the new position.
- ``policy.rule.move``: ``name``, ``position``, ``at``.
- ``policy.rule.remove``: ``name``.

Each applier rewrites every rule's ``position`` (0, 1, 2, ...), so a replay gives the same rows;
a rule named in a move or a removal that is not there is no error.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from . import tables as t
from .changes import Payload, applier


def ordered(conn: Connection) -> list[tuple[str, dict[str, Any]]]:
    """The stored rules, ``(name, rule payload)``, in the order they are tried."""
    r = t.policy_rules
    rows = conn.execute(select(r.c.name, r.c.rule).order_by(r.c.position, r.c.name)).all()
    return [(row.name, dict(row.rule)) for row in rows]


def _rewrite(conn: Connection, rules: list[tuple[str, dict[str, Any]]], at: float) -> None:
    conn.execute(delete(t.policy_rules))
    if rules:
        conn.execute(
            insert(t.policy_rules),
            [
                {"name": name, "position": i, "rule": rule, "changed_at": at}
                for i, (name, rule) in enumerate(rules)
            ],
        )


@applier("policy.rule.add")
def _add(conn: Connection, p: Payload) -> None:
    rule = dict(p["rule"])
    rules = [(n, r) for n, r in ordered(conn) if n != rule["name"]]
    rules.insert(max(0, int(p["position"])), (str(rule["name"]), rule))
    _rewrite(conn, rules, float(p["at"]))


@applier("policy.rule.move")
def _move(conn: Connection, p: Payload) -> None:
    rules = ordered(conn)
    found = [(n, r) for n, r in rules if n == p["name"]]
    if not found:
        return
    rules.remove(found[0])
    rules.insert(max(0, int(p["position"])), found[0])
    _rewrite(conn, rules, float(p["at"]))


@applier("policy.rule.remove")
def _remove(conn: Connection, p: Payload) -> None:
    conn.execute(delete(t.policy_rules).where(t.policy_rules.c.name == p["name"]))
