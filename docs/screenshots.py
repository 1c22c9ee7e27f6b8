"""Take screenshots of the demo's Airflow UI with headless Chromium (Debian's ``chromium`` package).

Start the demo first (``make demo-ui``), then::

    .venv/bin/python docs/screenshots.py [--url http://127.0.0.1:28080] [--out docs/screenshots]

It drives Chromium over the DevTools protocol (through aiohttp, which Airflow already installs), so it
can choose the DAG view (grid or graph, task groups expanded) and a task's try, and writes one PNG per
view of the latest successful run of the whole loop (train → gate → validate → deploy): its grid and
graph, the training task's log while it was deferred, its extra links, its rendered spec and its XCom
entries, and the deploy task's "Serving Deployment" link. Nothing is mocked: the pictures are of the
demo's real run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "lyftlearn_retrain_every_15_minutes"
WIDTH, HEIGHT = 1600, 1000


def api(base: str, path: str) -> Any:
    """GET one REST API resource (the demo needs no login)."""
    with urllib.request.urlopen(f"{base}/api/v2/{path}", timeout=30) as response:
        return json.load(response)


def latest_run(base: str, dag_id: str) -> str:
    """Return the id of the DAG's latest successful run (the demo's; the schedule may have started more)."""
    runs = api(base, f"dags/{dag_id}/dagRuns?order_by=-run_after&limit=1&state=success")["dag_runs"]
    if not runs:
        raise SystemExit(f"{dag_id} has no run yet: start the demo with `make demo-ui` first")
    return str(runs[0]["dag_run_id"])


def task_with_xcom(base: str, dag_id: str, run_id: str, key: str, what: str) -> str:
    """Return the task of the run that pushed XCom ``key`` (``lyftlearn_training_job``: it trained)."""
    run = quote(run_id, safe="")
    for ti in api(base, f"dags/{dag_id}/dagRuns/{run}/taskInstances")["task_instances"]:
        entries = api(base, f"dags/{dag_id}/dagRuns/{run}/taskInstances/{ti['task_id']}/xcomEntries")
        if any(entry["key"] == key for entry in entries["xcom_entries"]):
            return str(ti["task_id"])
    raise SystemExit(f"no task of {dag_id} {run_id} {what}")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Page:
    """One Chromium tab, steered over the DevTools protocol."""

    def __init__(self, socket_: Any) -> None:
        self.socket = socket_
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result (events in between are skipped)."""
        ident = next(self.ids)
        await self.socket.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await self.socket.receive_json()
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page; return its (JSON) value."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result.get("result", {}).get("value")

    async def open(self, url: str, settle: float = 4.0) -> None:
        """Navigate and give the single-page app time to fetch and draw."""
        await self.call("Page.navigate", url=url)
        await asyncio.sleep(settle)

    async def click_text(self, text: str) -> bool:
        """Click the first button or tab whose text is ``text``; return whether there was one."""
        clicked = await self.evaluate(
            "(() => { const el = [...document.querySelectorAll('button, [role=tab], a')]"
            f".find(e => e.textContent.trim() === {json.dumps(text)}); if (el) el.click(); return !!el; }})()"
        )
        await asyncio.sleep(2.0)
        return bool(clicked)

    async def expand_groups(self) -> bool:
        """Click the DAG view's "expand all" button, so the task groups show their tasks."""
        clicked = await self.evaluate(
            "(() => { const el = [...document.querySelectorAll('button')].find(e => /expand/i.test("
            "(e.getAttribute('aria-label') || '') + ' ' + (e.getAttribute('title') || ''))); "
            "if (el) el.click(); return !!el; })()"
        )
        await asyncio.sleep(3.0)
        return bool(clicked)

    async def shoot(self, path: Path) -> None:
        """Save the viewport as a PNG."""
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)


async def take(base: str, out: Path, browser: str) -> None:
    """Start Chromium, take every screenshot, stop it."""
    import aiohttp

    dag_id = DAG_ID
    run_id = latest_run(base, dag_id)
    task = task_with_xcom(base, dag_id, run_id, "lyftlearn_training_job", "trained a model")
    deploy = task_with_xcom(base, dag_id, run_id, "lyftlearn_deployment", "deployed a model")
    run_url = f"{base}/dags/{dag_id}/runs/{quote(run_id, safe='')}"
    task_url = f"{run_url}/tasks/{quote(task, safe='')}"
    deploy_url = f"{run_url}/tasks/{quote(deploy, safe='')}"
    port = free_port()
    profile = tempfile.mkdtemp(prefix="lyftlearn-chromium-")
    chromium = subprocess.Popen(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:
            targets: list[dict[str, Any]] = []
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                        targets = [t for t in await response.json() if t.get("type") == "page"]
                    if targets:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            async with session.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as socket_:
                page = Page(socket_)
                await page.call("Page.enable")
                await page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=WIDTH,
                    height=HEIGHT,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                await page.open(base, settle=2.0)
                for view in ("grid", "graph"):
                    await page.evaluate(f"localStorage.setItem('default_dag_view', JSON.stringify('{view}'))")
                    await page.open(run_url, settle=6.0)
                    if not await page.expand_groups():
                        print(f"{view}: found no button to expand the task groups", flush=True)
                    await page.shoot(out / f"{view}.png")
                await page.evaluate("localStorage.setItem('default_dag_view', JSON.stringify('grid'))")
                # The first try's log: the job created, then its progress while the task was deferred.
                await page.open(task_url, settle=5.0)
                await page.click_text("1")
                await page.shoot(out / "task-log.png")
                await page.open(f"{task_url}/details", settle=5.0)
                await page.shoot(out / "task-details-links.png")
                await page.open(f"{task_url}/rendered_templates", settle=5.0)
                await page.shoot(out / "rendered-templates.png")
                await page.open(f"{task_url}/xcom", settle=5.0)
                await page.shoot(out / "xcom.png")
                # The deploy task: its "Serving Deployment" link and the rollout it waited for.
                await page.open(f"{deploy_url}/details", settle=5.0)
                await page.shoot(out / "deploy-details-links.png")
    finally:
        chromium.terminate()
        chromium.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:28080", help="the demo's Airflow UI")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(take(args.url.rstrip("/"), args.out, args.chromium))
    return 0


if __name__ == "__main__":
    sys.exit(main())
