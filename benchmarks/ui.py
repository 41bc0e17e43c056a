"""The web UI's figures, in Debian's chromium: the executions page's first page with
100,000 executions in the store, the same filtered by flow and status, the inbox with
2,000 pending waits, and an execution page with 2,000 journal entries, each from the
navigation to the rendered rows, cards or bars.

    python benchmarks/ui.py [--executions N] [--steps N] [--rounds N]

Run by ``nox -s bench`` when /usr/bin/chromium exists (apt install chromium).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from server import Server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

MEASURE = """async ([hash, selector, count]) => {
  location.hash = '#/stacks';
  await new Promise((done) => { const t = () => document.querySelector('section[data-stack]') ? done() : requestAnimationFrame(t); t(); });
  const t0 = performance.now();
  location.hash = hash;
  await new Promise((done) => {
    const t = () => document.querySelectorAll(selector).length >= count ? done() : requestAnimationFrame(t);
    t();
  });
  return performance.now() - t0;
}"""


WAITS = 2000


def fill_store(home: str, executions: int, steps: int) -> str:
    """``executions`` executions written straight into the store (as many runs would
    leave them), and one real execution of ``steps`` checkpoints; returns its id."""
    os.environ["KITARU_HOME"] = home
    import bench_flows

    from kitaru_core.store.metadata_store import get_store
    from kitaru_core.store.records import ExecutionRecord, WaitRecord

    big = bench_flows.timed_steps.run(steps).exec_id
    store = get_store()
    now = time.time()
    statuses = ["completed", "completed", "completed", "failed", "waiting"]
    rows = [
        ExecutionRecord(
            id=uuid.uuid4().hex,
            flow_name=f"flow_{i % 7}",
            flow_ref="bench_flows:timed_steps",
            status=statuses[i % len(statuses)],
            stack="local",
            created_at=now - 86400 + i * 0.5,
            started_at=now - 86400 + i * 0.5,
            ended_at=now - 86400 + i * 0.5 + 0.2,
            runs=1,
        ).params()
        for i in range(executions)
    ]
    waiting = [r["id"] for r in rows if r["status"] == "waiting"][:WAITS]
    waits = [
        WaitRecord(
            exec_id=exec_id,
            name="approve",
            position=0,
            status="pending",
            question=f"Approve {exec_id[:8]}?",
            schema={"type": "boolean"},
            schema_name="bool",
            metadata={"amount": i},
            created_at=now - 3600 + i,
        ).params()
        for i, exec_id in enumerate(waiting)
    ]
    with store.db.transaction() as db:
        db.executemany(ExecutionRecord.INSERT, rows)
        db.executemany(WaitRecord.INSERT, waits)
    return big


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args, _ = parser.parse_known_args()
    if not os.path.exists(CHROMIUM):
        print("web UI: skipped (no /usr/bin/chromium; apt install chromium)")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home:
        big = fill_store(home, args.executions, args.steps)
        server = Server(home)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(server.url + "/")
                page.fill("#token", server.token)
                page.click("form button[type=submit]")
                page.wait_for_selector("#executions tbody tr[data-exec]")
                listing = [
                    page.evaluate(MEASURE, ["#/executions", "#executions tbody tr[data-exec]", 50])
                    for _ in range(args.rounds)
                ]
                filtered = [
                    page.evaluate(
                        MEASURE,
                        [
                            "#/executions?flow=flow_3&status=failed",
                            "#executions tbody tr[data-exec]",
                            50,
                        ],
                    )
                    for _ in range(args.rounds)
                ]
                inbox = [
                    page.evaluate(MEASURE, ["#/inbox", "#inbox article", 50])
                    for _ in range(args.rounds)
                ]
                journal = [
                    page.evaluate(MEASURE, [f"#/execution/{big}", "#timeline .bar", args.steps])
                    for _ in range(args.rounds)
                ]
                browser.close()
        finally:
            server.stop()
    print(f"web UI (chromium, {args.executions:,} executions in SQLite)")
    print(
        f"  executions page, first page of 50: median {statistics.median(listing):.0f} ms "
        "(target < 300 ms)"
    )
    print(
        f"  the same filtered by flow and status: median {statistics.median(filtered):.0f} ms "
        "(target < 300 ms)"
    )
    print(
        f"  inbox with {WAITS:,} pending waits, first page of 50: median "
        f"{statistics.median(inbox):.0f} ms (target < 500 ms)"
    )
    print(
        f"  execution page with {args.steps:,} journal entries: median "
        f"{statistics.median(journal):.0f} ms (target < 1000 ms)"
    )


if __name__ == "__main__":
    main()
