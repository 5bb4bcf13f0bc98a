"""OATH token files as vendors ship them: PSKC (RFC 6030) and CSV.

Pure parsing: bytes in, ``TokenRecord`` list out, or ``TokenFileError`` naming every problem
found (the caller stores all of a file or none of it). Secrets come out as raw key bytes and are
never put in an error message.

PSKC: plain secrets, and key containers encrypted with AES-128/192/256-CBC under a pre-shared
key or a key derived from a password (PBKDF2, RFC 6030 §6.2), their values checked with the
container's HMAC-SHA1/SHA256 MAC key before they are trusted. A file's DTD is refused (no entity
expansion, no external entities).

CSV: a header row naming the columns ``serial, secret, type, digits, period, algorithm,
counter, user`` (any order; only ``serial`` and ``secret`` are required; the secret is Base32,
or hexadecimal when prefixed ``hex:`` or made only of 0-9a-f of an even length of 32 or more).

>>> csv_tokens(b"serial,secret,type\\nA1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,hotp\\n")[0].kind
'hotp'
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import io
from dataclasses import dataclass, field
from typing import Any

import defusedxml.ElementTree as SafeET
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException

MIN_SECRET_BYTES = 16
"""RFC 4226 R6: a shared secret of at least 128 bits."""
DIGITS = (6, 8)
PERIODS = (30, 60)
HASHES = ("SHA1", "SHA256", "SHA512")
MAX_TOKENS = 1_000_000
"""The most tokens one file may hold (a bound on what one import holds in memory)."""

PSKC = "urn:ietf:params:xml:ns:keyprov:pskc"
_NS = {
    "p": PSKC,
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
    "xenc11": "http://www.w3.org/2009/xmlenc11#",
    "pkcs5": "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#",
}
_KINDS = {PSKC + ":hotp": "hotp", PSKC + ":totp": "totp"}
_CIPHERS = {
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc": 16,
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc": 24,
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc": 32,
}
_MACS = {
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1": "sha1",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512": "sha512",
}
_PRFS = {
    "": "sha1",
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1": "sha1",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256": "sha256",
}
_PBKDF2 = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2"


class TokenFileError(ValueError):
    """The file cannot be imported; ``problems`` lists each reason (no secret in any)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class TokenRecord:
    serial: str
    kind: str  # "hotp" | "totp"
    key: bytes = field(repr=False)
    digits: int = 6
    period: int = 30
    algorithm: str = "SHA1"
    counter: int = 0
    user: str = ""
    issuer: str = ""
    last_step: int = -1
    """TOTP: the last time step the token was used at (its codes up to it are spent)."""

    def problems(self) -> list[str]:
        """What this server could not verify, one sentence each ("" serial first)."""
        where = f"token {self.serial!r}" if self.serial else "a token without a serial"
        out = []
        if not self.serial:
            out.append(f"{where}: every token needs a serial number")
        elif len(self.serial) > 64 or not self.serial.isprintable():
            out.append(f"{where}: a serial is 1 to 64 printable characters")
        if self.kind not in ("hotp", "totp"):
            out.append(f"{where}: type must be hotp or totp, not {self.kind!r}")
        if len(self.key) < MIN_SECRET_BYTES:
            out.append(
                f"{where}: its secret is {len(self.key) * 8} bits; RFC 4226 requires at least 128"
            )
        if self.digits not in DIGITS:
            out.append(f"{where}: {self.digits} digits; this server verifies 6 or 8")
        if self.kind == "totp" and self.period not in PERIODS:
            out.append(f"{where}: a period of {self.period} s; this server verifies 30 or 60")
        if self.algorithm not in HASHES:
            out.append(f"{where}: algorithm {self.algorithm!r} is not SHA1, SHA256 or SHA512")
        if self.counter < 0:
            out.append(f"{where}: a counter cannot be negative")
        return out


