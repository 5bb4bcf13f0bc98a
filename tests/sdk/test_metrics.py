"""``GET /metrics`` of a node (in process, over a real store): authentications counted by the
channel that asked (the SDK key's scope) and the result, push requests held, the farm gauges,
the build; read by prometheus-client's own parser."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

from openmfa import __version__
from openmfa.config import Config
from openmfa.node.apikeys import ApiKeys
from openmfa.sdk.app import create_app
from openmfa.store.database import Store
from openmfa.wiring import NodeRuntime


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_decisions_by_channel_and_result(store: Store, config: Config) -> None:
    keys = ApiKeys(store)
    admin = {"authorization": f"Bearer {keys.create('admin', 'admin')}"}
    portal = {"authorization": f"Bearer {keys.create('web', 'portal')}"}
    adapter = {"authorization": f"Bearer {keys.create('idp', 'adapter')}"}

    said: Counter[tuple[str, str]] = Counter()

    async def main() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        node = NodeRuntime(store, config, radius_listen="")
        await node.start()
        try:
            transport = httpx.ASGITransport(app=create_app(node))
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                before = (await c.get("/metrics")).text
                assert "openmfa_authentications_total{" not in before  # nothing decided yet
                r = await c.post("/v1/users", json={"name": "ann"}, headers=admin)
                assert r.status_code == 201
                r = await c.post("/v1/users/ann/bypass", json={"seconds": 60}, headers=admin)
                assert r.status_code == 200
                for channel, h in (("sdk", admin), ("portal", portal), ("adapter", adapter)):
                    for code in ("", "000000", "000001"):
                        r = await c.post(
                            "/v1/authenticate", json={"user": "ann", "code": code}, headers=h
                        )
                        said[(channel, "accepted" if r.json()["accepted"] else "rejected")] += 1
                r = await c.get("/metrics")
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/plain; version=")
                return samples(r.text)
        finally:
            await node.stop()

    got = asyncio.run(main())
    auth = "openmfa_authentications_total"
    assert said[("sdk", "accepted")] == 1 and said[("adapter", "rejected")] >= 2  # the bypass
    counted = {
        (dict(labels)["channel"], dict(labels)["result"]): n
        for (name, labels), n in got.items()
        if name == auth
    }
    assert counted == dict(said)
    assert got[("openmfa_push_requests", (("status", "open"),))] == 0
    assert got[("openmfa_farm_role", (("role", "standalone"),))] == 1
    assert got[("openmfa_farm_position", ())] >= 0
    assert got[("openmfa_build_info", (("part", "node"), ("release", __version__)))] == 1
    assert got[("openmfa_upgrade_in_progress", ())] == 0
