"""The OpenMFA Authenticator web app (issue 32) on a phone: Debian's Chromium, driven by
Playwright, with a phone's screen (390x844 CSS pixels, touch), against a real node serving the
mobile service inside it, a portal, and ``openmfa mobile serve`` where WebPush or an
administrator's own copy of the app is needed (app_site.py). Every app screen is screenshot
(under test-output/app/) and judged by axe-core; a console error fails the test. The person
taps, as on a phone (app_screens.py); what they type comes from what the portal or the RADIUS
reply shows."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from openmfa.core import push as proto
from openmfa.sdk.client import SdkClient

from .app_screens import (
    account,
    activate,
    caches,
    context_of,
    heading,
    open_request,
    phone_with,
    portal_push,
    portal_refused,
    result,
    tap_number,
)
from .app_site import (
    SEED,
    WEBAPP,
    OwnApp,
    Site,
    radclient,
    serving_own_app,
    serving_site,
    subscribing,
)
from .browser import OUTPUT as OUTPUT_ROOT
from .browser import Visitor, launch, playwright_api
from .helpers import VIRTUAL_AUTHENTICATOR, free_port, init, oathtool, server, wait_for

OUTPUT = OUTPUT_ROOT / "app"
SCREEN = (390, 844)
pytestmark = pytest.mark.e2e
expect = playwright_api.expect


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serving_site(tmp_path_factory.mktemp("app-site")) as served:
        yield served


@pytest.fixture(scope="module")
def own(site: Site) -> Iterator[OwnApp]:
    with serving_own_app(site) as served:
        yield served


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launch() as browser:
        yield browser


@pytest.fixture
def folder(request: pytest.FixtureRequest) -> Path:
    where = OUTPUT / request.node.name
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    return where


@pytest.fixture
def phone(chromium: Any, folder: Path) -> Iterator[Visitor]:
    """The person's phone, the app not yet opened in it."""
    (folder / "phone").mkdir()
    v = Visitor(chromium, folder / "phone", phone=SCREEN)
    try:
        yield v
    finally:
        v.close()
    assert v.errors == [], f"console errors on the phone: {v.errors}"


@pytest.fixture
def desktop(chromium: Any, folder: Path) -> Iterator[Visitor]:
    """Where the person signs in: the portal on a computer."""
    (folder / "portal").mkdir()
    v = Visitor(chromium, folder / "portal")
    try:
        yield v
    finally:
        v.close()
    assert v.errors == [], f"console errors on the computer: {v.errors}"


def test_activation_from_the_portals_qr_code(site: Site, phone: Visitor, desktop: Visitor) -> None:
    site.person("ada", password=True, totp=True)
    desktop.sign_in(site.portal, "ada")
    desktop.code(oathtool("--totp", "-b", SEED))
    desktop.button("Activate the mobile app").click()
    desktop.see("portal-activate-mobile-app")
    code = desktop.page.locator("#activation-code").inner_text().strip()
    link = desktop.qr("QR code to activate the mobile app")
    assert link == f"{site.mobile}/app/#activate={code}", link
    assert desktop.page.locator("#activation-link").get_attribute("href") == link

    # The app opened bare first: it welcomes and offers to activate.
    phone.page.goto(site.mobile + "/app/")
    heading(phone, "Welcome")
    phone.fits("welcome")
    # The QR code's link opened into it: the code is filled in; one press activates.
    activate(phone, link, "ada", shots=True)
    card = account(phone, "ada")
    expect(card.locator(".code")).to_have_text(re.compile(r"^\d{6}$"))
    expect(card.locator(".where")).to_contain_text("localhost")
    phone.fits("home")
    # The portal's page noticed by itself.
    desktop.page.wait_for_url(re.compile(r".*/portal/methods$"), timeout=30_000)
    desktop.notice_says("mobile app is activated")
    assert "Mobile app" in desktop.page.locator("tbody").inner_text()
    # Opened again later: the account is there, no activation offered again.
    phone.page.reload()
    heading(phone, "Sign-in requests")
    expect(account(phone, "ada")).to_be_visible()
    # A used code typed again is refused, in words.
    phone.button("Add an account").tap()
    heading(phone, "Activate this phone")
    phone.label("Activation code").fill(code)
    phone.expected.append("status of 4")  # the refused activation's status in the console
    phone.button("Activate").tap()
    phone.alert_says("cannot be used")
    phone.fits("activate-refused")


