"""The browser backend: Debian's headless Chromium, driven over the DevTools protocol (the
`websockets` library), takes a full-page PNG of each configured sportsbook page.

One browser per run, a temporary profile (--user-data-dir), --no-sandbox when running as root.
A page is captured once it has loaded and its web fonts are ready (awaited in the page, no
sleeps); the capture is the whole document (captureBeyondViewport), not just the viewport.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from workers.emulator.errors import Blocked

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
PAGE_TIMEOUT = 30.0


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium binary: --chromium, $PROOFWATCH_CHROMIUM, or chromium on PATH."""
    for name in (explicit, os.environ.get("PROOFWATCH_CHROMIUM"), "chromium",
                 "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


class _Cdp:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None) -> dict[str, Any]:
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, PAGE_TIMEOUT)
        if "error" in reply:
            raise Blocked(f"Chromium refused {method}: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            fut = self._waiting.pop(msg.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)


@asynccontextmanager
async def _chromium(binary: str, width: int, height: int) -> AsyncIterator[_Cdp]:
    with tempfile.TemporaryDirectory(prefix="proofwatch-chromium-") as profile:
        args = [binary, "--headless=new", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-dev-shm-usage",
                "--force-device-scale-factor=1", f"--window-size={width},{height}",
                "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        drain: asyncio.Task[None] | None = None
        reader: asyncio.Task[None] | None = None
        try:
            url, seen = await _devtools_url(proc)
            if url is None:
                await proc.wait()
                raise Blocked("Chromium exited before serving DevTools", args, proc.returncode,
                              seen)
            drain = asyncio.create_task(_drain(proc))
            async with connect(url, max_size=None) as ws:
                cdp = _Cdp(ws)
                reader = asyncio.create_task(cdp.read())
                yield cdp
        finally:
            for task in (reader, drain):
                if task is not None:
                    task.cancel()
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
            for task in (reader, drain):
                if task is not None:
                    await asyncio.gather(task, return_exceptions=True)


async def _devtools_url(proc: asyncio.subprocess.Process) -> tuple[str | None, str]:
    """Chromium's "DevTools listening on ws://..." line from its stderr."""
    assert proc.stderr is not None
    seen: list[str] = []

    async def read() -> str | None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").strip()
            seen.append(text)
            if text.startswith("DevTools listening on "):
                return text.removeprefix("DevTools listening on ").strip()
        return None

    try:
        return await asyncio.wait_for(read(), START_TIMEOUT), "\n".join(seen)
    except asyncio.TimeoutError:
        return None, "\n".join(seen + [f"(no DevTools line within {START_TIMEOUT:.0f} s)"])


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while await proc.stderr.read(65536):
        pass


async def _capture(cdp: _Cdp, url: str, path: Path, width: int, height: int,
                   page_wait: float = 0.0) -> tuple[int, int]:
    target = await cdp.send("Target.createTarget", {"url": "about:blank"})
    attached = await cdp.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                        "flatten": True})
    session = attached["sessionId"]
    try:
        await cdp.send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        deadline = asyncio.get_running_loop().time() + page_wait
        while True:  # a page that is not up yet (the sandbox service starting): retry
            nav = await cdp.send("Page.navigate", {"url": url}, session)
            if not nav.get("errorText"):
                break
            if asyncio.get_running_loop().time() >= deadline:
                raise Blocked(f"Chromium could not load {url}: {nav['errorText']} "
                              f"(retried for {page_wait:.0f} s)")
            await asyncio.sleep(0.5)
        ready = await cdp.send("Runtime.evaluate", {
            "expression": """new Promise(resolve => {
                const done = () => document.fonts.ready.then(() => resolve(
                    [document.readyState, document.title, document.body ? document.body.innerText.length : 0]));
                if (document.readyState === "complete") done();
                else window.addEventListener("load", done, {once: true});
            })""", "awaitPromise": True, "returnByValue": True}, session)
        state = ready.get("result", {}).get("value") or ["?", "", 0]
        if not state[2]:
            raise Blocked(f"Chromium loaded {url} but the page is empty (title {state[1]!r})")
        metrics = await cdp.send("Page.getLayoutMetrics", {}, session)
        size = metrics["cssContentSize"]
        w, h = int(size["width"]), int(size["height"])
        shot = await cdp.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}, session)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return w, h
    finally:
        await cdp.send("Target.closeTarget", {"targetId": target["targetId"]})


async def _capture_all(binary: str, jobs: list[tuple[str, Path]], width: int, height: int,
                       on_shot: Callable[[int, str, Path, tuple[int, int]], None],
                       page_wait: float) -> None:
    async with _chromium(binary, width, height) as cdp:
        for i, (url, path) in enumerate(jobs, 1):
            size = await _capture(cdp, url, path, width, height, page_wait)
            on_shot(i, url, path, size)


def capture_pages(jobs: list[tuple[str, Path]], *, width: int = 1000, height: int = 1200,
                  chromium: str | None = None, page_wait: float = 0.0,
                  on_shot: Callable[[int, str, Path, tuple[int, int]], None] = lambda *a: None
                  ) -> None:
    """Screenshot each (url, path) in one headless Chromium; on_shot(k, url, path, size).
    A page that cannot be reached is retried for `page_wait` seconds, then Blocked."""
    binary = find_chromium(chromium)
    if binary is None:
        raise Blocked("no Chromium found: install Debian's `chromium` package or pass --chromium")
    asyncio.run(_capture_all(binary, jobs, width, height, on_shot, page_wait))
