"""RADIUS relay benchmark (issue 33): MS-CHAPv2 and EAP-PEAP through OpenMFA to a FreeRADIUS
upstream that holds the passwords, each with a push the bench's phones approve as soon as they
are shown it (``openmfa-authenticator watch``, through the device protocol: the server has no
test-only approval), against the same FreeRADIUS answering the same requests alone.

Prints:
- MS-CHAPv2 + approved push: round trip p50/p99 and the node's CPU per request (utime+stime of
  its process from /proc), beside FreeRADIUS doing the same MS-CHAPv2 alone (its CPU too);
  every Access-Accept is checked: MS-CHAP2-Success verifies (RFC 2759 §8.8) and the MPPE keys
  decrypt, with the NAS's secret, to the peer's own (RFC 3079) — re-encrypted, not passed on;
- EAP-PEAP (MSCHAPv2 inside) conversations per second, eapol_test processes in parallel,
  through OpenMFA and straight to FreeRADIUS; a conversation counts when eapol_test says
  SUCCESS (its MPPE keys check included).

    .venv/bin/python bench/radius_relay.py
    .venv/bin/python bench/radius_relay.py --requests 200 --conversations 80 --parallel 4

From bench/radius.py: ``relay_figures()`` (both, one site), or ``eap_peap_rate(site)`` and
``mschapv2_push_round_trip(site)`` inside ``with relay_site(...) as site``.
Loopback traffic only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.e2e.freeradius_upstream import eapol_test_conf, run_eapol_test
from tests.e2e.relay_site import RelaySite, relay_site
from tests.radius import ms_chap_peer as peer

from openmfa.radius import mschap as ms
from openmfa.radius import packet as p
from verify import cpu_seconds

HOLD_SECONDS = 20.0
ALONE_AT_LEAST = 2000
"""MS-CHAPv2 requests sent to FreeRADIUS alone (a twentieth as many EAP conversations)."""


@contextmanager
def bench_site(workers: int, tmp: Path | None = None) -> Iterator[RelaySite]:
    """A relay site with ``workers`` users, each with a phone that approves at once."""
    base = tmp or Path(tempfile.mkdtemp(prefix="openmfa-relay-bench-"))
    users = {f"relay{i:02d}": f"relay-pw-{i:02d}" for i in range(workers)}
    with relay_site(base, users, hold_seconds=HOLD_SECONDS) as site:
        for user in users:
            site.answering(user, "approve")
        yield site


# --- MS-CHAPv2 ---------------------------------------------------------------------------------


@dataclass
class MsChapRequest:
    user: str
    password: str
    raw: bytes
    authenticator: bytes
    challenge: bytes
    peer_challenge: bytes
    nt_response: bytes


def mschap_requests(users: dict[str, str], count: int, secret: bytes) -> list[MsChapRequest]:
    """``count`` MS-CHAPv2 Access-Requests (RFC 2548 §2.1.2, §2.3.2), computed by the tests'
    own RFC 2759 peer before any clock starts."""
    out = []
    names = sorted(users)
    for i in range(count):
        user = names[i % len(names)]
        challenge, peer_challenge = os.urandom(16), os.urandom(16)
        ch, response = peer.build_request(user, users[user], challenge, peer_challenge, i % 256)
        auth = os.urandom(16)
        attrs = [
            (p.USER_NAME, user.encode()),
            ms.ms_vsa(ms.MS_CHAP_CHALLENGE, ch),
            ms.ms_vsa(ms.MS_CHAP2_RESPONSE, response),
        ]
        raw = p.encode_request(p.ACCESS_REQUEST, i % 256, attrs, secret, auth)
        out.append(
            MsChapRequest(user, users[user], raw, auth, challenge, peer_challenge, response[26:])
        )
    return out


def mschap_reply_ok(req: MsChapRequest, raw: bytes, secret: bytes) -> bool:
    """An Access-Accept, signed with ``secret``, whose MS-CHAP2-Success verifies and whose
    MPPE keys decrypt with ``secret`` to the ones the peer derives."""
    try:
        reply = p.verify_response(raw, req.authenticator, secret)
    except p.MalformedPacket:
        return False
    success = ms.ms_get(reply.attributes, ms.MS_CHAP2_SUCCESS)
    send = ms.ms_get(reply.attributes, ms.MS_MPPE_SEND_KEY)
    recv = ms.ms_get(reply.attributes, ms.MS_MPPE_RECV_KEY)
    if reply.code != p.ACCESS_ACCEPT or success is None or send is None or recv is None:
        return False
    if not peer.check_authenticator_response(
        success[1:], req.password, req.nt_response, req.peer_challenge, req.challenge, req.user
    ):
        return False
    peer_send, peer_recv = peer.peer_start_keys(req.password, req.nt_response)
    return (
        mppe_key(send, secret, req.authenticator) == peer_recv
        and mppe_key(recv, secret, req.authenticator) == peer_send
    )


def mppe_key(value: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """RFC 2548 §2.4.2 decryption, written here apart from the server's code: salt, then
    c(i) = p(i) xor MD5(S + c(i-1)) with c(0) = R + salt; the first plain octet is the key's
    length (b"" when it does not fit: a wrong secret)."""
    salt, body = value[:2], value[2:]
    plain, previous = b"", authenticator + salt
    for i in range(0, len(body), 16):
        block = body[i : i + 16]
        pad = hashlib.md5(secret + previous).digest()  # noqa: S324 - RFC 2548
        plain += bytes(x ^ y for x, y in zip(block, pad, strict=False))
        previous = block
    return plain[1 : 1 + plain[0]] if plain and plain[0] < len(plain) else b""


def pap_requests(users: dict[str, str], count: int, secret: bytes) -> list[bytes]:
    """``count`` PAP Access-Requests with the users' upstream passwords."""
    names, out = sorted(users), []
    for i in range(count):
        user, auth = names[i % len(names)], os.urandom(16)
        hidden = p.hide_password(users[user].encode(), secret, auth)
        attrs = [(p.USER_NAME, user.encode()), (p.USER_PASSWORD, hidden)]
        out.append(p.encode_request(p.ACCESS_REQUEST, i % 256, attrs, secret, auth))
    return out


