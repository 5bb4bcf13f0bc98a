"""The push as a second factor: sent to the person's phone, its number shown, and its
outcome waited for (by the page's script, or by its button when there is no script)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from ..runner import FORM_AGAIN, Ctx
from ..sentences import refusal
from . import remembered
from .sign_in import ENDED, can_push, pin_of, second_factor_page, signed_in


async def push_start(ctx: Ctx) -> Response:
    s = ctx.session
    if not s.ticket:
        return ctx.redirect("/sign-in")
    ctx.limited()
    no_app = ctx._("You have no mobile app activated, so no push can be sent. Type a code instead.")
    if not can_push(ctx, s):  # not asked of the node: it would count as a wrong code
        return await second_factor_page(ctx, no_app, FORM_AGAIN)
    remembered.chosen(ctx)  # kept for the push's collection
    step = await ctx.sdk.portal_push(s.ticket, pin=pin_of(ctx), **ctx.where)
    if step.pending is None:
        if step.reason in ENDED:
            s.ticket = ""
        # No push device: "no_method", or "malformed" from a node that took "push" for a
        # code of the person's other methods.
        message = no_app if step.reason in ("no_method", "malformed") else refusal(ctx, step.reason)
        return await second_factor_page(ctx, message, FORM_AGAIN)
    s.push_id, s.push_number = step.pending.id, step.pending.number
    return ctx.redirect("/push")


async def push_page(ctx: Ctx) -> Response:
    s = ctx.session
    if not s.push_id:
        return ctx.redirect("/second-factor")
    return ctx.render("push.html", number=s.push_number, error="")


async def push_wait(ctx: Ctx) -> Response:
    """The push's outcome: JSON for the page's script (``X-CSRF-Token``), a page for its
    button (no script)."""
    s = ctx.session
    script = "x-csrf-token" in ctx.request.headers
    if not s.push_id or not s.ticket:
        if script:
            return JSONResponse({"state": "gone", "next": ctx.url("/sign-in")})
        return ctx.redirect("/sign-in")
    step = await ctx.sdk.portal_push_collect(
        s.ticket, s.push_id, wait=20 if script else 0, remember=s.remember
    )
    if step.accepted:
        resp = await signed_in(ctx, step)
        if script:
            answer = JSONResponse({"state": "approved", "next": resp.headers["location"]})
            answer.raw_headers += [(k, v) for k, v in resp.raw_headers if k == b"set-cookie"]
            return answer
        return resp
    if step.reason == "pending":
        if script:
            return JSONResponse({"state": "pending"})
        return ctx.render(
            "push.html",
            FORM_AGAIN,
            number=s.push_number,
            error=ctx._("Not approved yet. Approve it on your phone, then try again."),
        )
    s.push_id = ""
    message = refusal(ctx, step.reason)
    if script:
        return JSONResponse(
            {"state": "refused", "message": message, "next": ctx.url("/second-factor")}
        )
    return await second_factor_page(ctx, message, FORM_AGAIN)