def test_a_portal_sign_in_approved_by_typing_the_number(
    site: Site, phone: Visitor, desktop: Visitor
) -> None:
    phone_with(site, phone, "ben", password=True)
    number = portal_push(site, desktop, "ben")
    desktop.see("portal-push-number")
    request = phone.page.locator("#requests .open", has_text="ben")
    expect(request).to_contain_text("Sign-in to portal")
    phone.fits("home-a-request-waits")
    open_request(phone, "ben")
    seen = context_of(phone)
    assert seen["Account"] == "ben" and seen["Application"] == "portal", seen
    # (The portal does not tell the node the person's address: "From" says unknown.)
    assert list(seen) == ["Account", "Application", "From", "When"] and seen["When"], seen
    expect(phone.page.locator("#request-left")).to_have_text(re.compile(r"^\d+ seconds left$"))
    phone.fits("request")
    slip = "9" if number[-1] != "9" else "8"
    tap_number(phone, number[:-1] + slip)
    phone.page.get_by_role("button", name="Delete the last digit").tap()
    tap_number(phone, number[-1], shows=number)
    phone.fits("request-number-typed")
    # The narrowest phone: still no sideways scrolling.
    phone.page.set_viewport_size({"width": 320, "height": 640})
    phone.phone = (320, 640)
    phone.fits("request-320px")
    phone.button("Approve").tap()
    result(phone, "Approved")
    phone.fits("approved")
    desktop.page.wait_for_url(re.compile(r".*/portal/methods$"), timeout=30_000)
    phone.button("Done").tap()
    heading(phone, "Sign-in requests")
    expect(phone.page.locator("#none-waiting")).to_be_visible()


def test_a_wrong_number_is_refused(site: Site, phone: Visitor, desktop: Visitor) -> None:
    phone_with(site, phone, "cleo", password=True)
    number = portal_push(site, desktop, "cleo")
    open_request(phone, "cleo")
    phone.button("Approve").tap()  # no number yet: the app asks for it, sends nothing
    phone.alert_says("Type the number")
    phone.fits("request-no-number")
    tap_number(phone, "10" if number != "10" else "11")
    phone.button("Approve").tap()
    result(phone, "Refused: the number did not match")
    phone.fits("refused-wrong-number")
    portal_refused(desktop, "the number typed there did not match")
    desktop.see("portal-refused-wrong-number")


def test_deny(site: Site, phone: Visitor, desktop: Visitor) -> None:
    phone_with(site, phone, "dan", password=True)
    portal_push(site, desktop, "dan")
    open_request(phone, "dan")
    phone.button("Deny").tap()
    result(phone, "Denied")
    phone.fits("denied")
    portal_refused(desktop, "or it was declined")


def test_this_was_not_me_reports_and_blocks_push(
    site: Site, phone: Visitor, desktop: Visitor
) -> None:
    phone_with(site, phone, "eve", password=True)
    portal_push(site, desktop, "eve")
    open_request(phone, "eve")
    phone.button("This wasn't me").tap()
    result(phone, "Reported")
    phone.fits("reported")
    portal_refused(desktop, "reported the push as not yours")
    with site.sdk() as sdk:
        assert sdk.authenticate("eve", push=True).reason == "push_blocked"


def test_in_dutch_on_the_narrowest_phone(site: Site, chromium: Any, folder: Path) -> None:
    """The phone's language is Dutch: the app's words come from the portal's catalogue
    (strings/nl.json); longer words on a 320 px screen still fit."""
    v = Visitor(chromium, folder, locale="nl-NL", phone=(320, 640))
    try:
        site.person("joy")
        v.page.goto(site.link("joy"))
        heading(v, "Deze telefoon activeren")
        assert v.page.locator("html").get_attribute("lang") == "nl"
        v.fits("activeren")
        v.button("Activeren").tap()
        heading(v, "Aanmeldverzoeken")
        expect(account(v, "joy")).to_be_visible()
        v.fits("start")
        with site.sdk() as sdk:
            pending = sdk.authenticate("joy", push=True).pending
            assert pending is not None
            v.page.locator("#requests .open", has_text="joy").tap()
            heading(v, "Bent u het die zich aanmeldt?")
            v.fits("verzoek")
            keypad = v.page.get_by_role("group", name="Cijfertoetsen")
            for digit in pending.number:
                keypad.get_by_role("button", name=digit, exact=True).tap()
            v.button("Goedkeuren").tap()
            heading(v, "Goedgekeurd")
            v.fits("goedgekeurd")
            assert sdk.push_outcome(pending.id, wait=10).accepted
        assert v.errors == [], v.errors
    finally:
        v.close()


