"""People's groups: the rule for a group's name, and the groups an administrator sets by hand
(``openmfa user group add|remove``, the SDK's ``/v1/users/{name}/groups/{group}``).

Rules owned here:
- a group's name is 1 to ``GROUP_NAME_MAX`` printable characters, trimmed and NFC-normalised,
  with no control or invisible formatting character, no whitespace but the plain space, and no
  ``/`` (it is a path segment of the SDK) or ``,`` (lists of groups are written with commas);
  names are compared exactly. Directory synchronisation keeps to the same rule (a directory
  group whose name breaks it is skipped, and the run says so);
- a person's groups have two origins, kept apart: ``manual`` (written here) and ``directory``
  (written by ``directory.sync`` only). Removing by hand a group the directory gives is refused
  with the source to change instead;
- groups travel in ``user.groups`` records, written only once the data set is at format 11.
"""

from __future__ import annotations

import time
import unicodedata

from ..contract import UserView
from ..errors import Conflict, InvalidInput, NotFound
from ..store import formats
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from .accounts import Accounts, Actor

GROUP_NAME_MAX = 128
"""The longest group name, in characters (``user_groups.name``)."""

_NOT_PRINTED = frozenset(["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"])
"""Unicode categories a group's name never holds: controls, invisible format characters,
surrogates, private use, unassigned, line and paragraph separators."""

MANUAL, DIRECTORY = "manual", "directory"
CLI = Actor()
"""The local command line, the default actor."""


def check_group_name(name: str) -> str:
    """A group's name, NFC-normalised and trimmed; ``InvalidInput`` saying the rule otherwise."""
    clean = unicodedata.normalize("NFC", name).strip()
    if (
        not clean
        or len(clean) > GROUP_NAME_MAX
        or any(
            unicodedata.category(ch) in _NOT_PRINTED or (ch.isspace() and ch != " ") for ch in clean
        )
        or "/" in clean
        or "," in clean
    ):
        raise InvalidInput(
            f"a group's name must be 1 to {GROUP_NAME_MAX} printable characters, with no "
            "control or invisible character, no tab or line break, and no '/' or ','"
        )
    return clean


def groups_change(user_id: int, origin: str, add: list[str], remove: list[str]) -> Change:
    """The ``user.groups`` record of ``user_id``'s groups of ``origin`` (data format 11)."""
    return Change(
        "user.groups",
        {"id": user_id, "origin": origin, "add": add, "remove": remove, "at": time.time()},
    )


class Groups:
    """The groups an administrator sets by hand."""

    def __init__(self, store: Store, accounts: Accounts) -> None:
        self.store = store
        self.accounts = accounts
        self.writer = ChangeWriter(store)

    def add(self, name: str, group: str, actor: Actor = CLI) -> UserView:
        """Put ``name`` in ``group`` by hand (no change if they are in it by hand already)."""
        group = check_group_name(group)
        user = self.accounts.get_user(name)
        self._require()
        if group not in user.manual_groups:
            self.writer.commit(
                [groups_change(self.accounts.user_id(name), MANUAL, [group], [])],
                [_event("user.group.add", name, group, actor)],
            )
        return self.accounts.get_user(name)

    def remove(self, name: str, group: str, actor: Actor = CLI) -> UserView:
        """Take ``name`` out of ``group`` they were put in by hand."""
        group = check_group_name(group)
        user = self.accounts.get_user(name)
        self._require()
        if group not in user.manual_groups:
            if group in user.directory_groups:
                raise Conflict(
                    f"user {name!r} is in group {group!r} because their directory says so, "
                    "not by hand: change the group in the directory (the next "
                    "`openmfa directory sync` follows it)"
                )
            raise NotFound(f"user {name!r} is not in group {group!r}")
        self.writer.commit(
            [groups_change(self.accounts.user_id(name), MANUAL, [], [group])],
            [_event("user.group.remove", name, group, actor)],
        )
        return self.accounts.get_user(name)

    def _require(self) -> None:
        with self.store.read() as conn:
            formats.require(conn, formats.GROUPS_FORMAT, "groups")


def _event(action: str, name: str, group: str, actor: Actor) -> AuditEvent:
    return AuditEvent(
        action, "ok", user_name=name, client=actor.client, request_id=actor.request_id, detail=group
    )
