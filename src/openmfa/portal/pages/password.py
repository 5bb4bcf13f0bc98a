"""My password: the person changes the password they sign in with — the node's own, or their
directory's where the node may change it (``node.password_change`` holds the rules; this page
asks for the current password and the new one twice, and says in plain words what was
wrong). A change signs the person out everywhere else; this session goes on."""

from __future__ import annotations

from starlette.responses import Response

from ...errors import InvalidInput, Reauthenticate
from ...sdk.models import PasswordPolicy
from ..runner import FORM_AGAIN, Ctx
from ..sentences import refusal

NEW_LIMIT = 1024
"""Characters of a new password read from the form (the node refuses more than 128)."""


async def password(ctx: Ctx) -> Response:
    s = ctx.session
    if ctx.request.method == "GET":
        policy = await ctx.sdk.portal_password_policy(s.token)  # fresh, or /confirm first
        return _page(ctx, policy)
    ctx.limited()
    current = ctx.field("current", 128)
    new = ctx.field("new", NEW_LIMIT)
    again = ctx.field("again", NEW_LIMIT)
    try:
        policy = await ctx.sdk.portal_password_policy(s.token)
        if not current or not new:
            return _page(ctx, policy, ctx._("Type your current password, then the new one twice."))
        if new != again:
            differ = ctx._("The two new passwords are not the same. Type the new one twice.")
            return _page(ctx, policy, differ)
        done = await ctx.sdk.portal_change_password(s.token, current, new, **ctx.where)
    except Reauthenticate:  # the sign-in is too old: confirm it is them, then back here
        s.next_page, s.notice = "/password", "reauth"
        return ctx.redirect("/confirm")
    except InvalidInput:
        return _page(ctx, policy, _why(ctx, "too_long", policy.min_length))
    if not done.changed:
        return _page(ctx, policy, _why(ctx, done.reason, policy.min_length, done.detail))
    sessions = ctx.portal.sessions
    sessions.drop_user(s.user)  # signed out of every other session on this portal at once
    sessions.adopt(s)
    s.token, s.token_expires = done.token, done.expires_at
    sessions.renew(s)
    s.notice = "password-changed"
    return ctx.redirect("/methods")


def _page(ctx: Ctx, policy: PasswordPolicy, error: str = "") -> Response:
    return ctx.render("password.html", FORM_AGAIN, policy=policy, error=error)


def _why(ctx: Ctx, reason: str, min_length: int, said: str = "") -> str:
    """What the node's ``reason`` for refusing a new password means, in plain words."""
    _ = ctx._
    if reason == "too_short":
        return _(
            "The new password is too short: use at least %(n)s characters. A few unrelated "
            "words make a long password that is easy to remember."
        ) % {"n": min_length}
    if reason == "refused":
        return _(
            "The directory refused the new password. It said: “%(said)s”. Choose another one, "
            "or ask your helpdesk."
        ) % {"said": said}
    messages = {
        "wrong_password": _("Your current password is not right."),
        "too_long": _("The new password is too long: use at most 128 characters."),
        "same": _("The new password is your current one. Choose a new one."),
        "common": _(
            "The new password is on a list of common passwords, or made from one (a common "
            "word with digits added, your user name, a row of the keyboard). Choose another "
            "one: a few unrelated words make a good password."
        ),
        "unavailable": _(
            "Your password cannot be changed just now: the directory cannot be reached. "
            "Try again later."
        ),
        "not_here": _(
            "Your password cannot be changed here. Change it where you usually do, or ask "
            "your helpdesk."
        ),
    }
    return messages.get(reason) or refusal(ctx, reason)