def _send_all(
    port: int, requests: list[bytes], concurrency: int, timeout: float
) -> tuple[list[float], list[bytes | None]]:
    """Each request once (no retransmission), ``concurrency`` at a time, one socket per
    worker; (round trips in seconds, replies in order, None for a lost one)."""
    replies: list[bytes | None] = [None] * len(requests)
    times: list[float] = []

    def worker(first: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.connect(("127.0.0.1", port))
            for i in range(first, len(requests), concurrency):
                t0 = time.perf_counter()
                s.send(requests[i])
                deadline = t0 + timeout
                while time.perf_counter() < deadline:
                    try:
                        data = s.recv(4096)
                    except TimeoutError:
                        break
                    if data[1:2] == requests[i][1:2]:
                        times.append(time.perf_counter() - t0)
                        replies[i] = data
                        break

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return times, replies


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3 if values else float("nan")


def mschapv2_push_round_trip(
    site: RelaySite, requests: int = 100, concurrency: int = 1
) -> dict[str, float]:
    """MS-CHAPv2 + an approved push through OpenMFA vs FreeRADIUS's MS-CHAPv2 alone: round trip
    p50/p99 (ms), CPU per request (µs) of the node and of FreeRADIUS, Access-Accepts that
    verify."""
    concurrency = min(concurrency, len(site.users))  # one push per user at a time
    nas, up = site.nas_secret.encode(), site.upstream.secret.encode()
    through = mschap_requests(site.users, requests, nas)
    # FreeRADIUS alone is ~100 times faster: more requests, for a CPU figure above /proc's
    # 10 ms resolution.
    fr_requests = max(requests, ALONE_AT_LEAST)
    alone = mschap_requests(site.users, fr_requests, up)
    _send_all(site.radius_port, [q.raw for q in through[:2]], 1, HOLD_SECONDS + 5)  # warm up
    node0, fr0 = cpu_seconds(site.node.proc.pid), cpu_seconds(site.upstream.pid)
    times, replies = _send_all(
        site.radius_port, [q.raw for q in through], concurrency, HOLD_SECONDS + 5
    )
    node_cpu = cpu_seconds(site.node.proc.pid) - node0
    fr_relayed = cpu_seconds(site.upstream.pid) - fr0
    ok = sum(
        r is not None and mschap_reply_ok(q, r, nas) for q, r in zip(through, replies, strict=True)
    )
    fr0 = cpu_seconds(site.upstream.pid)
    fr_times, fr_replies = _send_all(site.upstream.port, [q.raw for q in alone], concurrency, 5)
    fr_cpu = cpu_seconds(site.upstream.pid) - fr0
    # What the push costs by itself: PAP + an approved push, the same client and users.
    node0 = cpu_seconds(site.node.proc.pid)
    pap_times, pap_replies = _send_all(
        site.radius_port, pap_requests(site.users, requests, nas), concurrency, HOLD_SECONDS + 5
    )
    pap_cpu = cpu_seconds(site.node.proc.pid) - node0
    pap_ok = sum(r is not None and r[0] == p.ACCESS_ACCEPT for r in pap_replies)
    fr_ok = sum(
        r is not None and mschap_reply_ok(q, r, up) for q, r in zip(alone, fr_replies, strict=True)
    )
    figures = {
        "p50_ms": _pct(times, 0.5),
        "p99_ms": _pct(times, 0.99),
        "node_cpu_us": node_cpu / requests * 1e6,
        "upstream_cpu_in_relay_us": fr_relayed / requests * 1e6,
        "ok": ok,
        "fr_p50_ms": _pct(fr_times, 0.5),
        "fr_p99_ms": _pct(fr_times, 0.99),
        "fr_cpu_us": fr_cpu / fr_requests * 1e6,
        "fr_ok": fr_ok,
        "pap_push_p50_ms": _pct(pap_times, 0.5),
        "pap_push_p99_ms": _pct(pap_times, 0.99),
        "pap_push_node_cpu_us": pap_cpu / requests * 1e6,
        "pap_push_ok": pap_ok,
    }
    print(
        f"MS-CHAPv2 + approved push through OpenMFA, {requests} requests, {concurrency} at a "
        f"time: p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
        f"node CPU {figures['node_cpu_us']:.0f} µs/req (FreeRADIUS behind it "
        f"{figures['upstream_cpu_in_relay_us']:.0f} µs/req); {ok}/{requests} accepted "
        "with a verified MS-CHAP2-Success and re-encrypted MPPE keys"
    )
    print(
        f"MS-CHAPv2 straight to FreeRADIUS: p50 {figures['fr_p50_ms']:.2f} ms, "
        f"p99 {figures['fr_p99_ms']:.2f} ms, CPU {figures['fr_cpu_us']:.0f} µs/req; "
        f"{fr_ok}/{fr_requests} accepted and verified"
    )
    print(
        f"PAP + approved push through OpenMFA, the same client (the push alone, for "
        f"comparison): p50 {figures['pap_push_p50_ms']:.1f} ms, p99 "
        f"{figures['pap_push_p99_ms']:.1f} ms, node CPU {figures['pap_push_node_cpu_us']:.0f} "
        f"µs/req; {pap_ok}/{requests} accepted"
    )
    print(
        "  node CPU per MS-CHAPv2 + push / FreeRADIUS's per MS-CHAPv2: "
        f"{figures['node_cpu_us'] / max(figures['fr_cpu_us'], 1e-9):.1f}x"
    )
    return figures


# --- EAP-PEAP ----------------------------------------------------------------------------------


def eap_peap_rate(site: RelaySite, conversations: int = 40, parallel: int = 4) -> dict[str, float]:
    """EAP-PEAP conversations per second through OpenMFA (an approved push each) and straight
    to FreeRADIUS, ``parallel`` eapol_test processes at a time (worker k runs conversations k,
    k + parallel, ... one after the other as user k: one push per user at a time); CPU per
    conversation of the node and of FreeRADIUS."""
    names = sorted(site.users)
    parallel = min(parallel, len(names))
    confs = [
        eapol_test_conf(
            site.base / "eapol" / f"{u}.conf", "peap", u, site.users[u], ca_cert=site.upstream.ca
        )
        for u in names[:parallel]
    ]

    def measure(port: int, secret: str, count: int) -> tuple[float, int, float, float]:
        def worker(k: int) -> int:
            return sum(
                run_eapol_test(confs[k], port, secret, HOLD_SECONDS + 10).success
                for _ in range(k, count, parallel)
            )

        node0, fr0 = cpu_seconds(site.node.proc.pid), cpu_seconds(site.upstream.pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            ok = sum(pool.map(worker, range(parallel)))
        wall = time.perf_counter() - t0
        node = cpu_seconds(site.node.proc.pid) - node0
        fr = cpu_seconds(site.upstream.pid) - fr0
        return wall, ok, node / count * 1e3, fr / count * 1e3

    run_eapol_test(confs[0], site.radius_port, site.nas_secret, HOLD_SECONDS + 10)  # warm up
    wall, ok, node_ms, fr_ms = measure(site.radius_port, site.nas_secret, conversations)
    fr_count = max(conversations, ALONE_AT_LEAST // 20)
    fr_wall, fr_ok, _, fr_alone_ms = measure(site.upstream.port, site.upstream.secret, fr_count)
    figures = {
        "rate": ok / wall,
        "ok": ok,
        "node_cpu_ms": node_ms,
        "upstream_cpu_in_relay_ms": fr_ms,
        "fr_rate": fr_ok / fr_wall,
        "fr_ok": fr_ok,
        "fr_cpu_ms": fr_alone_ms,
    }
    print(
        f"EAP-PEAP (MSCHAPv2 inside) through OpenMFA with an approved push, {parallel} "
        f"eapol_test at a time: {figures['rate']:.1f} conversations/s ({ok}/{conversations} "
        f"SUCCESS), node CPU {node_ms:.1f} ms/conversation (FreeRADIUS behind it "
        f"{fr_ms:.1f} ms)"
    )
    print(
        f"EAP-PEAP straight to FreeRADIUS: {figures['fr_rate']:.1f} conversations/s "
        f"({fr_ok}/{fr_count} SUCCESS), CPU {fr_alone_ms:.1f} ms/conversation"
    )
    return figures


def relay_figures(
    requests: int = 100, conversations: int = 40, parallel: int = 4, tmp: Path | None = None
) -> dict[str, dict[str, float]]:
    """Both figures from one site (what bench/radius.py prints at its end)."""
    with bench_site(max(parallel, 1), tmp) as site:
        print(
            f"\nRelay site: openmfa serve pid {site.node.proc.pid}, FreeRADIUS upstream pid "
            f"{site.upstream.pid}, {len(site.users)} users each with a phone that approves at once"
        )
        return {
            "mschapv2": mschapv2_push_round_trip(site, requests),
            "eap_peap": eap_peap_rate(site, conversations, parallel),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=100, help="MS-CHAPv2 requests")
    ap.add_argument("--conversations", type=int, default=40, help="EAP-PEAP conversations")
    ap.add_argument("--parallel", type=int, default=4, help="eapol_test processes at a time")
    args = ap.parse_args()
    summary(relay_figures(args.requests, args.conversations, args.parallel))


def summary(figures: dict[str, dict[str, float]]) -> None:
    m, e = figures["mschapv2"], figures["eap_peap"]
    print(
        f"\nsummary: MS-CHAPv2 + push p50 {m['p50_ms']:.1f} ms / p99 {m['p99_ms']:.1f} ms, "
        f"node {m['node_cpu_us']:.0f} µs/req vs FreeRADIUS alone {m['fr_cpu_us']:.0f} µs/req; "
        f"EAP-PEAP {e['rate']:.1f}/s through OpenMFA vs {e['fr_rate']:.1f}/s straight"
    )


if __name__ == "__main__":
    main()
