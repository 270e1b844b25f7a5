"""The Activity page: the ledger's check and the transparency report (the same figures as
`rtcc-edge audit report`), and its CSV, after a request approved and one denied on the page."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from pathlib import Path

import pytest

from agent.config import AgentConfig
from tests.support.link_service import running_service, site_config, write_site_config
from tests.support.owner_page import running_page
from tests.support.rtcc import ISSUER, jti_of, make_request


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return site_config(tmp_path / "state")


async def test_activity_shows_the_audit_reports_figures(
    config: AgentConfig, tmp_path: Path
) -> None:
    async with running_service(config) as site, running_page(site) as page:
        first, second = (
            make_request("clip", camera="parking-lot"),
            make_request("clip", camera="parking-lot"),
        )
        for payload in (first, second):
            await site.service.handle(payload)
            await site.sink.wait_for(jti_of(payload), "pending_approval")
        async with page.signed_in() as http:
            token = await page.csrf_of(http, "/requests")
            headers = {"Origin": page.url}
            async with http.post(
                f"{page.url}/requests/{jti_of(first)}/approve",
                data={"csrf": token},
                headers=headers,
            ) as response:
                assert response.status == 200
            async with http.post(
                f"{page.url}/requests/{jti_of(second)}/deny",
                data={"csrf": token, "reason": "not my camera's business"},
                headers=headers,
            ) as response:
                assert response.status == 200
            async with http.get(page.url + "/activity") as response:
                text = await response.text()
            assert "The record of every request is intact" in text
            async with http.get(page.url + "/activity.csv") as response:
                assert response.content_type == "text/csv"
                rows = list(csv.DictReader(io.StringIO(await response.text())))
    path = write_site_config(config, tmp_path / "agent.toml")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "agent", "--config", str(path), "audit", "report", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    audit = json.loads(out)
    agency = next(row for row in rows if row["group"] == "agency")
    assert agency["name"] == ISSUER
    expected = audit["by_agency"][ISSUER]
    for column in ("received", "approved", "denied", "expired", "rejected", "bytes_uploaded"):
        assert int(agency[column]) == expected[column], column
    assert (int(agency["approved"]), int(agency["denied"])) == (1, 1)
    camera = next(row for row in rows if row["group"] == "camera")
    assert camera["name"] == "parking-lot"
