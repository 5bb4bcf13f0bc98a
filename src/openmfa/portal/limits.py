"""The size of what a browser or a relying party may POST to the portal, counted as it arrives.

A ``Content-Length`` header alone bounds nothing: a chunked body has none. ``read_form_body``
reads the body itself up to the limit and keeps it on the request, so ``request.form()`` parses
what was counted and never reads more.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

MAX_FORM = 16 * 1024
"""The largest form the portal takes (its largest, a passkey's answer, is a few kB)."""


async def read_form_body(request: Request, limit: int = MAX_FORM) -> str:
    """ "" when the body was read (within ``limit``) and kept for ``request.form()``; else what
    is wrong with it: "large" (over the limit, by its header or as it came), "length" (a
    ``Content-Length`` that is not a number) or "gone" (the client went away)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit() and len(length) <= 18):
            return "length"
        if int(length) > limit:
            return "large"
    data = bytearray()
    try:
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                return "large"
    except ClientDisconnect:
        return "gone"
    request._body = bytes(data)  # what Request.stream() and .form() read from now on
    return ""