def test_the_offline_code_with_the_phone_offline(site: Site, phone: Visitor) -> None:
    phone_with(site, phone, "fay")
    phone.context.set_offline(True)
    phone.expected += ["ERR_INTERNET_DISCONNECTED", "Failed to fetch", "sw.js"]
    phone.page.reload()  # the service worker's copy of the app opens it
    heading(phone, "Sign-in requests")
    expect(phone.page.locator("#offline")).to_contain_text("offline codes still work")
    code = account(phone, "fay").locator(".code")
    expect(code).to_have_text(re.compile(r"^\d{6}$"))
    phone.fits("offline")
    with site.sdk() as sdk:
        assert sdk.authenticate("fay", code.inner_text()).accepted
    phone.context.set_offline(False)
    expect(phone.page.locator("#offline")).to_be_hidden(timeout=30_000)


def test_the_keys_cannot_be_taken_out_of_the_phone(site: Site, phone: Visitor) -> None:
    phone_with(site, phone, "gus")
    found = phone.page.evaluate(
        """async () => {
          const db = await new Promise((ok, no) => {
            const r = indexedDB.open('openmfa-authenticator');
            r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
          });
          const all = await new Promise((ok, no) => {
            const r = db.transaction('accounts').objectStore('accounts').getAll();
            r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
          });
          db.close();
          const out = {accounts: all.length};
          const keys = {device: [all[0].key.privateKey, ['pkcs8', 'jwk']],
                        totp: [all[0].totp, ['raw', 'jwk']]};
          for (const [name, [key, formats]] of Object.entries(keys)) {
            out[name] = {extractable: key.extractable, type: key.type, exported: []};
            for (const f of formats) {
              try { await crypto.subtle.exportKey(f, key); out[name].exported.push(f); }
              catch (e) { out[name].error = e.name; }
            }
          }
          out.secret = JSON.stringify(all[0]).match(/[A-Z2-7]{16,}/) !== null;
          return out;
        }"""
    )
    assert found["accounts"] == 1, found
    for name, kind in (("device", "private"), ("totp", "secret")):
        assert found[name]["type"] == kind, found
        assert found[name]["extractable"] is False, found
        assert found[name]["exported"] == [] and found[name]["error"] == "InvalidAccessError"
    assert not found["secret"], found  # the seed itself is not kept beside the key


def test_a_radius_challenge_approved_in_the_app(site: Site, phone: Visitor) -> None:
    phone_with(site, phone, "ivy")
    kind, attrs = radclient(site, {"User-Name": "ivy", "User-Password": ""})
    assert kind == "Access-Challenge", (kind, attrs)
    number = attrs["Reply-Message"].rsplit(": ", 1)[1]
    open_request(phone, "ivy")
    assert context_of(phone)["Application"] == "radius:gw"
    tap_number(phone, number)
    phone.button("Approve").tap()
    result(phone, "Approved")
    kind, _ = radclient(
        site, {"User-Name": "ivy", "User-Password": "", "State": attrs["State"]}, timeout=10
    )
    assert kind == "Access-Accept"


def test_webpush_wakes_the_closed_app_and_its_notification_opens_the_request(
    site: Site, own: OwnApp, chromium: Any, folder: Path
) -> None:
    script, receiving, auth = subscribing(own.pushes.url + "/push/kim-phone")
    v = Visitor(chromium, folder, phone=SCREEN, init_script=script, permissions=["notifications"])
    try:
        site.person("kim")
        activate(v, own.link(site, "kim"), "kim")
        with site.sdk() as sdk:
            (device,) = sdk.list_devices("kim")
        assert device.webpush, device
        # The app closed: its poll ends, so a new request can only wake it by WebPush.
        v.page.goto("about:blank")
        wait_for(lambda: own.held() == 0, "the closed app's poll ends")
        with site.sdk() as sdk:
            pending = sdk.authenticate("kim", push=True).pending
            assert pending is not None
            wait_for(lambda: own.pushes.received, "the push service is sent a wake-up")
        import http_ece

        plain = http_ece.decrypt(
            own.pushes.received[-1], private_key=receiving, auth_secret=auth, version="aes128gcm"
        )
        assert json.loads(plain) == {"request_id": pending.id}
        # The browser's push service delivers it to the app's service worker (DevTools).
        cdp = v.context.new_cdp_session(v.page)
        registrations: list[dict[str, Any]] = []
        cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(
            e["registrations"]))  # fmt: skip
        cdp.send("ServiceWorker.enable")
        wait_for(lambda: v.page.wait_for_timeout(50) or registrations, "its service worker")
        (registration,) = [r for r in registrations if r["scopeURL"] == own.url + "/app/"]
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": own.url.split("/mobile")[0],
                "registrationId": registration["registrationId"],
                "data": plain.decode(),
            },
        )
        shown: list[Any] = []

        def notified() -> bool:
            for worker in v.context.service_workers:
                shown[:] = worker.evaluate(
                    """async () => (await self.registration.getNotifications())
                         .map(n => ({tag: n.tag, title: n.title, body: n.body}))"""
                )
            return bool(shown)

        wait_for(notified, "a notification is shown", seconds=20)
        assert shown == [
            {"tag": pending.id, "title": "Sign-in request",
             "body": "Open the app to approve or deny it."}
        ], shown  # fmt: skip
        # Tapping it opens the app at the request (the service worker's openWindow).
        v.page.goto(f"{own.url}/app/#request={pending.id}")
        heading(v, "Is this you signing in?")
        v.fits("request-from-notification")
        tap_number(v, pending.number)
        v.button("Approve").tap()
        result(v, "Approved")
        with site.sdk() as sdk:
            assert sdk.push_outcome(pending.id, wait=10).accepted
        assert v.errors == [], v.errors
    finally:
        v.close()


