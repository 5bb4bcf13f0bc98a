"""The console's dashboard and month reports through a real node runtime (both databases): an
auditor sees the sign-ins an application just made — the chart (an SVG image with its title)
and the table beside it say the same numbers —, downloads the month as CSV and a chart as an
SVG file that parses; a month that is not YYYY-MM and a chart that does not exist are
sentences, not errors; a locked user shows on the dashboard."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx

from openmfa.config import Config
from openmfa.store.database import Store
from tests.console.test_console_app import code_of, run, setup, sign_in


def _cells(html: str, caption: str) -> list[list[str]]:
    table = html.split(f"<caption>{caption}</caption>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S)
    return [re.findall(r"<td>(.*?)</td>", r) for r in rows]


def test_an_auditor_reads_the_dashboard_and_a_months_report(
    store: Store, config: Config, tmp_path: Path
) -> None:
    key, admin = setup(store, config)
    month = time.strftime("%Y-%m", time.gmtime())

    async def scenario(c: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        h = {"authorization": f"Bearer {admin}"}
        for code in (code_of("nora"), "000000", "111111"):
            r = await node.post("/v1/authenticate", json={"user": "nora", "code": code}, headers=h)
            assert r.status_code == 200, r.text
        assert (await sign_in(c, "otto", code_of("otto"))).status_code == 303
        page = await c.get("/console/dashboard")
        assert page.status_code == 200, page.text
        assert re.search(r'<span class="figure">1</span> locked users', page.text)  # pia
        rows = _cells(page.text, "By channel and result")
        assert ["application", "accepted", "1"] in rows and ["application", "rejected", "2"] in rows
        assert ["console", "accepted", "1"] in rows  # otto's own sign-in
        assert 'role="img"' in page.text and "<title id=" in page.text

        page = await c.get("/console/reports", params={"month": month})
        assert page.status_code == 200, page.text
        assert ["totp", "2"] in _cells(page.text, "By method")  # nora's and otto's
        assert ["wrong_code", "2"] in _cells(page.text, "By reason")
        assert re.search(r'<span class="figure">[12]</span> people signed in', page.text)
        assert page.text.count("<svg") == 4 and page.text.count('role="img"') == 4

        r = await c.get("/console/reports.csv", params={"month": month})
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
        table = list(csv.reader(io.StringIO(r.text)))
        assert table[0] == ["month", "table", "key", "result", "count"]
        assert [month, "methods", "totp", "", "2"] in table
        assert [month, "sign_ins", "application", "rejected", "2"] in table

        r = await c.get("/console/reports.svg", params={"month": month, "chart": "failures"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
        svg = ET.fromstring(r.text)  # noqa: S314 - our own answer
        title = svg.find("{http://www.w3.org/2000/svg}title")
        assert title is not None and month in (title.text or "")
        texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
        assert "wrong_code" in texts and "2" in texts

        for params, status, says in (
            ({"month": "2026-13"}, 400, "A month is written YYYY-MM"),
            ({"month": "<script>"}, 400, "A month is written YYYY-MM"),
            ({"month": month, "chart": "nothing"}, 404, "There is no such chart"),
        ):
            path = "/console/reports.svg" if "chart" in params else "/console/reports"
            r = await c.get(path, params=params)
            assert r.status_code == status and says in r.text, (params, r.text)
            assert "<script>" not in r.text

    run(store, config, tmp_path, key, scenario)
