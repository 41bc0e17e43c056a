"""Screenshots of every page of the web UI, light and dark, into docs/screenshots/.

    python scripts/screenshots.py

Starts a ``kitaru serve`` in a fresh home with the review example, gives it some
history (a waiting review, an approved one and its replay with an override, memory
versions, a schedule), then photographs each page in Debian's chromium at 1280x800.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from server import Server  # noqa: E402

API = "/api/v1"
OUT = ROOT / "docs" / "screenshots"


def settle(http: httpx.Client, exec_id: str, status: str) -> None:
    for _ in range(300):
        if http.get(f"{API}/executions/{exec_id}").json()["status"] == status:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{exec_id} never became {status}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    os.environ["KITARU_LLM_MOCK_RESPONSE"] = (
        "Durable agents resume where they stopped.\nEvery LLM call is recorded."
    )
    with tempfile.TemporaryDirectory() as home:
        server = Server(home, flows=[str(ROOT / "examples" / "review_flow.py")])
        http = server.http
        try:
            done = http.post(
                f"{API}/flows/review/executions?wait=30", json={"args": {"topic": "durable agents"}}
            ).json()["exec_id"]
            http.post(f"{API}/executions/{done}/input", json={"value": True})
            settle(http, done, "completed")
            replay = http.post(
                f"{API}/executions/{done}/replay",
                json={
                    "from": "draft",
                    "overrides": {"checkpoint.research": ["Replays are cheap."]},
                },
            ).json()["exec_id"]
            settle(http, replay, "waiting")
            http.post(f"{API}/flows/review/executions?wait=30", json={"args": {"topic": "queues"}})
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kitaru",
                    "schedule",
                    "create",
                    "weekly-review",
                    f"{ROOT / 'examples' / 'review_flow.py'}:review",
                    "--cron",
                    "0 9 * * 1",
                    "--timezone",
                    "Europe/Berlin",
                    "--arg",
                    "topic=weekly notes",
                ],
                env=server.env,
                check=True,
                capture_output=True,
            )
            memory = f"{API}/memory/namespace/team/style"
            http.put(memory, json={"value": {"tone": "plain"}})
            http.put(memory, json={"value": {"tone": "warm", "length": "short"}})
            pages = {
                "executions": ("#/executions", "#executions tbody tr"),
                "execution": (f"#/execution/{done}", "#timeline"),
                "inbox": ("#/inbox", "#inbox article"),
                "compare": (f"#/compare/{done}/{replay}", "#diff-table"),
                "memory": ("#/memory/namespace/team/style", "#version-diff"),
                "stacks": ("#/stacks", "section[data-stack]"),
                "schedules": ("#/schedules", "#view h1"),
            }
            OUT.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                for theme in ("light", "dark"):
                    page = browser.new_page(viewport={"width": 1280, "height": 800})
                    page.goto(server.url + "/")
                    page.evaluate(f"localStorage.setItem('kitaru-theme', '{theme}')")
                    page.reload()
                    page.fill("#token", server.token)
                    page.click("form button[type=submit]")
                    page.wait_for_selector("#executions tbody tr")
                    for name, (hash_, ready) in pages.items():
                        page.goto(f"{server.url}/{hash_}")
                        page.wait_for_selector(ready)
                        page.mouse.move(0, 0)
                        page.screenshot(path=str(OUT / f"{name}-{theme}.png"))
                    # The step debugger, open on the research step and its LLM call.
                    page.goto(f"{server.url}/#/execution/{done}")
                    page.click("#timeline .bar[data-step='research']")
                    page.wait_for_selector("#step-panel .llm-response pre")
                    page.locator("#step-panel").scroll_into_view_if_needed()
                    page.mouse.move(0, 0)
                    page.screenshot(path=str(OUT / f"step-panel-{theme}.png"))
                    page.close()
                browser.close()
        finally:
            server.stop()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