def test_a_new_release_replaces_the_apps_shell_and_keeps_its_keys(
    site: Site, own: OwnApp, phone: Visitor
) -> None:
    """An administrator's copy of the app (``app_dir``) changed, as a new release changes it:
    at the next open the new service worker takes over, its cache holds the new files, the
    old cache is gone, and the account (its keys in IndexedDB) still approves."""
    site.person("lou")
    activate(phone, own.link(site, "lou"), "lou")
    before = httpx.get(own.url.replace("localhost", "127.0.0.1") + "/v1/info").json()["version"]
    wait_for(lambda: caches(phone) == [f"openmfa-app-{before}"], "the shell kept")
    header = "() => getComputedStyle(document.querySelector('.bar')).backgroundColor"
    assert phone.page.evaluate(header) == "rgb(31, 78, 140)"
    css = own.app / "app.css"
    css.write_text(css.read_text().replace("--accent: #1f4e8c;", "--accent: #6a1b9a;", 1))
    phone.expected += ["ERR_CONNECTION_REFUSED", "Failed to fetch"]  # while it restarts
    own.stop()
    own.start()
    after = httpx.get(own.url.replace("localhost", "127.0.0.1") + "/v1/info").json()["version"]
    assert after != before
    phone.page.goto(own.url + "/app/")  # opened again
    wait_for(lambda: caches(phone) == [f"openmfa-app-{after}"], "the new shell only")
    expect(phone.page.locator(".bar")).to_have_css("background-color", "rgb(106, 27, 154)")
    heading(phone, "Sign-in requests")
    phone.fits("home-new-release")
    with site.sdk() as sdk:
        pending = sdk.authenticate("lou", push=True).pending
        assert pending is not None
        open_request(phone, "lou", pending.id)
        tap_number(phone, pending.number)
        phone.button("Approve").tap()
        result(phone, "Approved")
        assert sdk.push_outcome(pending.id, wait=10).accepted


ASSERT = """async ({id, number, nonce, verify}) => {
  // An approval as the app makes it, but its screen-lock proof made here: over ``nonce``
  // (the request's own when null), with user verification asked for or not.
  const at = new URL('.', location.href).href;
  const proto = await import(at + 'proto.js');
  const store = await import(at + 'store.js');
  const ui = await import(at + 'ui.js');
  const [account] = await store.accounts.all();
  const poll = await proto.signed(account.key.privateKey, proto.pollBody(account.id));
  const request = (await ui.post(ui.SERVICE, '/v1/poll?wait=0', poll)).requests
    .find((r) => r.id === id);
  const cred = await navigator.credentials.get({publicKey: {
    challenge: proto.unb64u(nonce || request.nonce), rpId: location.hostname,
    allowCredentials: [{type: 'public-key', id: proto.unb64u(account.unlock.id)}],
    userVerification: verify ? 'required' : 'discouraged'}});
  const counter = await store.nextCounter(account.id);
  const body = await proto.signed(account.key.privateKey,
    proto.answerBody(account.id, request, 'approve', number, counter));
  body.unlock = JSON.stringify(cred.toJSON());
  try {
    return await ui.post(ui.SERVICE, '/v1/answer', body);
  } catch (e) {
    return {refused: e.code, status: e.status};
  }
}"""


