"""The routes that are not pages (no session, no form): the theme's static files and the
health answer a load balancer asks."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from ...errors import OpenMfaError
from ..runner import Portal

HEALTH_EVERY = 2.0
"""Seconds ``/healthz`` trusts its last question to a node."""


async def static(portal: Portal, request: Request) -> Response:
    """A file of the theme (the chosen one's, else the shipped Default's)."""
    name = request.path_params["name"]
    for folder in portal.static_dirs:
        path = (folder / name).resolve()
        if path.is_relative_to(folder.resolve()) and path.is_file():
            return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
    return Response("not found", status_code=404, media_type="text/plain")


async def healthz(portal: Portal, request: Request) -> Response:
    """``ok`` when a node answered within the last two seconds (asked at most that often),
    ``degraded`` otherwise: the portal serves, but nobody can sign in."""
    now = time.monotonic()
    if now - portal.reached_at > HEALTH_EVERY:
        portal.reached_at = now
        try:
            await portal.sdk.version()
            portal.reached = True
        except OpenMfaError:
            portal.reached = False
    status = "ok" if portal.reached else "degraded"
    return JSONResponse({"status": status, "sessions": len(portal.sessions)})
