"""The person's sign-in methods: the list, the one asked for first, a name of their own for
each, removing one (after a fresh sign-in), a hardware token claimed by its serial, and new
backup codes shown once."""

from __future__ import annotations

from starlette.responses import Response

from ...errors import Conflict, InvalidInput, NotFound
from ..runner import FORM_AGAIN, Ctx, PageError
from ..sentences import kind_names, method_name

DEFAULT_KINDS = frozenset(["totp", "hotp", "push", "passkey"])
"""Methods a person may choose to be asked for first (backup and access codes are for
emergencies)."""


async def methods(ctx: Ctx) -> Response:
    ctx.session.removing = ""  # a removal not confirmed is forgotten
    me = await ctx.sdk.portal_me(ctx.session.token)
    names = kind_names(ctx)
    return ctx.render(
        "methods.html",
        user=me.user,
        methods=me.methods,
        names={m.id: method_name(ctx, m, names) for m in me.methods},
        kinds=names,
        default=me.user.default_method,
        can_default=DEFAULT_KINDS,
    )


async def make_default(ctx: Ctx) -> Response:
    """The method this person is asked for first at their next sign-in."""
    try:
        await ctx.sdk.portal_set_default(ctx.session.token, ctx.request.path_params["method_id"])
    except NotFound:
        raise PageError(ctx._("That sign-in method does not exist (any more)."), 404) from None
    except Conflict:
        raise PageError(
            ctx._("Choosing a default method is not possible until the upgrade is done."), 409
        ) from None
    ctx.session.notice = "default-chosen"
    return ctx.redirect("/methods")


async def rename(ctx: Ctx) -> Response:
    """GET: the form with the method's name now; POST: the new name (the node's rules)."""
    method_id = ctx.request.path_params["method_id"][:64]
    error, label = "", ""
    if ctx.request.method == "POST":
        label = ctx.field("label", 256)
        try:
            await ctx.sdk.portal_rename_method(ctx.session.token, method_id, label)
            ctx.session.notice = "renamed"
            return ctx.redirect("/methods")
        except InvalidInput:
            error = ctx._("A name is 1 to 64 letters, digits, spaces or signs, on one line.")
        except NotFound:
            raise PageError(ctx._("That sign-in method does not exist (any more)."), 404) from None
        except Conflict:
            raise PageError(
                ctx._("Naming a method is not possible until the upgrade is done."), 409
            ) from None
    me = await ctx.sdk.portal_me(ctx.session.token)
    method = next((m for m in me.methods if m.id == method_id), None)
    if method is None:
        raise PageError(ctx._("That sign-in method does not exist (any more)."), 404)
    name = method_name(ctx, method, kind_names(ctx))
    return ctx.render(
        "rename.html", FORM_AGAIN, method=method, name=name, label=label or name, error=error
    )


async def remove_method(ctx: Ctx) -> Response:
    """Removing a method always asks for a fresh sign-in first (password and a second
    factor); the removal is done right after it (:func:`finish_removal`)."""
    s = ctx.session
    s.removing = ctx.request.path_params["method_id"][:64]
    s.next_page, s.notice = "/methods", "reauth"
    return ctx.redirect("/confirm")


async def finish_removal(ctx: Ctx) -> None:
    """The removal asked for before the fresh sign-in that just succeeded."""
    s = ctx.session
    method_id, s.removing = s.removing, ""
    try:
        await ctx.sdk.portal_remove_method(s.token, method_id, **ctx.where)
    except NotFound:
        raise PageError(ctx._("That sign-in method does not exist (any more)."), 404) from None
    s.notice = "removed"


async def token_page(ctx: Ctx) -> Response:
    return ctx.render("token.html", serial="", error="")


async def token_claim(ctx: Ctx) -> Response:
    """A person adds the hardware token in their hand: its serial and a code it shows."""
    serial, code = ctx.field("serial", 64).strip(), ctx.field("code", 64).replace(" ", "")
    try:
        await ctx.sdk.portal_claim_token(ctx.session.token, serial, code)
    except (InvalidInput, Conflict) as exc:
        error = (
            ctx._("Too many wrong codes. Please try again in 15 minutes.")
            if isinstance(exc, Conflict) and "too many" in exc.message
            else ctx._("Adding a hardware token is not possible until the upgrade is done.")
            if isinstance(exc, Conflict)
            else ctx._(
                "That serial number and code do not match a token that can be added. "
                "Check the serial number and type the code the token shows now."
            )
        )
        return ctx.render("token.html", FORM_AGAIN, serial=serial, error=error)
    ctx.session.notice = "token-added"
    return ctx.redirect("/methods")


async def backup_codes(ctx: Ctx) -> Response:
    """POST: new backup codes (the old ones end); GET: them, shown this once."""
    s = ctx.session
    if ctx.request.method == "POST":
        done = await ctx.sdk.portal_backup_codes(s.token, **ctx.where)
        s.shown_once = list(done.backup_codes or [])
        return ctx.redirect("/backup-codes")
    codes, s.shown_once = s.shown_once, []
    if not codes:
        return ctx.redirect("/methods")
    return ctx.render("backup_codes.html", codes=codes)