def check(records: list[TokenRecord]) -> list[TokenRecord]:
    """Every record valid and every serial once in the file, or ``TokenFileError``."""
    problems: list[str] = []
    seen: set[str] = set()
    for r in records:
        problems += r.problems()
        if r.serial in seen:
            problems.append(f"token {r.serial!r} is in the file twice")
        seen.add(r.serial)
    if not records:
        problems.append("the file holds no HOTP or TOTP token")
    if len(records) > MAX_TOKENS:
        problems.append(f"the file holds {len(records)} tokens; import at most {MAX_TOKENS}")
    if problems:
        raise TokenFileError(problems)
    return records


# -- PSKC --------------------------------------------------------------------------------------


def pskc_tokens(raw: bytes, secret: bytes | None = None) -> list[TokenRecord]:
    """The HOTP and TOTP keys of a PSKC document. ``secret`` is the password (PBKDF2
    containers) or the pre-shared key itself (raw bytes) of an encrypted container."""
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True)
    except DefusedXmlException:
        raise TokenFileError(["the PSKC file declares a DTD or entities; refused"]) from None
    except SafeET.ParseError as exc:
        raise TokenFileError([f"the file is not well-formed XML ({exc})"]) from None
    _canonical(root)
    if root.tag != f"{{{PSKC}}}KeyContainer":
        raise TokenFileError([f"the file is not a PSKC KeyContainer (root element {root.tag})"])
    crypto = _Crypto.of(root, secret)
    records: list[TokenRecord] = []
    problems: list[str] = []
    for package in root.iterfind("p:KeyPackage", _NS):
        serial = _text(package, "p:DeviceInfo/p:SerialNo")
        device_user = _text(package, "p:DeviceInfo/p:UserId")
        for key in package.iterfind("p:Key", _NS):
            algorithm = key.get("Algorithm", "")
            kind = _KINDS.get(algorithm)
            if kind is None:
                continue  # a PIN or another kind of key: not a one-time-password token
            name = serial or key.get("Id", "")
            try:
                records.append(_pskc_key(key, kind, name, device_user, crypto))
            except TokenFileError as exc:
                problems += [f"token {name!r}: {p}" for p in exc.problems]
    if problems:
        raise TokenFileError(problems)
    return check(records)


_NAMES = (
    "KeyContainer",
    "EncryptionKey",
    "KeyName",
    "DerivedKey",
    "KeyDerivationMethod",
    "PBKDF2-params",
    "Salt",
    "Specified",
    "IterationCount",
    "KeyLength",
    "PRF",
    "MasterKeyName",
    "ReferenceList",
    "DataReference",
    "MACMethod",
    "MACKey",
    "EncryptionMethod",
    "CipherData",
    "CipherValue",
    "KeyPackage",
    "DeviceInfo",
    "Manufacturer",
    "SerialNo",
    "UserId",
    "CryptoModuleInfo",
    "Id",
    "Key",
    "Issuer",
    "AlgorithmParameters",
    "Suite",
    "ResponseFormat",
    "Data",
    "Secret",
    "PlainValue",
    "EncryptedValue",
    "ValueMAC",
    "Counter",
    "Time",
    "TimeInterval",
    "TimeDrift",
    "Policy",
)
_CANON = {n.lower(): n for n in _NAMES}
_ATTRS = {n.lower(): n for n in ("Algorithm", "Length", "Encoding", "Id", "Version", "URI")}


def _canonical(root: Any) -> None:
    """Element and attribute names in PSKC's own case. Some exporters (privacyIDEA's, written
    through an HTML parser) lowercase them; XML names are case-sensitive, the meaning is not."""
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        ns, _, local = node.tag.rpartition("}")
        name = _CANON.get(local.lower(), local)
        node.tag = f"{ns}}}{name}" if ns else name
        for attr in [a for a in node.attrib if a.lower() in _ATTRS and a not in _ATTRS.values()]:
            node.attrib[_ATTRS[attr.lower()]] = node.attrib.pop(attr)


