"""The SDK's routes, one module per group, each declaring its routes next to their handlers
(``ROUTES``); ``TABLE`` is all of them, in the order the OpenAPI document lists them."""

from __future__ import annotations

from ..table import Declared
from . import (
    admin,
    audit,
    authenticate,
    console,
    devices,
    oidc,
    portal,
    portal_me,
    portal_password,
    portal_sessions,
    privacy,
    system,
    tokens,
    users,
)

TABLE: list[Declared] = [
    *system.ROUTES,
    *authenticate.ROUTES,
    *users.ROUTES,
    *privacy.ROUTES,
    *devices.ROUTES,
    *portal.ROUTES,
    *portal_me.ROUTES,
    *portal_sessions.ROUTES,
    *portal_password.ROUTES,
    *oidc.ROUTES,
    *tokens.ROUTES,
    *audit.ROUTES,
    *console.ROUTES,
    *admin.ROUTES,
]
"""Every SDK route, declared once: the app serves these and the document lists them."""

__all__ = ["TABLE", "Declared"]
