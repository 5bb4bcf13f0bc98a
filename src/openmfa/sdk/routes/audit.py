"""What happened and what runs: the audit log, this node's RADIUS counters, and the reports of
the portal, mobile-service and adapter hosts (``farm.components``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ...errors import Forbidden
from ...node import audit as audit_log
from ..http import _authorize, _body, _call, _int_param, _node, _time_param, json_response
from ..models import AuditPage, ComponentReply, ComponentReport, RadiusStats
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


async def radius_stats(request: Request) -> Response:
    node = _node(request)
    await _call(request, "audit:read", lambda c: None)
    stats = dict(node.radius.protocol.stats) if node.radius is not None else {}
    return json_response(RadiusStats(enabled=node.radius is not None, counters=stats))


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