def _pskc_key(key: Any, kind: str, serial: str, device_user: str, crypto: _Crypto) -> TokenRecord:
    data = key.find("p:Data", _NS)
    if data is None or data.find("p:Secret", _NS) is None:
        raise TokenFileError(["it has no secret"])
    secret = crypto.value(data.find("p:Secret", _NS))
    length = key.find("p:AlgorithmParameters/p:ResponseFormat", _NS)
    suite_node = key.find("p:AlgorithmParameters/p:Suite", _NS)
    suite = ""
    if suite_node is not None:  # as text (RFC 6030) or, privacyIDEA's, an attribute
        suite = (suite_node.text or suite_node.get("hashalgo", "")).upper().replace("-", "")
    algorithm = next((h for h in HASHES if h in suite), "SHA1")
    counter = _number(crypto, data, "p:Counter", 0)
    period = _number(crypto, data, "p:TimeInterval", 30) or 30
    return TokenRecord(
        serial=serial,
        kind=kind,
        key=secret,
        digits=int(length.get("Length", "6")) if length is not None else 6,
        period=period,
        algorithm=algorithm,
        counter=counter,
        user=_text(key, "p:UserId") or device_user,
        issuer=_text(key, "p:Issuer"),
    )


def _number(crypto: _Crypto, data: Any, path: str, default: int) -> int:
    node = data.find(path, _NS)
    if node is None:
        return default
    plain = node.find("p:PlainValue", _NS)
    if plain is not None:
        try:
            return int((plain.text or "").strip())
        except ValueError:
            raise TokenFileError([f"{path[2:]} is not a whole number"]) from None
    return int.from_bytes(crypto.value(node), "big")  # encrypted: a big-endian integer


def _text(node: Any, path: str) -> str:
    found = node.find(path, _NS)
    return (found.text or "").strip() if found is not None else ""


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise TokenFileError([f"{what} is not Base64"]) from None


@dataclass
class _Crypto:
    key: bytes | None
    mac_key: bytes | None
    mac_hash: str

    @classmethod
    def of(cls, root: Any, secret: bytes | None) -> _Crypto:
        enc = root.find("p:EncryptionKey", _NS)
        if enc is None:
            return cls(None, None, "sha1")
        if secret is None:
            name = _text(enc, "ds:KeyName") or _text(enc, "xenc11:DerivedKey/xenc11:MasterKeyName")
            what = "password" if enc.find("xenc11:DerivedKey", _NS) is not None else "key"
            raise TokenFileError(
                [
                    f"the file is encrypted with a {what}"
                    + (f" ({name!r})" if name else "")
                    + "; give it with --password-stdin"
                ]
            )
        derived = enc.find("xenc11:DerivedKey", _NS)
        if derived is not None:
            key = _pbkdf2(derived, secret)
        elif enc.find("ds:KeyName", _NS) is not None:
            key = secret
        else:
            raise TokenFileError(
                ["the file is encrypted for a certificate's private key; ask the vendor for a "
                 "file encrypted with a pre-shared key or a password"]
            )  # fmt: skip
        crypto = cls(key, None, "sha1")
        method = root.find("p:MACMethod", _NS)
        if method is not None:
            crypto.mac_hash = _MACS.get(method.get("Algorithm", ""), "")
            if not crypto.mac_hash:
                raise TokenFileError([f"MAC algorithm {method.get('Algorithm')!r} is unknown"])
            mac_key = method.find("p:MACKey", _NS)
            crypto.mac_key = crypto.decrypt(mac_key) if mac_key is not None else key
        return crypto

    def decrypt(self, node: Any) -> bytes:
        """An EncryptedValue (or MACKey): the IV is the first block of the cipher value."""
        alg = node.find("xenc:EncryptionMethod", _NS)
        size = _CIPHERS.get(alg.get("Algorithm", "") if alg is not None else "")
        if size is None:
            raise TokenFileError(["it is encrypted with an algorithm other than AES-CBC"])
        assert self.key is not None
        if len(self.key) != size:
            raise TokenFileError(
                [f"the key given is {len(self.key)} bytes; this file's cipher needs {size}"]
            )
        blob = _b64(_text(node, "xenc:CipherData/xenc:CipherValue"), "a CipherValue")
        if len(blob) < 32 or len(blob) % 16:
            raise TokenFileError(["a CipherValue is not whole AES blocks"])
        dec = Cipher(algorithms.AES(self.key), modes.CBC(blob[:16])).decryptor()
        padded = dec.update(blob[16:]) + dec.finalize()
        unpad = padding.PKCS7(128).unpadder()
        try:
            return unpad.update(padded) + unpad.finalize()
        except ValueError:
            raise TokenFileError(
                ["it does not decrypt: the password or key is wrong, or the file is damaged"]
            ) from None

    def value(self, node: Any) -> bytes:
        """A Secret, Counter or TimeInterval element: plain, or encrypted and MAC-checked."""
        plain = node.find("p:PlainValue", _NS)
        if plain is not None:
            return _b64(plain.text, "a PlainValue")
        encrypted = node.find("p:EncryptedValue", _NS)
        if encrypted is None:
            raise TokenFileError(["a value is neither plain nor encrypted"])
        if self.key is None:
            raise TokenFileError(["a value is encrypted, but the file names no EncryptionKey"])
        if self.mac_key is not None:
            given = _b64(_text(node, "p:ValueMAC"), "a ValueMAC")
            blob = _b64(_text(encrypted, "xenc:CipherData/xenc:CipherValue"), "a CipherValue")
            want = hmac.digest(self.mac_key, blob, self.mac_hash)
            if not hmac.compare_digest(given, want):
                raise TokenFileError(
                    ["its MAC does not match: the password or key is wrong, or the file was "
                     "altered"]
                )  # fmt: skip
        return self.decrypt(encrypted)


