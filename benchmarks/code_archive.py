"""What ``code: archive`` adds to starting an execution whose source tree is unchanged:
every file's size and modification time compared with the home's record of the tree,
and a lookup of the archive already stored (in a fresh process, and in one that started
executions before). Both stacks are local (SQLite, local artifact store); the project is a
package of 40 modules (about 400 KB), like a small agent service.

Starts on a ``code: path`` stack and a ``code: archive`` stack alternate, so the
machine's drift falls on both alike.

    python benchmarks/code_archive.py [--starts N] [--processes N]

Run by ``nox -s bench``. Target: at most 5 ms added per start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import env_with  # noqa: E402

FLOW = """
from kitaru import checkpoint, flow


@checkpoint
def step(x: int) -> int:
    return x + 1


@flow
def job(x: int) -> int:
    return step(x)
"""
STACK = """name: {name}
artifact_store: {{flavor: local}}
secret_provider: {{flavor: local}}
orchestrator: {{flavor: local}}
llm_gateway: {{flavor: litellm}}
settings: {{code: {code}}}
"""
MEASURE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from app.flows import job
from kitaru_core.runtime.engine import create_execution
from kitaru_core.stack_registry import get_stack

starts = int(sys.argv[2])
stacks = {"path": get_stack("by-path"), "archive": get_stack("by-archive")}
for stack in stacks.values():  # the store opened, each stack's components built
    stack.artifacts, stack.orchestrator
create_execution(job, (-1,), {}, stack=get_stack("local"))
times = {"path": [], "archive": []}
order = ["archive", "path"] if len(sys.argv) > 3 else ["path", "archive"]
for i in range(starts):
    for code in order if i % 2 == 0 else order[::-1]:
        began = time.perf_counter()
        create_execution(job, (i,), {}, stack=stacks[code])
        times[code].append(time.perf_counter() - began)
print(json.dumps(times))
"""


def make_project(root: Path) -> None:
    package = root / "app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(FLOW)
    filler = "\n".join(f"def helper_{i}(x):\n    return x * {i}\n" for i in range(300))
    for n in range(40):
        (package / f"module_{n}.py").write_text(filler)
    (root / ".gitignore").write_text("*.log\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument("--processes", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp) / "project", str(Path(tmp) / "home")
        make_project(root)
        env = env_with(home)
        for name, code in (("by-path", "path"), ("by-archive", "archive")):
            stack = Path(tmp) / f"{name}.yaml"
            stack.write_text(STACK.format(name=name, code=code))
            subprocess.run(
                [sys.executable, "-m", "kitaru", "stack", "register", str(stack)],
                env=env,
                check=True,
                capture_output=True,
            )

        def measure(starts: int, archive_first: bool) -> dict[str, list[float]]:
            cmd = [sys.executable, "-c", MEASURE, str(root), str(starts)]
            out = subprocess.run(
                cmd + (["archive-first"] if archive_first else []),
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            return json.loads(out)  # type: ignore[no-any-return]

        measure(1, True)  # the archive stored once, as after the first deploy
        first, warm = [], []
        for n in range(args.processes):
            # The first start of a fresh process (its store already open).
            cold = measure(1, archive_first=n % 2 == 0)
            first.append(cold["archive"][0] - cold["path"][0])
            times = measure(args.starts, archive_first=n % 2 == 1)
            added = statistics.median(times["archive"]) - statistics.median(times["path"])
            warm.append(added)
    ms = 1000
    print(f"code: archive, unchanged tree of 41 modules (medians of {args.processes} processes)")
    print(f"  first start in a fresh process   added {statistics.median(first) * ms:6.2f} ms")
    print(f"  later starts in the same process added {statistics.median(warm) * ms:6.2f} ms")
    print("  target: at most 5 ms added per start")


if __name__ == "__main__":
    main()
