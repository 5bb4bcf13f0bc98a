"""Token import (PSKC, RFC 6030's own examples; CSV) into the inventory, assignment and claims.

The codes are computed by ``oathtool`` from the secrets the RFC states, never by our own code,
and checked by the node's Authenticator."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from openmfa.config import Config
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.token_files import TokenFileError, csv_tokens, pskc_tokens
from openmfa.core.verification import Decision, VerifyPolicy
from openmfa.errors import Conflict, InvalidInput, NotFound
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.tokens import Tokens, read_file
from openmfa.store import tables as t
from openmfa.store.database import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pskc"
RFC_SECRET_HEX = b"12345678901234567890".hex()
"""The secret of every RFC 6030 example key (and of RFC 4226's test vectors)."""
PSK = bytes.fromhex("12345678901234567890123456789012")
POLICY = VerifyPolicy(lockout=LockoutPolicy(threshold=50, minutes=15))


def rfc(figure: int) -> bytes:
    return (FIXTURES / f"rfc6030-figure{figure}.xml").read_bytes()


def oath(*args: str) -> str:
    return subprocess.run(
        ["oathtool", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def decide(store: Store, user: str, code: str) -> Decision:
    (d,) = Authenticator(store, POLICY).run([Attempt(user, code, request_id="t")])
    assert isinstance(d, Decision)
    return d


@pytest.mark.parametrize(
    ("figure", "secret"), [(3, None), (6, PSK), (7, b"qwerty")], ids=["plain", "psk", "pbkdf2"]
)
def test_rfc6030_examples_give_the_rfc_secret(figure: int, secret: bytes | None) -> None:
    (tok,) = pskc_tokens(rfc(figure), secret)
    assert (tok.serial, tok.kind, tok.digits, tok.counter) == ("987654321", "hotp", 8, 0)
    assert tok.key.hex() == RFC_SECRET_HEX


def test_encrypted_files_need_the_right_secret_and_say_so() -> None:
    with pytest.raises(TokenFileError, match="--password-stdin"):
        pskc_tokens(rfc(7))
    with pytest.raises(TokenFileError, match="password or key is wrong") as wrong:
        pskc_tokens(rfc(7), b"qwertz")
    assert "qwertz" not in str(wrong.value)
    with pytest.raises(TokenFileError, match="password or key is wrong"):
        pskc_tokens(rfc(6), bytes(16))
    # A tampered cipher value (one bit of the secret) fails its MAC: refused, not imported.
    good = "AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv"
    bad = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
    with pytest.raises(TokenFileError, match="MAC does not match"):
        pskc_tokens(rfc(6).replace(good.encode(), bad.encode()), PSK)


def test_broken_and_hostile_files_are_refused_with_every_reason() -> None:
    with pytest.raises(TokenFileError, match="at least 128"):
        pskc_tokens(rfc(2))  # RFC 6030 figure 2: a 32-bit secret
    with pytest.raises(TokenFileError, match="not well-formed"):
        pskc_tokens(rfc(3)[:-40])
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(TokenFileError, match="DTD"):
        pskc_tokens(bomb)
    # Figure 5 holds an HOTP key and a PIN key: the PIN is not a token and is left out.
    assert [k.serial for k in pskc_tokens(rfc(5))] == ["987654321"]
    with pytest.raises(TokenFileError) as many:
        csv_tokens(b"serial,secret,digits,type\nA,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,7,hotp\n"
                   b"A,zz!,6,totp\nB,GEZDGNBVGY3TQOJQ,6,sms\n")  # fmt: skip
    text = str(many.value)
    assert "7 digits" in text and "neither Base32 nor hexadecimal" in text
    assert "type must be hotp or totp" in text and "128" in text
    assert "line 3: token 'A' is in the file twice" not in text  # line 3 did not parse
    with pytest.raises(TokenFileError, match="no 'secret' column"):
        csv_tokens(b"serial,seed\nA,GEZDGNBVGY3TQOJQ\n")


def test_csv_import_assigns_by_user_and_codes_verify(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    accounts.add_user("bob")
    b32 = base64.b32encode(b"12345678901234567890").decode()
    raw = (
        "serial,secret,type,digits,period,algorithm,counter,user\n"
        f"H-1,{b32},hotp,6,,SHA1,5,alice\n"
        f"T-1,hex:{RFC_SECRET_HEX},totp,8,60,SHA256,,bob\n"
        f"T-2,{b32},totp,6,30,,,carol\n"
        f"T-3,{RFC_SECRET_HEX},totp,6,30,,,\n"
    ).encode()
    tokens = Tokens(store, config)
    report = tokens.import_records(read_file(raw, "csv", None), assign_by="user")
    assert report.assigned == {"H-1": "alice", "T-1": "bob"}
    assert report.unmatched == {"T-2": "carol"} and sorted(report.added) == [
        "H-1",
        "T-1",
        "T-2",
        "T-3",
    ]
    # The HOTP token starts at its counter (5): the code for counter 5 signs in, 4's does not.
    assert not decide(store, "alice", oath("--hotp", "-c", "4", RFC_SECRET_HEX)).accepted
    assert decide(store, "alice", oath("--hotp", "-c", "5", RFC_SECRET_HEX)).accepted
    code = oath("--totp=sha256", "-d", "8", "-s", "60", RFC_SECRET_HEX)
    assert decide(store, "bob", code).accepted
    assert [k.serial for k in tokens.inventory(unassigned=True)] == ["T-2", "T-3"]
    # Importing the same file again changes nothing: every serial is a reported duplicate.
    with store.read() as conn:
        before = conn.execute(select(t.tokens.c.serial, t.tokens.c.secret_enc)).all()
    again = tokens.import_records(read_file(raw, "csv", None), assign_by="user")
    assert sorted(again.duplicates) == ["H-1", "T-1", "T-2", "T-3"] and not again.added
    with store.read() as conn:
        assert conn.execute(select(t.tokens.c.serial, t.tokens.c.secret_enc)).all() == before
        sealed = b"".join(r.secret_enc for r in before)
    assert b"12345678901234567890" not in sealed  # sealed at rest
    events = [e for e in _audit(store) if e.startswith("token.import")]
    assert events == ["token.import ok added=4 assigned=2 duplicates=0 unmatched=1"]


def _audit(store: Store) -> list[str]:
    with store.read() as conn:
        rows = conn.execute(select(t.audit.c.action, t.audit.c.result, t.audit.c.detail)).all()
    return [f"{r.action} {r.result} {r.detail}" for r in rows]


def test_pskc_psk_import_assign_and_verify(store: Store, config: Config) -> None:
    Accounts(store, config).add_user("jsmith")
    tokens = Tokens(store, config)
    tokens.import_records(read_file(rfc(6), "pskc", PSK))
    assert [k.user for k in tokens.inventory()] == [""]
    method = tokens.assign("987654321", "jsmith")
    assert (method.kind, method.digits, method.label) == ("hotp", 8, "token 987654321")
    for counter in (0, 1):
        assert decide(
            store, "jsmith", oath("--hotp", "-d", "8", "-c", str(counter), RFC_SECRET_HEX)
        ).accepted
    with pytest.raises(Conflict, match="assigned already"):
        tokens.assign("987654321", "jsmith")
    with pytest.raises(NotFound):
        tokens.assign("nope", "jsmith")
    # Removing the method frees the token for someone else.
    Accounts(store, config).remove_method("jsmith", method.id)
    assert [k.serial for k in tokens.inventory(unassigned=True)] == ["987654321"]


def test_a_broken_file_changes_nothing(store: Store, config: Config) -> None:
    raw = b"serial,secret\nA,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\nB,short\n"
    with pytest.raises(InvalidInput, match="line 3"):
        Tokens(store, config).import_records(read_file(raw, "csv", None))
    assert Tokens(store, config).counts() == (0, 0)


def test_claim_by_serial_and_code(store: Store, config: Config) -> None:
    Accounts(store, config).add_user("alice")
    tokens = Tokens(store, config)
    tokens.import_records(read_file(rfc(7), "pskc", b"qwerty"))
    with pytest.raises(InvalidInput, match="do not match a free token"):
        tokens.claim("987654321", "alice", "00000000")
    with pytest.raises(InvalidInput, match="do not match a free token"):
        tokens.claim("no-such-serial", "alice", oath("--hotp", "-d", "8", RFC_SECRET_HEX))
    code = oath("--hotp", "-d", "8", "-c", "3", RFC_SECRET_HEX)
    method = tokens.claim("987654321", "alice", code)
    assert method.kind == "hotp"
    # The code that claimed it cannot sign in; the next one does.
    assert not decide(store, "alice", code).accepted
    assert decide(store, "alice", oath("--hotp", "-d", "8", "-c", "4", RFC_SECRET_HEX)).accepted


def test_claims_are_rate_limited(store: Store, config: Config) -> None:
    Accounts(store, config).add_user("mallory")
    tokens = Tokens(store, config)
    tokens.import_records(read_file(rfc(3), "pskc", None))
    for _ in range(5):
        with pytest.raises(InvalidInput):
            tokens.claim("987654321", "mallory", "12345678")
    right = oath("--hotp", "-d", "8", "-c", "0", RFC_SECRET_HEX)
    with pytest.raises(Conflict, match="too many wrong codes"):
        tokens.claim("987654321", "mallory", right)


def test_tokens_need_data_format_5(store: Store, config: Config) -> None:
    from sqlalchemy import delete, insert

    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="4"))
    with pytest.raises(Conflict, match="data format 5"):
        Tokens(store, config).import_records(read_file(rfc(3), "pskc", None))
    assert Tokens(store, config).inventory() == []


def test_privacyidea_export_keeps_counters_owners_and_the_last_totp_step() -> None:
    from openmfa.core.token_files import privacyidea_tokens

    pi = FIXTURES.parent / "privacyidea"
    found = {
        r.serial: r
        for r in privacyidea_tokens(
            (pi / "export.pi").read_bytes(), (pi / "export.pi.key").read_bytes()
        )
    }
    assert set(found) == {"OATH0001", "OATH0002", "TOTP0001"}  # SPASS001 is not OATH
    hotp, totp = found["OATH0001"], found["TOTP0001"]
    assert (hotp.user, hotp.counter, hotp.key) == ("alice", 3, b"12345678901234567890")
    assert (totp.user, totp.digits, totp.algorithm, totp.period) == ("bob", 8, "SHA256", 30)
    assert totp.last_step > 59_000_000 and totp.counter == 0  # the step privacyIDEA last saw
    with pytest.raises(TokenFileError, match="key is wrong"):
        privacyidea_tokens((pi / "export.pi").read_bytes(), b"A" * 43 + b"=")


def test_a_totp_step_used_in_privacyidea_stays_used_here(store: Store, config: Config) -> None:
    from openmfa.core.token_files import privacyidea_tokens

    pi = FIXTURES.parent / "privacyidea"
    records = privacyidea_tokens(
        (pi / "export.pi").read_bytes(), (pi / "export.pi.key").read_bytes()
    )
    Tokens(store, config).import_records(records, assign_by="user", create_users=True)
    step = next(r.last_step for r in records if r.serial == "TOTP0001")
    with store.read() as conn:
        stored = conn.execute(
            select(t.method_state.c.last_step)
            .join(t.tokens, t.tokens.c.method_id == t.method_state.c.method_id)
            .where(t.tokens.c.serial == "TOTP0001")
        ).scalar_one()
    assert stored == step