def _pbkdf2(derived: Any, password: bytes) -> bytes:
    method = derived.find("xenc11:KeyDerivationMethod", _NS)
    if method is None or method.get("Algorithm") != _PBKDF2:
        raise TokenFileError(["its key derivation is not PBKDF2"])
    params = method.find("pkcs5:PBKDF2-params", _NS)
    if params is None:
        raise TokenFileError(["its PBKDF2 parameters are missing"])
    salt = _b64(params.findtext("Salt/Specified"), "the PBKDF2 salt")
    try:
        rounds = int(params.findtext("IterationCount") or "")
        length = int(params.findtext("KeyLength") or "")
    except ValueError:
        raise TokenFileError(["its PBKDF2 iteration count or key length is missing"]) from None
    prf_node = params.find("PRF")
    prf = _PRFS.get(prf_node.get("Algorithm", "") if prf_node is not None else "")
    if prf is None or not 1 <= rounds <= 10_000_000 or length not in (16, 24, 32):
        raise TokenFileError(["its PBKDF2 parameters are not ones this server can use"])
    return hashlib.pbkdf2_hmac(prf, password, salt, rounds, length)


# -- privacyIDEA's own export ------------------------------------------------------------------


def privacyidea_tokens(raw: bytes, key: bytes | None) -> list[TokenRecord]:
    """The HOTP and TOTP tokens of ``pi-tokenjanitor find export --format pi`` (privacyIDEA
    3.10 and newer): JSON encrypted with Fernet under the key the export printed. Each token
    keeps its counter and its owner (``user.login``)."""
    import json

    from cryptography.fernet import Fernet, InvalidToken

    if not key:
        raise TokenFileError(
            ["a privacyIDEA export is encrypted: give the key it printed with --password-stdin"]
        )
    try:
        plain = Fernet(key.strip()).decrypt(raw.strip())
    except (InvalidToken, ValueError):
        raise TokenFileError(
            ["it does not decrypt: the key is wrong (the one pi-tokenjanitor printed), or the "
             "file is damaged"]
        ) from None  # fmt: skip
    try:
        exported = json.loads(plain)
    except ValueError:
        raise TokenFileError(["the decrypted export is not JSON"]) from None
    if not isinstance(exported, list):
        raise TokenFileError(["the export is not a list of tokens"])
    records: list[TokenRecord] = []
    problems: list[str] = []
    for item in exported:
        if not isinstance(item, dict) or str(item.get("type", "")).lower() not in ("hotp", "totp"):
            continue  # push, WebAuthn, SMS...: nothing a seed can bring over
        kind = str(item["type"]).lower()
        info = item.get("info_list") or {}
        owner = item.get("user") or {}
        try:
            counter = int(item.get("counter") or 0)
            record = TokenRecord(
                serial=str(item.get("serial", "")),
                kind=kind,
                key=_hex(str(item.get("otpkey", ""))),
                digits=int(item.get("otplen") or 6),
                period=int(info.get("timeStep") or 30),
                algorithm=str(info.get("hashlib") or "sha1").upper().replace("-", ""),
                counter=counter if kind == "hotp" else 0,
                last_step=counter if kind == "totp" and counter > 0 else -1,
                user=str(owner.get("login", "")) if isinstance(owner, dict) else "",
                issuer=str(item.get("description", ""))[:255],
            )
        except (TokenFileError, ValueError, TypeError) as exc:
            what = exc.problems if isinstance(exc, TokenFileError) else ["a number is not one"]
            problems += [f"token {item.get('serial', '?')!r}: {p}" for p in what]
            continue
        records.append(record)
    if problems:
        raise TokenFileError(problems)
    return check(records)


