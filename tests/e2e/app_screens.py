"""The OpenMFA Authenticator web app as a person on a phone sees and taps it, for its browser
tests (test_authenticator_app.py): its screens found by their headings, fields by their labels,
the keypad by its buttons; and the portal's push page beside it."""

from __future__ import annotations

import re
from typing import Any

from .app_site import Site
from .browser import PASSWORD, Visitor, playwright_api

expect = playwright_api.expect


def heading(v: Visitor, text: str) -> None:
    expect(v.page.get_by_role("heading", level=1, name=text, exact=True)).to_be_visible()


def account(v: Visitor, user: str) -> Any:
    """The account's card on the app's home screen."""
    cards = v.page.locator("#accounts .account")
    return cards.filter(has=v.page.get_by_text(user, exact=True))


def activate(v: Visitor, link: str, user: str, shots: bool = False) -> None:
    """Open the activation link on the phone (as its camera would) and press Activate."""
    v.page.goto(link)
    heading(v, "Activate this phone")
    expect(v.label("Activation code")).to_have_value(link.split("#activate=")[1])
    if shots:
        v.fits("activate")
    v.button("Activate").tap()
    heading(v, "Sign-in requests")
    expect(account(v, user)).to_be_visible()
    assert "#" not in v.page.url, v.page.url  # the code is taken out of the address


def open_request(v: Visitor, user: str, request_id: str = "") -> None:
    """Tap the request waiting for ``user`` (the one with ``request_id``) on the home screen."""
    card = f'#requests li[data-request="{request_id}"]' if request_id else "#requests li"
    v.page.locator(card + " .open", has_text=user).tap()
    heading(v, "Is this you signing in?")


def tap_number(v: Visitor, digits: str, shows: str | None = None) -> None:
    """Tap ``digits`` on the app's keypad; the number field then shows ``shows``."""
    keypad = v.page.get_by_role("group", name="Number keypad")
    for digit in digits:
        keypad.get_by_role("button", name=digit, exact=True).tap()
    field = v.label("Type the number shown where you are signing in")
    expect(field).to_have_value(digits if shows is None else shows)


def result(v: Visitor, title: str) -> None:
    heading(v, title)


def context_of(v: Visitor) -> dict[str, str]:
    """The request screen's who / application / from / when."""
    terms = v.page.locator("#request-context dt").all_inner_texts()
    values = v.page.locator("#request-context dd").all_inner_texts()
    return dict(zip(terms, values, strict=True))


def portal_push(site: Site, v: Visitor, user: str) -> str:
    """Sign in to the portal with the password, then ask for a push: the number it shows.
    (The portal's own pages are judged by test_portal_browser.py.)"""
    v.page.goto(site.portal + "/")
    v.label("User name").fill(user)
    v.label("Password").fill(PASSWORD)
    v.button("Sign in").click()
    v.button("Send a push to my phone").click()
    v.at("/portal/push")
    number = v.page.locator(".number").inner_text().strip()
    assert re.fullmatch(r"\d{2,8}", number), number
    return number


def portal_refused(v: Visitor, text: str) -> None:
    """The portal's push page says by itself that the sign-in was refused."""
    expect(v.page.locator("#wait-status")).to_contain_text(text, timeout=30_000)
    v.at("/portal/push")


def phone_with(site: Site, v: Visitor, user: str, *, password: bool = False) -> None:
    """A user whose phone ``v`` has the app activated."""
    site.person(user, password=password)
    activate(v, site.link(user), user)


def caches(v: Visitor) -> list[str] | None:
    """The page's caches by name (None while a new shell reloads the page)."""
    try:
        found: list[str] = v.page.evaluate("async () => (await caches.keys()).sort()")
    except playwright_api.Error:
        return None
    v.page.wait_for_timeout(100)
    return found
