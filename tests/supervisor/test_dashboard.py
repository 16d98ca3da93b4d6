"""The dashboard in real headless Chromium (Debian's package), driven over the DevTools
protocol with the websockets library: it loads, shows a STALLED job in its colour once the
stall happens, and its ack button acknowledges an alert. Screenshots are saved as artifacts
(var/test-artifacts/, or $PROOFWATCH_TEST_ARTIFACTS)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process, TaskGroup
from websockets.asyncio.client import ClientConnection, connect

from status.models import JobState
from tests import _procs as P
from tests.supervisor.harness import job, reach
from tests.supervisor.test_api import TOKEN, api_table, serving

S = JobState
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PROOFWATCH_TEST_ARTIFACTS") or REPO / "var" / "test-artifacts")
STALLED_RED = "rgb(220, 38, 38)"  # --bad in style.css: STALLED, SILENT, FAILED


# Makes progress until the test drops a `hang` file in its run dir, then beats without progress.
HANGS_ON_CUE = """
import os, time
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
cue = Path(os.environ["PROOFWATCH_RUN_DIR"]) / "hang"
i = 0
while not cue.exists():
    i += 1
    run.beat({"pages": i}, phase="crawl", message=f"page {i}", force=True)
    time.sleep(0.05)
while True:
    run.beat({"pages": i}, phase="crawl", message="waiting for lock", force=True)
    time.sleep(0.05)
"""


def chromium() -> str | None:
    for name in (os.environ.get("PROOFWATCH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="no Chromium on this machine: `make test` installs "
                                                  "Debian's chromium (scripts/install-test-deps.sh)"),
]


class Page:
    """One tab, over a flat DevTools session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, session=self.session)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JS expression (awaited if it is a promise); JS errors raise."""
        reply = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                                returnByValue=True)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise AssertionError(details.get("exception", {}).get("description") or details.get("text"))
        return reply["result"].get("value")

    async def wait_for(self, condition: str, timeout: float = 15) -> Any:
        """Wait until the JS `condition` is truthy: re-checked on every DOM change (a
        MutationObserver in the page), not on a timer."""
        script = f"""new Promise((resolve, reject) => {{
            const check = () => {{ try {{ const v = ({condition}); if (v) {{ resolve(v); return true; }} }}
                                  catch (e) {{}} return false; }};
            if (check()) return;
            const obs = new MutationObserver(() => {{ if (check()) obs.disconnect(); }});
            obs.observe(document, {{subtree: true, childList: true, attributes: true, characterData: true}});
            setTimeout(() => {{ obs.disconnect(); reject(new Error({json.dumps("timed out: " + condition)})); }},
                       {int(timeout * 1000)});
        }})"""
        return await self.evaluate(script)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        x, y = await self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            el.scrollIntoView({{block: "center"}});
            const r = el.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1 if not mobile else 2, mobile=mobile)

    async def screenshot(self, path: Path) -> None:
        """The whole page as a PNG."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                               clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


