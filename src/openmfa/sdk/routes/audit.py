"""What happened and what runs: the audit log, this node's RADIUS counters, and the reports of
the portal, mobile-service and adapter hosts (``farm.components``).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from ...errors import Forbidden
from ...node import audit as audit_log
from ...node.report_counts import month_of
from ..http import _authorize, _body, _call, _int_param, _node, _time_param, json_response
from ..models import (
    MONTH_PATTERN,
    AuditPage,
    ComponentReply,
    ComponentReport,
    Dashboard,
    MonthReport,
    RadiusStats,
)
from ..table import LIMIT, SINCE, Declared, query_int, query_str


async def component_report(request: Request) -> Response:
    """A portal, mobile-service or adapter host reports what it runs (``farm.components``);
    its key's scope must be the kind it says it is. The answer holds the farm's order for it."""
    node = _node(request)
    client = await _authorize(request, "report")
    b = await _body(request, ComponentReport, node.max_body)
    if b.kind != client.scope:
        raise Forbidden(
            f"API key {client.name!r} has scope {client.scope!r}; a {b.kind} reports with a "
            f"key of scope {b.kind!r}"
        )
    order = node.components.report(b)
    return json_response(ComponentReply(order=order, every=node.components.every()))


async def audit(request: Request) -> Response:
    node = _node(request)
    q = request.query_params
    since = _time_param(q.get("since"))
    limit = _int_param(request, "limit", 100, 1, 1000)
    after_id = _int_param(request, "after_id", 0, 0, 2**62)
    found = await _call(
        request,
        "audit:read",
        lambda c: audit_log.query(
            node.store, user=q.get("user"), since=since, limit=limit, after_id=after_id
        ),
    )
    return json_response(
        AuditPage(events=found, next_after_id=found[-1].id if len(found) == limit else None)
    )


async def dashboard(request: Request) -> Response:
    node = _node(request)
    found = await _call(request, "audit:read", lambda c: node.reports.dashboard())
    return json_response(found)


async def month_report(request: Request) -> Response:
    node = _node(request)
    month = request.query_params.get("month")  # absent: this month; empty: refused
    if month is None:
        month = month_of(time.time())
    found = await _call(request, "audit:read", lambda c: node.reports.month(month))
    return json_response(found)


async def radius_stats(request: Request) -> Response:
    node = _node(request)
    await _call(request, "audit:read", lambda c: None)
    stats = dict(node.radius.protocol.stats) if node.radius is not None else {}
    return json_response(RadiusStats(enabled=node.radius is not None, counters=stats))


MONTH = {
    "name": "month",
    "in": "query",
    "description": "YYYY-MM (UTC); this month when absent",
    "schema": {"type": "string", "pattern": MONTH_PATTERN},
}

ROUTES: list[Declared] = [
    Declared(
        "POST",
        "/v1/components/report",
        "report",
        "A portal, mobile-service, adapter or console host says what it runs (its key's scope "
        "is its kind); the answer holds the farm's order for it, if any",
        ComponentReport,
        ComponentReply,
        200,
        component_report,
    ),
    Declared(
        "GET",
        "/v1/audit",
        "audit:read",
        "Audit events (?user, ?since, ?limit, ?after_id)",
        None,
        AuditPage,
        200,
        audit,
        query=(query_str("user"), SINCE, LIMIT, query_int("after_id", 0, 2**62, 0)),
    ),
    Declared(
        "GET",
        "/v1/reports/dashboard",
        "audit:read",
        "The last 24 hours at a glance: decisions by channel and result, failures by reason, "
        "locked people, fraud reports, lockouts (counted from the audit log off the sign-in "
        "path)",
        None,
        Dashboard,
        200,
        dashboard,
    ),
    Declared(
        "GET",
        "/v1/reports/month",
        "audit:read",
        "A month's report (UTC; ?month=YYYY-MM, this month by default): active people, "
        "decisions by channel and result, the method mix, failures by reason, push approval "
        "times, fraud reports, lockouts",
        None,
        MonthReport,
        200,
        month_report,
        query=(MONTH,),
    ),
    Declared(
        "GET",
        "/v1/radius/stats",
        "audit:read",
        "RADIUS counters of this node",
        None,
        RadiusStats,
        200,
        radius_stats,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
