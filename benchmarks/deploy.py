"""A deploy in the middle of a thousand waiting executions: none of them fails.

A thousand executions of a flow wait for approval. The flow's file is then rewritten
with a new step behind ``kitaru.patched()``, and a second time with a new step that is
not behind it. ``kitaru executions upgrade --all-waiting --dry-run`` runs against each
version: it should find no divergence for the patched code, and every execution
diverging for the unpatched code. The patched code is deployed, ``kitaru executions
upgrade --all-waiting`` moves the executions to its version, every wait is answered,
and a worker of the new code resumes them all. The script prints how long each check
took and how the executions ended.

    python benchmarks/deploy.py [--executions N]

Run by ``nox -s bench``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import env_with  # noqa: E402

FLOW = """
import kitaru
from kitaru import checkpoint, flow, wait


@checkpoint
def fetch(i: int) -> int:
    return i


@checkpoint
def lint(x: int) -> int:
    return x + 1000


@flow
def review(i: int) -> int:
    x = fetch(i)
{change}
    ok = wait(name="approve", schema=bool)
    return x if ok else -1
"""
PATCHED = '    if kitaru.patched("lint"):\n        x = lint(x)'
UNPATCHED = "    x = lint(x)"
START = """
import sys
sys.path.insert(0, sys.argv[1])
from app import review
for i in range(int(sys.argv[2])):
    review.run(i)
"""
COUNT = """
import json
from kitaru_core.store.metadata_store import get_store
db = get_store().db
rows = db.fetchall("SELECT status, COUNT(*) FROM executions GROUP BY status")
linted = db.fetchone("SELECT COUNT(*) FROM journal WHERE name = 'lint'")
print(json.dumps({**{status: count for status, count in rows}, "lint": linted[0]}))
"""
ANSWER = """
from kitaru import KitaruClient
client = KitaruClient()
for wait in client.executions.pending_waits():
    client.executions.input(wait.exec_id, wait="approve", value=True, resume=False)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1000)
    args = parser.parse_args()
    n = args.executions
    with tempfile.TemporaryDirectory() as tmp:
        project, env = Path(tmp) / "project", env_with(str(Path(tmp) / "home"))
        project.mkdir()
        app = project / "app.py"
        app.write_text(FLOW.format(change=""))

        def kitaru(*command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "kitaru", *command],
                env=env,
                cwd=project,
                capture_output=True,
                text=True,
            )

        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", START, str(project), str(n)], env=env, check=True)
        print(f"{n} executions started and waiting in {time.perf_counter() - began:.1f} s")

        for label, change in (("patched", PATCHED), ("unpatched", UNPATCHED)):
            app.write_text(FLOW.format(change=change))
            began = time.perf_counter()
            checked = kitaru("executions", "upgrade", "--all-waiting", "--dry-run", "-o", "json")
            took = time.perf_counter() - began
            verdicts = [c["verdict"] for c in json.loads(checked.stdout)]
            print(
                f"  upgrade --all-waiting --dry-run, {label} deploy: {took:.1f} s "
                f"({took / n * 1000:.1f} ms each); {verdicts.count('ok')} replay, "
                f"{verdicts.count('diverges')} would diverge, exit {checked.returncode}"
            )

        # The deploy that goes out: each execution checked again and moved to the new
        # code version, which the new worker has.
        app.write_text(FLOW.format(change=PATCHED))
        began = time.perf_counter()
        moved = kitaru("executions", "upgrade", "--all-waiting", "-o", "json")
        took = time.perf_counter() - began
        verdicts = [c["verdict"] for c in json.loads(moved.stdout)]
        print(
            f"  upgrade --all-waiting: {verdicts.count('ok')} moved to the new code in {took:.1f} s"
        )
        subprocess.run([sys.executable, "-c", ANSWER], env=env, check=True)
        began = time.perf_counter()
        worker = subprocess.Popen(
            [sys.executable, "-m", "kitaru", "worker", "--poll", "0.2"],
            env=env,
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                counted = subprocess.run(
                    [sys.executable, "-c", COUNT], env=env, capture_output=True, text=True
                )
                statuses = json.loads(counted.stdout)
                if statuses.get("completed", 0) + statuses.get("failed", 0) == n:
                    break
                time.sleep(1)
        finally:
            worker.terminate()
            worker.wait(60)
        took = time.perf_counter() - began
        print(
            f"  after the patched deploy, a worker resumed them all in {took:.1f} s: "
            f"{statuses.get('completed', 0)} completed, {statuses.get('failed', 0)} failed, "
            f"{statuses['lint']} took the new step (they had passed it: none should)"
        )


if __name__ == "__main__":
    main()
