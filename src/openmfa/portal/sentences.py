"""What the node's answers mean to the person, in their language: a refusal's reason, a
sign-in event, a method's kind and name. The node speaks in codes and English labels; these
are the only sentences the pages make of them."""

from __future__ import annotations

from typing import Protocol

from ..sdk.models import AuditView
from .runner import Ctx


class Named(Protocol):
    """A method as the node describes it (``MethodView``, ``MethodName``)."""

    @property
    def kind(self) -> str: ...
    @property
    def label(self) -> str: ...


def refusal(ctx: Ctx, reason: str) -> str:
    """Why a sign-in step was refused (the node's ``reason``)."""
    _ = ctx._
    messages = {
        "wrong_password": _("The user name or password is not right."),
        "wrong_code": _("That code is not right. Type the code your app shows now."),
        "replay": _("That code was used already. Wait for the next one."),
        "malformed": _("That is not a code. Type the digits your app shows."),
        "locked": _(
            "Your account is locked after too many failed attempts. Try again later, "
            "or ask your helpdesk."
        ),
        "disabled": _("Your account is disabled. Ask your helpdesk."),
        "unknown_user": _("The user name or password is not right."),
        "no_method": _(
            "You have no sign-in method yet, and this portal cannot add the first one "
            "by itself. Ask your helpdesk."
        ),
        "declined": _("The push was declined on the phone."),
        "denied": _(
            "The phone refused this sign-in: the number typed there did not match, or it was "
            "declined. Sign in again to try once more."
        ),
        "expired": _("The push was not answered in time. Send a new one."),
        "fraud": _(
            "You reported the push as not yours; push is now blocked. Your helpdesk has been told."
        ),
        "push_limited": _("Too many pushes just now. Wait a little, then try again."),
        "push_blocked": _("Push is blocked for your account. Type a code, or ask your helpdesk."),
        "push_unavailable": _("Push cannot be sent just now. Type a code instead."),
        "master_unreachable": _("The sign-in service is busy. Try again in a minute."),
        "wrong_passkey": _("The passkey was not accepted. Try again, or type a code."),
        "wrong_pin": _("The PIN is not right. Type your PIN, then the code."),
        "pin_not_set": _("This sign-in needs a PIN and you have none. Ask your helpdesk."),
        "method_not_allowed": _(
            "This sign-in asks for another kind of method than that one (your organisation's "
            "policy). Use one of the methods offered here, or ask your helpdesk."
        ),
    }
    return messages.get(reason, _("The sign-in was refused.") + f" ({reason})")


def describe(ctx: Ctx, e: AuditView) -> str:
    """What a sign-in event was, in the person's words."""
    _ = ctx._
    ok = e.result in ("ok", "accepted")
    if e.action in ("portal.sign_in", "primary"):
        return _("Password accepted") if ok else _("Wrong password")
    if e.action == "push.answer":
        return _("Approved on the phone") if ok else _("Not approved on the phone")
    if e.action == "fraud.report":
        return _("Reported as not you")
    if ok:
        return _("Signed in")
    if e.reason == "pending":
        return _("Push sent to the phone")
    return refusal(ctx, e.reason)


def channel(ctx: Ctx, e: AuditView) -> str:
    """Where a sign-in came from, in the person's words (the node's ``channel``)."""
    _ = ctx._
    if e.channel == "portal":
        return _("This portal")
    if e.channel == "radius":
        return _("Network sign-in (%(name)s)") % {"name": e.client.removeprefix("radius:")}
    if e.channel == "application":
        return _("Application %(name)s") % {"name": e.client}
    if e.channel == "phone":
        return _("The mobile app")
    if e.channel == "cli":
        return _("Helpdesk (command line)")
    return e.client


def browser_name(ctx: Ctx, browser: str, system: str) -> str:
    """A browser as the pages name it ("Firefox on Android"; "" when nothing is known)."""
    if browser and system:
        return ctx._("%(browser)s on %(system)s") % {"browser": browser, "system": system}
    return browser or system


def kind_names(ctx: Ctx) -> dict[str, str]:
    """Each kind of method's name on the pages."""
    _ = ctx._
    return {
        "totp": _("Authenticator app"),
        "hotp": _("Hardware token"),
        "backup-codes": _("Backup codes"),
        "push": _("Mobile app"),
        "passkey": _("Passkey"),
        "access-code": _("Temporary access code"),
    }


def method_name(ctx: Ctx, m: Named, names: dict[str, str]) -> str:
    """A method's name on the page: its label, unless the node gave it one of its own
    (in English), which is said in the person's language."""
    label = m.label.strip()
    if m.kind == "backup-codes" and label in ("", "backup codes"):
        return names[m.kind]
    if m.kind == "access-code" and label in ("", "temporary access code"):
        return names[m.kind]
    if m.kind == "push" and label in ("", "phone"):
        return names[m.kind]
    if m.kind in ("hotp", "totp") and label.startswith("token "):  # from the inventory
        return ctx._("Hardware token %(serial)s") % {"serial": label.removeprefix("token ")}
    return label or names.get(m.kind, m.kind)
