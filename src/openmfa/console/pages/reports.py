"""The dashboard and the month reports, read from the node's reports (``node.reports``: counted
off the sign-in path), with charts drawn here as SVG — bars whose numbers are in the table
beside each, so nothing is only in a picture — and each report downloadable as CSV and each
chart as an SVG file."""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass

from starlette.responses import Response

from ...sdk.calls import Requests
from ...sdk.models import MONTH_PATTERN, Count, MonthReport
from ..runner import Ctx, PageError

MONTH_RE = re.compile(MONTH_PATTERN)
WIDTH = 320
ROW = 26
LABEL = 118
BAR = 150


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    y: int
    width: int
    kind: str
    """``accepted``, ``rejected`` or ``plain``: the bar's colour (console.css)."""


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    bars: list[Bar]
    height: int


def bar_chart(name: str, title: str, rows: list[tuple[str, int, str]]) -> Chart:
    """Horizontal bars, one a row (label, count, kind), the longest the widest."""
    top = max((n for _, n, _ in rows), default=0) or 1
    bars = [
        Bar(label, n, i * ROW, max(1 if n else 0, round(BAR * n / top)), kind)
        for i, (label, n, kind) in enumerate(rows)
    ]
    return Chart(name, title, bars, max(ROW, len(bars) * ROW))


def _result_kind(result: str) -> str:
    return "accepted" if result == "accepted" else "rejected"


def charts(ctx: Ctx, r: MonthReport) -> list[Chart]:
    _ = ctx._
    return [
        bar_chart(
            "sign-ins",
            _("Sign-ins by channel and result"),
            [(f"{c.key} · {c.result}", c.count, _result_kind(c.result)) for c in r.sign_ins],
        ),
        bar_chart("methods", _("Accepted sign-ins by method"), _plain(r.methods)),
        bar_chart("failures", _("Refused sign-ins by reason"), _plain(r.failures)),
        bar_chart("push", _("Push approval time"), _plain(r.push.buckets)),
    ]


def _plain(counts: list[Count]) -> list[tuple[str, int, str]]:
    return [(c.key, c.count, "plain") for c in counts]


def _month(ctx: Ctx) -> str:
    month = ctx.query("month", 7) or time.strftime("%Y-%m", time.gmtime())
    if not MONTH_RE.fullmatch(month):
        raise PageError(ctx._("A month is written YYYY-MM, like 2026-12."))
    return month


async def dashboard(ctx: Ctx) -> Response:
    d = await ctx.op(Requests.dashboard())
    chart = bar_chart(
        "sign-ins",
        ctx._("Sign-ins of the last 24 hours"),
        [(f"{c.key} · {c.result}", c.count, _result_kind(c.result)) for c in d.sign_ins],
    )
    return ctx.render("dashboard.html", d=d, chart=chart, width=WIDTH, label=LABEL)


async def report(ctx: Ctx) -> Response:
    month = _month(ctx)
    r = await ctx.op(Requests.month_report(month))
    return ctx.render(
        "reports.html",
        r=r,
        charts=charts(ctx, r),
        width=WIDTH,
        label=LABEL,
        months=r.months if month in r.months else [month, *r.months],
    )


async def report_csv(ctx: Ctx) -> Response:
    month = _month(ctx)
    r = await ctx.op(Requests.month_report(month))
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["month", "table", "key", "result", "count"])
    out.writerow([month, "active_users", "", "", r.active_users])
    out.writerow([month, "fraud_reports", "", "", r.fraud_reports])
    out.writerow([month, "lockouts", "", "", r.lockouts])
    for table, rows in (
        ("sign_ins", r.sign_ins),
        ("methods", r.methods),
        ("failures", r.failures),
        ("days", r.days),
        ("push_approval", r.push.buckets),
    ):
        for c in rows:
            out.writerow([month, table, c.key, c.result, c.count])
    return _download(buf.getvalue(), "text/csv; charset=utf-8", f"openmfa-report-{month}.csv")


async def report_svg(ctx: Ctx) -> Response:
    """One chart of a month as a file of its own (its look inside it)."""
    month = _month(ctx)
    r = await ctx.op(Requests.month_report(month))
    wanted = ctx.query("chart", 16)
    chart = next((c for c in charts(ctx, r) if c.name == wanted), None)
    if chart is None:
        raise PageError(ctx._("There is no such chart."), 404)
    svg = ctx.render_text(
        "_chart.svg", chart=chart, width=WIDTH, label=LABEL, month=month, standalone=True
    )
    return _download(svg, "image/svg+xml", f"openmfa-{chart.name}-{month}.svg")


def _download(text: str, media_type: str, name: str) -> Response:
    return Response(
        text,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
