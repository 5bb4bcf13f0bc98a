"""Forward-auth's pure parts: the return address a sign-in may go back to, and the cookie."""

from __future__ import annotations

import pytest

from openmfa.portal.forward_auth import Cookies, ForwardAuthConfig, in_domain


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://app.example.com/reports?mail=a@b.c", True),
        ("http://example.com:8080/", True),
        ("https://APP.Example.com/", True),
        ("https://example.com.evil.org/", False),
        ("https://example.com@evil.org/", False),  # user-info: the host is evil.org
        ("https://evil.org\\@app.example.com/", False),  # a browser reads \ as /: evil.org
        ("javascript:alert(1)//app.example.com", False),
        ("//app.example.com/", False),  # no scheme
        ("https://app.example.com/\r\nSet-Cookie: x", False),
        ("https://notexample.com/", False),
    ],
)
def test_a_sign_in_goes_back_only_to_the_cookie_domain(url: str, ok: bool) -> None:
    assert in_domain(url, "example.com") is ok


def test_the_cookie_is_checked_by_key_expiry_and_version() -> None:
    cfg = ForwardAuthConfig("example.com", "openmfa_auth", 60.0, b"k" * 32, "")
    cookies = Cookies(cfg)
    value = cookies.issue("ada", "ada@example.com", "Ada", now=1000.0).encode()
    assert cookies.check(value, 1010.0) == {
        "user": "ada",
        "email": "ada@example.com",
        "name": "Ada",
    }
    assert cookies.check(value, 1060.0) is None  # expired
    other = Cookies(ForwardAuthConfig("example.com", "openmfa_auth", 60.0, b"j" * 32, ""))
    assert other.check(value, 1010.0) is None  # another key
    version, body, mac = value.split(b".")
    assert cookies.check(b"v2." + body + b"." + mac, 1010.0) is None
    assert cookies.check(version + b"." + body[:-1] + b"." + mac, 1010.0) is None
    for junk in (b"", b"v1", b"v1..", b"v1.!!!.!!!", b"x" * 5000):
        assert cookies.check(junk, 1010.0) is None
