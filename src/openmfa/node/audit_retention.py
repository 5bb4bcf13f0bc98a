"""How long the audit log keeps what it records: ``[audit] retain_days``.

Rules owned here:
- 0 (the default) keeps everything; N > 0 keeps the last N days;
- the farm's master decides (a node on its own is its own master): once a minute it looks for
  rows older than the rule, and if there are any writes one ``audit.prune`` change record, so
  every node of the farm forgets the same rows (``store.audit_records``), and an audit row
  ``audit.prune`` saying how many it removed and from before when: the pruning is audited too;
- the cut-off is on the hour (so a busy log is pruned once an hour, not each minute) and is
  counted back from the newest record, never from a clock that runs ahead of the data (a
  clock set years ahead would otherwise forget the whole log on every node);
- a subordinate writes nothing (``NotMaster``): its old rows go with the master's record;
- nothing is pruned before data format 16 (a release that does not know the record would stop
  at it), which is said in the log once.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import func, select

from ..config import Config
from ..errors import NotMaster, OpenMfaError
from ..store import formats
from ..store import tables as t
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store

log = logging.getLogger("openmfa.audit")
DAY = 86400.0
HOUR = 3600.0


class AuditRetention:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.days = int(config.get("audit", "retain_days"))
        self.writer = ChangeWriter(store)
        self._said = False

    def run(self, now: float | None = None) -> int:
        """Forget the rows older than the rule, on the master; how many were forgotten."""
        if self.days <= 0:
            return 0
        now = time.time() if now is None else now
        with self.store.read() as conn:
            if formats.local_format(conn) < formats.AUDIT_CARE_FORMAT:
                if not self._said:
                    log.info(
                        "[audit] retain_days waits for data format %d (openmfa migrate, or "
                        "openmfa farm finalize)",
                        formats.AUDIT_CARE_FORMAT,
                    )
                    self._said = True
                return 0
            newest = conn.scalar(select(func.max(t.audit.c.at)))
            if newest is None:
                return 0
            before = (min(now, float(newest)) - self.days * DAY) // HOUR * HOUR
            old = int(conn.scalar(select(func.count()).where(t.audit.c.at < before)) or 0)
        if not old:
            return 0
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(before))
        event = AuditEvent(
            "audit.prune",
            "ok",
            client="retention",
            detail=f"{old} records from before {when} ([audit] retain_days = {self.days})",
        )
        try:
            self.writer.commit([Change("audit.prune", {"before": before})], [event])
        except NotMaster:  # a subordinate: the master prunes for everyone
            return 0
        except OpenMfaError as exc:  # read-only, a newer format, ...: said, tried again later
            log.warning("[audit] retain_days: could not forget old audit records: %s", exc)
            return 0
        log.info("forgot %d audit records from before %s ([audit] retain_days)", old, when)
        return old