# -- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = ("serial", "secret", "type", "digits", "period", "algorithm", "counter", "user")


def csv_tokens(raw: bytes) -> list[TokenRecord]:
    """Tokens of a CSV file with a header row (comma, semicolon or tab separated)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TokenFileError(["the CSV file is not UTF-8 text"]) from None
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else "", delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [(h or "").strip().lower() for h in (rows.fieldnames or [])]
    missing = [c for c in ("serial", "secret") if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown:
        problems = [f"the header has no {c!r} column" for c in missing]
        problems += [f"the header's column {h[:40]!r} is unknown" for h in unknown[:10]]
        raise TokenFileError([*problems, f"the header names some of: {', '.join(CSV_COLUMNS)}"])
    records: list[TokenRecord] = []
    serials: set[str] = set()
    problems = []
    for line, row in enumerate(rows, start=2):
        cell = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k}
        if not any(cell.values()):
            continue
        try:
            record = _csv_row(cell)
        except TokenFileError as exc:
            problems += [f"line {line}: {p}" for p in exc.problems]
            continue
        problems += [f"line {line}: {p}" for p in record.problems()]
        if record.serial in serials:
            problems.append(f"line {line}: token {record.serial!r} is in the file twice")
        serials.add(record.serial)
        records.append(record)
    if problems:
        raise TokenFileError(problems)
    return check(records)


def _csv_row(cell: dict[str, str]) -> TokenRecord:
    kind = (cell.get("type") or "totp").lower()
    try:
        return TokenRecord(
            serial=cell["serial"],
            kind=kind,
            key=decode_key(cell["secret"]),
            digits=int(cell.get("digits") or 6),
            period=int(cell.get("period") or 30),
            algorithm=(cell.get("algorithm") or "SHA1").upper().replace("-", ""),
            counter=int(cell.get("counter") or 0),
            user=cell.get("user", ""),
        )
    except ValueError as exc:
        if isinstance(exc, TokenFileError):
            raise
        raise TokenFileError(["digits, period and counter must be whole numbers"]) from None


def decode_key(text: str) -> bytes:
    """A secret as vendors print it: ``hex:...``, bare hexadecimal, or Base32."""
    cleaned = "".join(text.split())
    if cleaned.lower().startswith("hex:"):
        return _hex(cleaned[4:])
    is_hex = all(c in "0123456789abcdefABCDEF" for c in cleaned)
    if is_hex and len(cleaned) % 2 == 0 and len(cleaned) >= 2 * MIN_SECRET_BYTES:
        return _hex(cleaned)
    body = cleaned.rstrip("=").upper()
    try:
        return base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise TokenFileError(["the secret is neither Base32 nor hexadecimal"]) from None


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise TokenFileError(["the secret is not hexadecimal"]) from None
