"""What a security notice says: which audit events are noticed, and the words, in English and
Dutch (the node's own small catalogue; the portal's catalogue is the portal's).

Pure: an audit row's values in, a ``Notice`` (subject, plain text, the facts for a webhook)
out, in the language the caller names (``notify``: the person's, which the portal tells the
node, else ``[notify] language``).

"From" says where the change came from: the row's origin when it has one (``audit.Origin``,
opened by the caller: the browser's or RADIUS caller's address, the browser's name and system)
with the channel it came through (the portal, a RADIUS client, an application's API key);
otherwise, as before origins were kept, the API key's name or the node.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import jinja2

from .audit import NOWHERE, Origin

NOTICED = {
    "method.add": "method_added",
    "device.activate": "device_added",
    "method.remove": "method_removed",
    "user.password": "password_changed",
    "password.change": "password_changed",
    "fraud.report": "fraud_reported",
    "lockout": "locked",
    "bypass.grant": "bypass_issued",
}
"""Audit action -> kind of notice. Only rows with result ``ok`` are noticed (a refused
activation changed nothing). A verification (``authenticate``) is never one. A password is
changed by an administrator (``user.password``) or by the person at the portal
(``password.change``, ``node.password_change``): both are noticed."""

LANGUAGES = ("en", "nl")

_WHAT: dict[str, dict[str, str]] = {
    "en": {
        "method_added": "A sign-in method was added to your account",
        "device_added": "A phone was activated for push sign-in on your account",
        "method_removed": "A sign-in method was removed from your account",
        "password_changed": "Your password was changed",
        "fraud_reported": "A push sign-in request was reported as not made by you",
        "locked": "Your account was locked after too many failed sign-ins",
        "bypass_issued": "A temporary bypass of the second factor was issued for your account",
        "access_code_issued": "A temporary access code was issued for your account",
    },
    "nl": {
        "method_added": "Er is een aanmeldmethode aan uw account toegevoegd",
        "device_added": "Er is een telefoon geactiveerd voor aanmelden met push op uw account",
        "method_removed": "Er is een aanmeldmethode van uw account verwijderd",
        "password_changed": "Uw wachtwoord is gewijzigd",
        "fraud_reported": "Een pushverzoek om aan te melden is gemeld als niet door u gedaan",
        "locked": "Uw account is geblokkeerd na te veel mislukte aanmeldpogingen",
        "bypass_issued": "Er is een tijdelijke uitzondering op de tweede factor voor uw account "
        "uitgegeven",
        "access_code_issued": "Er is een tijdelijke toegangscode voor uw account uitgegeven",
    },
}

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "hello": "Hello {name},",
        "when": "When",
        "where": "From",
        "account": "Account",
        "detail": "Details",
        "was_you": "If this was you, there is nothing to do.",
        "not_you": "If this was not you, contact your helpdesk at once and tell them the time "
        "above: someone else may know your password or hold one of your sign-in methods.",
        "security": "Security notice for {name}: {what}",
        "on": "{browser} on {system}",
        "via_portal": "through the portal",
        "via_phone": "through the phone app",
        "via_radius": "through RADIUS client {name}",
        "via": "through {name}",
    },
    "nl": {
        "hello": "Beste {name},",
        "when": "Wanneer",
        "where": "Vanaf",
        "account": "Account",
        "detail": "Details",
        "was_you": "Was u dit zelf, dan hoeft u niets te doen.",
        "not_you": "Was u dit niet, neem dan direct contact op met uw helpdesk en noem de tijd "
        "hierboven: iemand anders kent misschien uw wachtwoord of heeft een van uw "
        "aanmeldmethoden.",
        "security": "Beveiligingsmelding voor {name}: {what}",
        "on": "{browser} op {system}",
        "via_portal": "via het portaal",
        "via_phone": "via de telefoonapp",
        "via_radius": "via RADIUS-client {name}",
        "via": "via {name}",
    },
}

# Plain text (a mail body, never HTML): nothing to escape.
_TEMPLATE = jinja2.Environment(autoescape=False, keep_trailing_newline=True).from_string(  # noqa: S701
    """{{ w.hello.format(name=name) }}

{{ what }}.

{{ w.when }}: {{ when }}
{{ w.where }}: {{ where }}
{{ w.account }}: {{ user }}
{% if detail %}{{ w.detail }}: {{ detail }}
{% endif %}
{{ w.was_you }}
{{ w.not_you }}
"""
)


@dataclass(frozen=True)
class Notice:
    kind: str
    user: str
    subject: str
    text: str
    facts: dict[str, Any]
    """What a webhook receives (JSON): event, user, at, from, detail, audit id, node."""


def noticed(action: str, result: str) -> bool:
    return result == "ok" and action in NOTICED


def kind_of(action: str, detail: str) -> str:
    """The kind of notice an audit row is (a temporary access code is a ``method.add``)."""
    if action == "method.add" and detail.startswith("access-code"):
        return "access_code_issued"
    return NOTICED[action]


def render(
    row: Any,
    language: str,
    display_name: str = "",
    origin: Origin = NOWHERE,
    channel: str = "",
) -> Notice:
    """The notice for audit row ``row`` (id, at, node, action, user_name, client, method_id,
    reason, detail) in ``language`` (``en`` or ``nl``); ``origin``: the row's, opened
    (``audit.open_origin``), ``channel``: the one its client came by (``audit.channel``)."""
    lang = language if language in LANGUAGES else "en"
    kind = kind_of(row.action, row.detail)
    what = _WHAT[lang][kind]
    when = dt.datetime.fromtimestamp(row.at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    where = _one_line(_where(row, lang, origin, channel))
    detail = _detail(row)
    name = display_name or row.user_name
    text = _TEMPLATE.render(
        w=_WORDS[lang],
        name=name,
        what=what,
        when=when,
        where=where,
        user=row.user_name,
        detail=detail,
    )
    subject = _WORDS[lang]["security"].format(name=row.user_name, what=what)
    facts = {
        "event": kind,
        "action": row.action,
        "user": row.user_name,
        "at": row.at,
        "from": where,
        "detail": detail,
        "audit_id": row.id,
        "node": row.node,
    }
    return Notice(kind, row.user_name, _one_line(subject), text, facts)


def _where(row: Any, lang: str, origin: Origin, channel: str) -> str:
    """The "From" of a notice: "203.0.113.7 (Firefox on Android), through the portal"; without
    an origin, the API key's name or the node."""
    if origin == NOWHERE:
        return str(row.client or row.node)
    w = _WORDS[lang]
    if origin.browser and origin.system:
        device = w["on"].format(browser=origin.browser, system=origin.system)
    else:
        device = origin.browser or origin.system
    place = origin.address or device
    if origin.address and device:
        place += f" ({device})"
    client = str(row.client or "")
    if channel == "portal":
        via = w["via_portal"]
    elif channel == "phone":
        via = w["via_phone"]
    elif channel == "radius":
        via = w["via_radius"].format(name=client.removeprefix("radius:"))
    elif client and client != "cli":
        via = w["via"].format(name=client)
    else:
        via = ""
    return f"{place}, {via}" if via else place


def _detail(row: Any) -> str:
    parts = [p for p in (row.method_id, row.detail) if p]
    return _one_line(" ".join(parts))[:200]


def _one_line(text: str) -> str:
    """No line breaks in a header or a fact (a value from a request must not add headers)."""
    return " ".join(str(text).split())
