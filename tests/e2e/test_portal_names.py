"""Names for one's methods and times in the browser's zone, in Debian's Chromium (Playwright)
on a 320 px phone against real node and portal processes: a method renamed on the portal shows
its name on the methods page and in the next sign-in's second step, and the time the page shows
is the moment in the time zone the browser was given; axe-core judges every page."""

from __future__ import annotations

import datetime
import shutil
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .browser import Visitor
from .test_portal_browser import OUTPUT, Site, chromium, site, totp

__all__ = ["chromium", "site"]  # the portal's module fixtures, started anew for this module
pytestmark = pytest.mark.e2e
ZONE = "Asia/Kolkata"


def test_a_renamed_method_in_the_sign_in_step_and_times_in_the_browsers_zone(
    site: Site, chromium: Any, request: pytest.FixtureRequest
) -> None:
    folder = OUTPUT / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    v = Visitor(chromium, folder, phone=(320, 640), timezone_id=ZONE)
    try:
        v.sign_in(site.portal, "gus")
        v.at("/portal/second-factor")
        assert "Yours: Phone app" in v.page.locator("#code-methods").inner_text()
        v.code(totp("gus"))
        v.at("/portal/methods")
        v.fits("methods")
        # The time the page shows is the moment, in the browser's zone (the script's).
        added = v.page.locator("tbody time").first
        moment = datetime.datetime.fromisoformat(str(added.get_attribute("datetime")))
        local = moment.astimezone(ZoneInfo(ZONE))
        shown = added.inner_text()
        hour = local.hour % 12 or 12  # the page's "en": a 12-hour clock
        assert f"{hour}:{local.minute:02d}:{local.second:02d}" in shown, shown
        assert "GMT+5:30" in shown and "UTC" not in shown and f" {local.day}," in shown, shown
        assert (added.get_attribute("title") or "").endswith(" UTC")

        v.page.get_by_role("link", name="Rename Phone app").click()
        v.at("/name")
        v.fits("rename")
        v.label("Name").fill("x" * 64 + "y")  # the field stops at 64; the node refuses more
        assert len(v.label("Name").input_value()) == 64
        v.label("Name").fill("Work phone")
        v.button("Save the name").click()
        v.at("/portal/methods")
        v.notice_says("The name was saved.")
        v.fits("renamed")
        assert v.page.locator("tbody tr td:first-child").first.inner_text().startswith("Work phone")
        v.button("Sign out").click()
        v.notice_says("You are signed out")
        v.sign_in(site.portal, "gus")
        v.at("/portal/second-factor")
        v.fits("second-factor-named")
        assert "Yours: Work phone" in v.page.locator("#code-methods").inner_text()
    finally:
        v.close()
    assert v.errors == [], f"console errors: {v.errors}"
