"""The dashboard's Fleet section in real headless Chromium (tests/supervisor/test_dashboard.py
drives it): with a shared store it lists every host with its state, last report, health and
jobs, the stale host highlighted; without one the section stays hidden."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from status.history import History
from status.models import JobState
from tests import _procs as P
from tests.fleet.test_fleet_view import alpha_reported, fleet_tables, stale_beta
from tests.supervisor.harness import job, reach, running
from tests.supervisor.test_api import TOKEN, api_table
from tests.supervisor.test_dashboard import ARTIFACTS, STALLED_RED, chromium, headless_chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="no Chromium on this machine: `make test` installs "
                                                  "Debian's chromium (scripts/install-test-deps.sh)"),
]

TEXT = 'document.querySelector({}).textContent'


def text(selector: str) -> str:
    return TEXT.format(json.dumps(selector))


async def test_the_fleet_section_lists_both_hosts_and_highlights_the_stale_one(pg_url: str, tmp_path: Path) -> None:
    history = History(pg_url)
    stale_beta(history.engine, datetime.now(timezone.utc))
    history.close()
    svc = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    async with running(tmp_path, *fleet_tables(pg_url), svc, supervisor='host = "alpha"\n') as d:
        await alpha_reported(d)
        assert d.api is not None and d.api.url is not None
        async with headless_chromium(tmp_path) as browser:
            page = await browser.new_page(f"{d.api.url}/#token={TOKEN}")
            await page.wait_for('document.querySelector("[data-host=alpha] [data-fleet-job=svc] .state")'
                                '?.textContent === "RUNNING"')
            await page.wait_for('document.querySelector("[data-host=beta]")')
            assert await page.evaluate('document.querySelector("#fleet-panel").hidden') is False
            assert await page.evaluate(text("#fleet-count")) == "2"
            hosts = await page.evaluate('[...document.querySelectorAll(".fleet-host")].map('
                                        'h => [h.dataset.host, h.dataset.hostState])')
            assert hosts == [["alpha", "up"], ["beta", "stale"]]

            assert await page.evaluate(text("[data-host=alpha] .host-state")) == "UP"
            assert (await page.evaluate(text("[data-host=alpha] .fleet-seen"))).startswith("seen ")
            assert await page.evaluate(text("[data-host=alpha] .badge")) != "health unknown"
            beat = await page.evaluate(text("[data-host=alpha] [data-fleet-job=svc] .beat"))
            assert beat.endswith("s ago") and int(beat.removesuffix("s ago")) < 5
            assert await page.evaluate(
                'document.querySelector("[data-host=alpha] .fleet-jobs").dataset.live') == "true"

            assert await page.evaluate(text("[data-host=beta] .host-state")) == "STALE"
            note = await page.evaluate(text("[data-host=beta] .stale-note"))
            assert note.startswith("STALE — no report for 5m") and note.endswith("(alerted by alpha)")
            assert await page.evaluate(text("[data-host=beta] .badge")) == "DEGRADED 45"
            assert await page.evaluate(
                'document.querySelector("[data-host=beta] .fleet-jobs").dataset.live') == "false"
            row = await page.evaluate('[...document.querySelectorAll("[data-host=beta] [data-fleet-job=emulator] td")]'
                                      '.map(td => td.textContent)')
            assert row[:4] == ["emulator", "RUNNING", "bbbbbb", "777"]
            assert row[4].startswith("5m0") and row[5] == "captured 40 screens"
            colour = await page.evaluate('getComputedStyle(document.querySelector("[data-host=beta] .host-state"))'
                                         '.backgroundColor')
            assert colour == STALLED_RED  # --bad, as for a stalled job
            assert "null" not in await page.evaluate(text("#fleet"))
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            await page.screenshot(ARTIFACTS / "dashboard-fleet.png")

            await page.viewport(390, 844, mobile=True)  # a phone: nothing runs off the side
            await page.wait_for("document.documentElement.scrollWidth <= window.innerWidth + 1")
            assert browser.errors == []


async def test_without_a_shared_store_the_fleet_section_stays_hidden(tmp_path: Path) -> None:
    svc = job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")
    async with running(tmp_path, api_table(), svc) as d:
        await reach(d, "svc", JobState.RUNNING)
        assert d.api is not None and d.api.url is not None
        async with headless_chromium(tmp_path) as browser:
            page = await browser.new_page(f"{d.api.url}/#token={TOKEN}")
            await page.wait_for('document.querySelector("[data-job=svc] .state")?.textContent === "RUNNING"')
            # the page asked /api/fleet, had a 404 and stopped asking
            await page.wait_for('document.querySelector("#fleet-panel").dataset.fleet === "none"')
            assert await page.evaluate('document.querySelector("#fleet-panel").hidden') is True
            assert await page.evaluate('document.querySelector("#fleet-link").hidden') is True
            assert browser.errors == []
