"""Reports over the audit log (``node.reports``) on both databases: a month's report and the
dashboard say what counting the rows one by one says, folded at once or in steps; what the log
no longer holds (``[audit] retain_days``) is not reported; push approval times come from the
push requests the answers name; names are not kept; a month that is not YYYY-MM is refused;
through the SDK an auditor's key reads them and a portal key is refused 403."""

from __future__ import annotations

import calendar
import random
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import delete, func, insert, select

from openmfa.config import Config
from openmfa.errors import MalformedRequest
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.push_requests import push_detail
from openmfa.node.report_counts import month_span
from openmfa.node.reports import Reports
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.sdk.test_app import run_app

NOV = calendar.timegm((2026, 11, 1, 0, 0, 0))
DEC = calendar.timegm((2026, 12, 1, 0, 0, 0))
NOW = DEC + 20 * 86400 + 3600 * 10.5  # 2026-12-21 10:30 UTC
KINDS = {"ann": "totp", "bob": "push", "cai": "hotp", "dan": "totp"}
CLIENTS = ("radius:vpn", "web", "portal (in serve)", "cli")
CHANNEL = {
    "radius:vpn": "radius",
    "web": "application",
    "portal (in serve)": "portal",
    "cli": "cli",
}


def _setup(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    for name in KINDS:
        accounts.add_user(name)
    with store.write() as conn:
        ids = dict(
            conn.execute(t.users.select().with_only_columns(t.users.c.name, t.users.c.id)).all()
        )
        for name, kind in KINDS.items():
            conn.execute(
                insert(t.methods).values(
                    id=f"m-{name}", user_id=ids[name], kind=kind, created_at=NOV
                )
            )
    ApiKeys(store).create("web", "adapter")


def _rows(n: int, seed: int, start: float, end: float) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        user = rnd.choice([*KINDS, "gone"])
        accepted = rnd.random() < 0.7
        rows.append(
            {
                "at": rnd.uniform(start, end),
                "node": "n1",
                "action": rnd.choice(
                    ["authenticate"] * 6 + ["lockout", "fraud.report", "user.add"]
                ),
                "user_name": user,
                "client": rnd.choice(CLIENTS),
                "method_id": f"m-{user}",
                "result": "accepted" if accepted else "rejected",
                "reason": "" if accepted else rnd.choice(["wrong_code", "locked", "pending"]),
                "request_id": "",
                "detail": "",
            }
        )
    return sorted(rows, key=lambda r: float(r["at"]))  # type: ignore[arg-type]


def _write(store: Store, rows: list[dict[str, object]]) -> None:
    with store.write() as conn:
        conn.execute(insert(t.audit), rows)


def _expected(
    rows: list[dict[str, object]], month_start: float, month_end: float
) -> dict[str, object]:
    """The month's figures, counting the rows one by one."""
    inside = [r for r in rows if month_start <= float(r["at"]) < month_end]  # type: ignore[arg-type]
    decided = [r for r in inside if r["action"] == "authenticate" and r["reason"] != "pending"]
    return {
        "active": len(
            {
                r["user_name"]
                for r in inside
                if r["action"] == "authenticate" and r["result"] == "accepted"
            }
        ),
        "sign_ins": Counter((CHANNEL[str(r["client"])], r["result"]) for r in decided),
        "methods": Counter(
            KINDS.get(str(r["user_name"]), "removed") for r in decided if r["result"] == "accepted"
        ),
        "failures": Counter(r["reason"] for r in decided if r["result"] == "rejected"),
        "fraud": sum(1 for r in inside if r["action"] == "fraud.report"),
        "lockouts": sum(1 for r in inside if r["action"] == "lockout"),
        "decisions": len(decided),
    }


def _figures(reports: Reports, month: str) -> dict[str, object]:
    m = reports.month(month)
    return {
        "active": m.active_users,
        "sign_ins": Counter({(c.key, c.result): c.count for c in m.sign_ins}),
        "methods": Counter({c.key: c.count for c in m.methods}),
        "failures": Counter({c.key: c.count for c in m.failures}),
        "fraud": m.fraud_reports,
        "lockouts": m.lockouts,
        "decisions": sum(c.count for c in m.days),
    }


def test_a_month_says_what_counting_the_rows_says(store: Store, config: Config) -> None:
    _setup(store, config)
    nov, dec = _rows(3000, 1, NOV, DEC), _rows(2000, 2, DEC, NOW)
    _write(store, nov + dec[:1000])
    reports = Reports(store, clock=lambda: NOW)
    assert _figures(reports, "2026-11") == _expected(nov, NOV, DEC)
    _write(store, dec[1000:])  # folded on the next report, with what was folded before
    assert _figures(reports, "2026-12") == _expected(dec, DEC, NOW + 1)
    assert _figures(reports, "2026-11") == _expected(nov, NOV, DEC)
    fresh = Reports(store, clock=lambda: NOW)  # all at once, as a process that starts
    assert _figures(fresh, "2026-12") == _figures(reports, "2026-12")
    m = reports.month("2026-12")
    assert m.months == ["2026-12", "2026-11"]
    assert {c.key[:7] for c in m.days} == {"2026-12"}
    assert _figures(reports, "2026-10")["decisions"] == 0
    # Not one name is kept, in any form a reader of the process's memory could use.
    held = repr(vars(reports.counts._c))
    assert not any(name in held for name in KINDS)


def test_the_dashboard_counts_the_last_24_hours(store: Store, config: Config) -> None:
    _setup(store, config)
    with store.read() as conn:
        before = len(conn.execute(select(t.audit.c.id)).all())  # the setup's own records
    old, recent = (
        _rows(500, 3, NOW - 10 * 86400, NOW - 86400 - 3600),
        _rows(700, 4, NOW - 23 * 3600, NOW),
    )
    _write(store, old + recent)
    with store.write() as conn:
        ann = conn.scalar(select(t.users.c.id).where(t.users.c.name == "ann"))
        s = t.user_state
        conn.execute(s.update().where(s.c.user_id == ann).values(locked_until=NOW + 600))
    d = Reports(store, clock=lambda: NOW).dashboard()
    want = _expected(recent, NOW - 86400, NOW + 1)
    assert Counter({(c.key, c.result): c.count for c in d.sign_ins}) == want["sign_ins"]
    assert Counter({c.key: c.count for c in d.failures}) == want["failures"]
    assert d.fraud_reports == want["fraud"] and d.lockouts == want["lockouts"]
    assert d.fraud_reports_30d == want["fraud"] + sum(
        1 for r in old if r["action"] == "fraud.report"
    )
    assert d.locked_users == 1 and d.records == before + 1200


def test_what_the_log_forgot_is_not_reported(store: Store, config: Config) -> None:
    _setup(store, config)
    _write(store, _rows(400, 5, NOV, DEC) + _rows(400, 6, DEC, NOW))
    reports = Reports(store, clock=lambda: NOW)
    assert reports.month("2026-11").active_users > 0
    with store.write() as conn:  # as an audit.prune record does
        conn.execute(delete(t.audit).where(t.audit.c.at < DEC))
    nov = reports.month("2026-11")
    assert nov.active_users == 0 and nov.sign_ins == [] and nov.months == ["2026-12"]
    assert reports.month("2026-12").active_users > 0


def test_push_approval_times_come_from_the_requests_answered(store: Store, config: Config) -> None:
    _setup(store, config)
    rows, requests = [], []
    for i, seconds in enumerate([2, 3, 4, 7, 12, 25, 90]):
        asked = DEC + 3600 * i
        requests.append(
            {
                "id": f"p{i}",
                "user_id": 1,
                "user_name": "bob",
                "method_id": "m-bob",
                "number": "12",
                "nonce": "n",
                "created_at": asked,
                "expires_at": asked + 120,
                "status": "accepted",
                "decided_at": asked + seconds,
            }
        )
        rows.append(
            {
                "at": asked + seconds,
                "node": "n1",
                "action": "push.answer",
                "user_name": "bob",
                "client": "mobile",
                "method_id": "m-bob",
                "result": "accepted",
                "reason": "approved",
                "request_id": "",
                "detail": push_detail(f"p{i}", "web"),
            }
        )
    opened = rows[0] | {"action": "authenticate", "result": "rejected", "reason": "pending"}
    rows += [
        opened | {"user_name": "dan", "client": "radius:vpn"},  # opened the push: no decision
        rows[0] | {"result": "rejected", "reason": "declined", "detail": push_detail("p9", "web")},
        rows[0] | {"result": "rejected", "reason": "replay", "detail": push_detail("p8", "web")},
        rows[0]
        | {"action": "push.close", "result": "ok", "reason": "expired", "user_name": "cai"}
        | {"detail": push_detail("p7", "radius:vpn")},
        opened | {"user_name": "ann", "method_id": "", "result": "accepted", "reason": "bypass"},
    ]
    with store.write() as conn:
        conn.execute(insert(t.push_requests), requests)
    _write(store, rows)
    m = Reports(store, clock=lambda: NOW).month("2026-12")
    push = m.push
    assert push.approved == 7 and push.median == 7.0 and push.p90 == 90.0
    assert [b.count for b in push.buckets] == [3, 1, 1, 1, 0, 1]
    assert [b.key for b in push.buckets][::5] == ["0-5 s", "over 60 s"]
    # Each push's answer is the sign-in's decision, by the channel that asked for the push (an
    # adapter's key "web"; a RADIUS client): not the opening row, not a refused answer (a
    # replay). A bypass is accepted, by no method, and no one "signed in with a second factor".
    sign_ins = {(c.key, c.result): c.count for c in m.sign_ins}
    assert sign_ins == {
        ("application", "accepted"): 8,
        ("application", "rejected"): 1,
        ("radius", "rejected"): 1,
    }
    assert {c.key: c.count for c in m.methods} == {"push": 7, "none": 1}
    assert {c.key: c.count for c in m.failures} == {"declined": 1, "expired": 1}
    assert m.active_users == 1  # bob


def test_late_rows_of_last_month_count_each_person_once(store: Store, config: Config) -> None:
    """A subordinate's rows of November relayed in December, within the grace after the month's
    end: ann still counts once."""
    _setup(store, config)
    row = _rows(1, 8, NOV + 86400, NOV + 86400 + 1)[0]
    row |= {"action": "authenticate", "user_name": "ann", "result": "accepted", "reason": ""}
    row["method_id"] = "m-ann"
    _write(store, [row])
    reports = Reports(store, clock=lambda: DEC + 2 * 86400)
    assert reports.month("2026-11").active_users == 1
    _write(store, [row | {"at": NOV + 2 * 86400}, row | {"user_name": "bob", "method_id": "m-bob"}])
    assert reports.month("2026-11").active_users == 2


def test_an_id_missing_below_the_newest_is_counted_when_it_comes(
    store: Store, config: Config
) -> None:
    """PostgreSQL: a transaction still open holds id N while N+1 is committed and folded; N is
    counted at a later fold (SQLite writes one transaction at a time: no id comes late)."""
    if store.is_sqlite:
        pytest.skip("SQLite commits in id order")
    _setup(store, config)
    rows = _rows(3, 9, DEC, DEC + 3600)
    for r in rows:
        r |= {"action": "authenticate", "result": "accepted", "reason": ""}
    with store.read() as conn:
        top = int(conn.scalar(select(func.max(t.audit.c.id))) or 0)
    _write(store, [rows[0] | {"id": top + 1}, rows[2] | {"id": top + 3}])
    reports = Reports(store, clock=lambda: NOW)
    assert sum(c.count for c in reports.month("2026-12").sign_ins) == 2
    _write(store, [rows[1] | {"id": top + 2}])  # the open transaction commits
    assert sum(c.count for c in reports.month("2026-12").sign_ins) == 3


@pytest.mark.parametrize(
    "month",
    [
        *("2026-13", "2026-00", "26-01", "abcd-ef", "2026-1", "1969-12", "", " 2026-1"),
        *("2026-+1", "02026-1", "\uff12\uff10\uff12\uff16-12", "2026-12\n"),
    ],
)
def test_a_month_that_is_not_yyyy_mm_is_refused(month: str) -> None:
    """The rule every report's month meets (``month_span``; the SDK's 400 is below)."""
    with pytest.raises(MalformedRequest, match="YYYY-MM"):
        month_span(month)


def test_through_the_sdk_a_reader_reads_and_a_portal_key_is_refused(
    store: Store, config: Config
) -> None:
    _setup(store, config)
    _write(store, _rows(50, 7, time.time() - 3600, time.time() - 60))
    auditor = {"authorization": "Bearer " + ApiKeys(store).create("reader", "admin")}
    portal = {"authorization": "Bearer " + ApiKeys(store).create("web-portal", "portal")}

    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.get("/v1/reports/dashboard", headers=auditor)
        assert r.status_code == 200 and sum(x["count"] for x in r.json()["sign_ins"]) > 0, r.text
        r = await c.get("/v1/reports/month", headers=auditor)
        assert r.status_code == 200 and r.json()["month"] == time.strftime("%Y-%m", time.gmtime())
        for bad in ("2026-13", ""):
            r = await c.get("/v1/reports/month", params={"month": bad}, headers=auditor)
            assert r.status_code == 400 and "YYYY-MM" in r.json()["message"], r.text
        for path in ("/v1/reports/dashboard", "/v1/reports/month"):
            r = await c.get(path, headers=portal)
            assert r.status_code == 403, r.text

    run_app(store, config, scenario)


def test_the_background_folds_only_once_a_report_was_asked(store: Store, config: Config) -> None:
    """A node nobody asks for reports spends nothing on them; from the first report on, the
    folder keeps the counts fresh by itself."""
    from openmfa.node.reports import ReportFolder

    _setup(store, config)
    reports = Reports(store, clock=lambda: NOW)
    folder = ReportFolder(reports, every=0.05)
    folder.start()
    try:
        assert not reports.asked.is_set()
        reports.month("2026-12")
        assert reports.asked.is_set()
        mark = reports.counts._c.mark
        _write(store, _rows(20, 10, DEC, DEC + 3600))
        deadline = time.monotonic() + 30
        while reports.counts._c.mark == mark:  # folded by the thread, nobody asking
            assert time.monotonic() < deadline, "the folder did not fold"
            time.sleep(0.02)
    finally:
        folder.stop()