def test_approvals_need_the_phones_screen_lock_where_the_node_says_so(
    chromium: Any, folder: Path, tmp_path: Path
) -> None:
    """``[mobile] require_unlock``: Chromium's virtual platform authenticator is the phone's
    screen lock (DevTools' WebAuthn domain); the node checks every proof itself. This node
    serves its administrator's own copy of the app too (``[mobile] app_dir``, in the data
    directory)."""
    dd = tmp_path / "node"
    admin = init(dd)
    port = free_port()
    shutil.copytree(WEBAPP, dd / "webapp")
    index = dd / "webapp" / "index.html"
    index.write_text(index.read_text().replace("<title>OpenMFA", "<title>Example Corp", 1))
    with (dd / "server.toml").open("a") as f:
        f.write(
            f'\n[mobile]\nenabled = true\npublic_url = "http://localhost:{port}/mobile"\n'
            'require_unlock = true\nmin_gap_seconds = 0.0\napp_dir = "webapp"\n'
        )
    v = Visitor(chromium, folder, phone=SCREEN)
    try:
        with server(dd, port=port) as node, SdkClient(node.url, admin) as sdk:
            cdp = v.context.new_cdp_session(v.page)
            cdp.send("WebAuthn.enable")
            options = {"options": VIRTUAL_AUTHENTICATOR}
            lock = cdp.send("WebAuthn.addVirtualAuthenticator", options)["authenticatorId"]
            sdk.create_user("max")
            v.page.goto(sdk.issue_activation("max").qr_text)
            heading(v, "Activate this phone")
            assert v.page.title() == "Example Corp Authenticator"
            v.expected.append("status of 409")  # the node's unlock_required
            v.button("Activate").tap()
            v.alert_says("confirmed with your phone's screen lock")
            v.fits("activate-screen-lock-needed")
            v.button("Activate").tap()  # now with the credential the screen lock made
            expect(account(v, "max")).to_be_visible()
            (credential,) = cdp.send("WebAuthn.getCredentials", {"authenticatorId": lock})[
                "credentials"
            ]
            assert credential["rpId"] == "localhost"

            def push() -> Any:
                pending = sdk.authenticate("max", push=True).pending
                assert pending is not None
                open_request(v, "max", pending.id)
                tap_number(v, pending.number)
                return pending

            pending = push()
            v.button("Approve").tap()  # the screen lock (verified) signs the request's nonce
            result(v, "Approved")
            assert sdk.push_outcome(pending.id).accepted
            v.button("Done").tap()
            # Answered: gone from the list at once (not offered again until a poll says so).
            expect(v.page.locator("#requests li")).to_have_count(0, timeout=500)

            # The screen lock not passed: nothing is sent; the sign-in still waits.
            verified = {"authenticatorId": lock, "isUserVerified": False}
            cdp.send("WebAuthn.setUserVerified", verified)
            pending = push()
            v.button("Approve").tap()
            v.alert_says("screen lock was not confirmed")
            v.fits("request-screen-lock-failed")
            assert sdk.push_outcome(pending.id).status == "pending"
            # Proofs the node refuses, the request still waiting: one without user
            # verification, one over another nonce, one of a forged credential.
            v.expected.append("status of 403")
            answer = {"id": pending.id, "number": pending.number, "nonce": None, "verify": False}
            refused = v.page.evaluate(ASSERT, answer)
            assert refused == {"refused": "unlock_refused", "status": 403}, refused
            cdp.send("WebAuthn.setUserVerified", {**verified, "isUserVerified": True})
            other = proto.b64u(os.urandom(16))
            refused = v.page.evaluate(ASSERT, {**answer, "nonce": other, "verify": True})
            assert refused == {"refused": "unlock_refused", "status": 403}, refused
            assert sdk.push_outcome(pending.id).status == "pending"
            forged = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                Encoding.DER, PrivateFormat.PKCS8, NoEncryption()
            )
            cdp.send("WebAuthn.clearCredentials", {"authenticatorId": lock})
            fake = {**credential, "privateKey": base64.b64encode(forged).decode()}
            cdp.send("WebAuthn.addCredential", {"authenticatorId": lock, "credential": fake})
            v.button("Approve").tap()
            v.alert_says("did not accept the screen-lock confirmation")
            v.fits("request-screen-lock-refused")
            assert sdk.push_outcome(pending.id).status == "pending"
            # The real screen lock again: the same request approved.
            cdp.send("WebAuthn.clearCredentials", {"authenticatorId": lock})
            cdp.send("WebAuthn.addCredential", {"authenticatorId": lock, "credential": credential})
            v.button("Approve").tap()
            result(v, "Approved")
            assert sdk.push_outcome(pending.id).accepted
            assert v.errors == [], v.errors
    finally:
        v.close()
