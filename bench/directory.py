"""Directory and token-import benchmark: real slapd on loopback, real `openmfa` processes.

Prints, for N directory users (default 50,000, loaded into slapd with slapadd):
- the first synchronisation (`openmfa directory sync`, a full read and N users added):
  seconds and the process's peak memory (max RSS);
- an incremental run after 1% of them changed (ldapmodify), against the same source:
  seconds and peak memory, and how many it updated;
- the import of a PSKC file of 10,000 tokens (AES-128-CBC under a pre-shared key, each value
  MAC-checked): seconds and peak memory.
Goals (issue 15): the first sync of 50,000 users under 60 s; an incremental run under 5 s.

    python bench/directory.py                 # ./dev bench-directory
    python bench/directory.py --users 5000 --tokens 1000
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.directory_server import BASE, SYNC_DN, SYNC_PASSWORD, directory_server

OPENMFA = str(Path(sys.executable).parent / "openmfa")
PEOPLE = f"ou=people,{BASE}"


def run(*args: str, stdin: str = "") -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout) of one `openmfa` process (its own rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [OPENMFA, *args], stdin=subprocess.PIPE, stdout=out, stderr=err, text=True
        )
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"openmfa {' '.join(args)} failed: {err.read()}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def people_ldif(n: int) -> str:
    """``n`` people of an established directory: each last changed at some moment of the
    past year (slapadd keeps the modifyTimestamp given), as in a directory that grew."""
    year = 365 * 86400
    now = time.time()
    out = [f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n"]
    for i in range(n):
        uid = f"user{i:06d}"
        stamp = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(now - year + year * i / n - 60))
        out.append(
            f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: User {i}\n"
            f"sn: {i}\ndisplayName: User {i}\nmail: {uid}@example.org\n"
            f"mobile: +3161{i:07d}\ncreateTimestamp: {stamp}\nmodifyTimestamp: {stamp}\n"
        )
    return "\n".join(out)


def pskc(n: int, key: bytes) -> bytes:
    """A PSKC document of ``n`` HOTP keys, encrypted as RFC 6030 §6.1 describes."""
    mac_key = secrets.token_bytes(20)

    def enc(data: bytes) -> bytes:
        iv = secrets.token_bytes(16)
        pad = padding.PKCS7(128).padder()
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return iv + e.update(pad.update(data) + pad.finalize()) + e.finalize()

    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<KeyContainer Version="1.0" '
        'xmlns="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
        'xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">\n'
        "<EncryptionKey><ds:KeyName>bench</ds:KeyName></EncryptionKey>\n"
        '<MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"><MACKey>'
        '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
        f"<xenc:CipherData><xenc:CipherValue>{base64.b64encode(enc(mac_key)).decode()}"
        "</xenc:CipherValue></xenc:CipherData></MACKey></MACMethod>\n"
    )
    body = []
    for i in range(n):
        blob = enc(secrets.token_bytes(20))
        mac = hmac.digest(mac_key, blob, hashlib.sha1)
        body.append(
            f"<KeyPackage><DeviceInfo><SerialNo>HW{i:08d}</SerialNo></DeviceInfo>"
            '<Key Id="k" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">'
            '<AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/>'
            "</AlgorithmParameters><Data><Secret><EncryptedValue>"
            '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            f"<xenc:CipherData><xenc:CipherValue>{base64.b64encode(blob).decode()}"
            "</xenc:CipherValue></xenc:CipherData></EncryptedValue>"
            f"<ValueMAC>{base64.b64encode(mac).decode()}</ValueMAC></Secret>"
            "<Counter><PlainValue>0</PlainValue></Counter></Data></Key></KeyPackage>"
        )
    return (head + "\n".join(body) + "\n</KeyContainer>\n").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--tokens", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="openmfa-bench-dir-") as tmp:
        work = Path(tmp)
        print(f"loading {args.users:,} people into slapd (slapadd) ...", flush=True)
        with directory_server(work / "slapd", preload=people_ldif(args.users)) as ldap:
            dd = work / "node"
            run("init", "--data-dir", str(dd))
            source = {"name": "corp", "url": ldap.url, "bind_dn": SYNC_DN, "base_dns": [PEOPLE]}
            with (dd / "server.toml").open("a") as f:
                f.write("\n[directory]\nmax_changes = 5\n\n[[directory.sources]]\n")
                f.write("".join(f"{k} = {json.dumps(v)}\n" for k, v in source.items()))
            run("directory", "set-password", "corp", "--password-stdin", "--data-dir", str(dd),
                stdin=SYNC_PASSWORD + "\n")  # fmt: skip
            first_s, first_mb, out = run("directory", "sync", "--json", "--data-dir", str(dd))
            first = json.loads(out)[0]
            changed = max(1, args.users // 100)
            ldif = "\n".join(
                f"dn: uid=user{i:06d},{PEOPLE}\nchangetype: modify\nreplace: displayName\n"
                f"displayName: Renamed {i}\n"
                for i in range(0, args.users, args.users // changed)
            )
            subprocess.run(
                ["ldapmodify", "-x", "-H", ldap.url, "-D", f"cn=admin,{BASE}", "-w",
                 "admin-secret"], input=ldif.encode(), check=True, capture_output=True,
            )  # fmt: skip
            inc_s, inc_mb, out = run("directory", "sync", "--json", "--data-dir", str(dd))
            inc = json.loads(out)[0]
        key = secrets.token_bytes(16)
        (work / "tokens.xml").write_bytes(pskc(args.tokens, key))
        tok_s, tok_mb, out = run(
            "token", "import", str(work / "tokens.xml"), "--password-stdin", "--json",
            "--data-dir", str(dd), stdin=key.hex() + "\n",
        )  # fmt: skip
        imported = len(json.loads(out)["added"])
    goal = "goal < 60 s for 50,000"
    print(f"first sync:       {args.users:,} users  {first_s:6.1f} s  {first_mb:6.0f} MiB peak  "
          f"(mode {first['mode']}, added {first['counts']['added']:,})  {goal}")  # fmt: skip
    print(f"incremental sync: {changed:,} changed   {inc_s:6.1f} s  {inc_mb:6.0f} MiB peak  "
          f"(mode {inc['mode']}, updated {inc['counts']['updated']:,})  goal < 5 s")  # fmt: skip
    print(f"token import:     {args.tokens:,} tokens {tok_s:6.1f} s  {tok_mb:6.0f} MiB peak  "
          f"(PSKC, AES-128-CBC + HMAC-SHA1, imported {imported:,})")  # fmt: skip


if __name__ == "__main__":
    main()