class Browser:
    """Headless Chromium and its DevTools websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[anyio.Event, list[dict[str, Any]]]] = {}
        self.errors: list[str] = []  # exceptions thrown by the page's scripts

    async def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None) -> dict[str, Any]:
        msg_id = next(self._ids)
        done, box = anyio.Event(), []
        self._waiting[msg_id] = (done, box)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self.ws.send(json.dumps(message))
        with anyio.fail_after(30):
            await done.wait()
        reply = box[0]
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            waiter = self._waiting.pop(message.get("id", -1), None)
            if waiter is not None:
                waiter[1].append(message)
                waiter[0].set()
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))

    async def new_page(self, url: str) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.viewport(1280, 900)
        await page.send("Page.navigate", url=url)
        return page


@asynccontextmanager
async def headless_chromium(tmp_path: Path) -> AsyncIterator[Browser]:
    binary = chromium()
    assert binary is not None
    args = [binary, "--headless=new", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
            "--remote-debugging-port=0", f"--user-data-dir={tmp_path / 'chromium-profile'}", "about:blank"]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    process = await anyio.open_process(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
    async with process, anyio.create_task_group() as tg:
        try:
            url = await _devtools_url(process, tg)
            async with connect(url, max_size=None) as ws:
                browser = Browser(ws)
                tg.start_soon(browser._read)
                yield browser
                tg.cancel_scope.cancel()
        finally:
            process.terminate()
            with anyio.move_on_after(10, shield=True):
                await process.wait()


async def _devtools_url(process: Process, tg: TaskGroup) -> str:
    """Read Chromium's stderr up to its "DevTools listening on ws://..." line; keep draining
    it afterwards (a full pipe would stall the browser)."""
    assert process.stderr is not None
    seen = b""
    with anyio.fail_after(30):
        async for chunk in process.stderr:
            seen += chunk
            for line in seen.decode(errors="replace").splitlines():
                if line.startswith("DevTools listening on "):
                    tg.start_soon(_drain, process)
                    return line.removeprefix("DevTools listening on ").strip()
    raise AssertionError(f"Chromium exited before serving DevTools:\n{seen.decode(errors='replace')[-3000:]}")


async def _drain(process: Process) -> None:
    assert process.stderr is not None
    async for _ in process.stderr:
        pass


async def test_the_dashboard_shows_a_stall_in_red_and_its_ack_button_acknowledges(tmp_path: Path) -> None:
    tables = (
        "[health]\ninterval = \"200ms\"\n",
        job(tmp_path, "ingest", P.BEATS_FOREVER, kind="service"),
        job(tmp_path, "stuck", HANGS_ON_CUE, stall_after="1s"),
        job(tmp_path, "broken", P.CRASH_AT_START),
        job(tmp_path, "prove", P.WRITES_PROOF) + '[[jobs.prove.proofs]]\npath = "out.json"\n',
        job(tmp_path, "fake", P.EXIT_OK) + '[[jobs.fake.proofs]]\npath = "screens/*.png"\nkind = "png"\n',
    )
    async with serving(tmp_path, *tables, api=api_table()) as s:
        d = s.daemon
        assert d.api is not None and d.api.url is not None
        async with headless_chromium(tmp_path) as browser:
            page = await browser.new_page(f"{d.api.url}/#token={TOKEN}")
            await page.wait_for('document.querySelector("[data-job=stuck] .state")?.textContent === "RUNNING"')
            assert await page.evaluate("location.hash") == ""  # the token left the address bar
            await page.evaluate("window.sameDocument = true")

            (d.jobs["stuck"].run.run_dir / "hang").touch()  # progress stops: STALLED 1 s later
            await reach(d, "stuck", S.STALLED, timeout=15)
            await page.wait_for('document.querySelector("[data-job=stuck] .state")?.textContent === "STALLED"')
            assert await page.evaluate("window.sameDocument") is True  # updated live, not reloaded

            colour = await page.evaluate(
                'getComputedStyle(document.querySelector("[data-job=stuck] .state")).backgroundColor')
            assert colour == STALLED_RED
            await reach(d, "fake", S.FAILED)
            await page.wait_for('document.querySelector("[data-job=fake] .proof-bad")?.textContent === "FAILED"')
            await page.wait_for('document.querySelector("[data-job=prove] .proof-ok")?.textContent === "ok"')
            await page.wait_for('Number(document.querySelector("#spark-cpu").dataset.points) >= 2')
            assert await page.evaluate('document.querySelector("#score-value").textContent') != "–"
            gauges = await page.evaluate('[...document.querySelectorAll("#gauges .gauge")].map(g => g.dataset.gauge)')
            assert {"CPU", "memory", "disk /", "temperature"} <= set(gauges)
            assert await page.evaluate('document.querySelector("#live").dataset.mode') == "live"
            assert "null" not in await page.evaluate('document.querySelector("#jobs").textContent')

            await reach(d, "broken", S.CRASHED)
            button = '[data-ack="broken:crashed"]'
            await page.wait_for(f"document.querySelector({json.dumps(button)})")
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            await page.screenshot(ARTIFACTS / "dashboard.png")

            await page.click(button)

            await d.wait_until(lambda: "broken:crashed" not in d.alerts.active, 10)
            await page.wait_for('!document.querySelector(\'[data-key="broken:crashed"]\')')
            history = [a for a in d.history.alerts() if a.key == "broken:crashed"]
            assert history and history[0].resolution == "acknowledged by the operator"

            await page.viewport(390, 844, mobile=True)  # a phone: nothing runs off the side
            await page.wait_for("document.documentElement.scrollWidth <= window.innerWidth + 1")
            await page.screenshot(ARTIFACTS / "dashboard-phone.png")
            assert browser.errors == []
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 20_000


async def test_the_dashboard_asks_for_the_token_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "ok", P.BEATS_FOREVER, kind="service")) as s:
        assert s.daemon.api is not None and s.daemon.api.url is not None
        async with headless_chromium(tmp_path) as browser:
            page = await browser.new_page(f"{s.daemon.api.url}/#token=wrong")
            await page.wait_for('!document.querySelector("#auth").hidden')
            assert "refused" in await page.evaluate('document.querySelector("#auth-why").textContent')
            assert await page.evaluate('document.querySelectorAll("[data-job]").length') == 0
            await page.evaluate(f'document.querySelector("#auth-token").value = {json.dumps(TOKEN)}')
            await page.click('#auth-form button[type="submit"]')
            await page.wait_for('document.querySelector("[data-job=ok] .state")?.textContent === "RUNNING"')
