"""Kitaru's performance figures: medians over repeated runs, each in fresh processes.

    nox -s bench                # Kitaru alone
    nox -s bench -- --peers     # with DBOS Transact and LangGraph beside it

Every figure is wall-clock time on this machine, local stack, SQLite. Recording
overhead is the time of N checkpoint calls inside a flow minus the same N plain calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
TARGETS_MS = {
    "record_normal": 0.3,
    "record_full": 1.0,
    "replay": 0.1,
    "resume_200": 500.0,
    "import": 150.0,
    "three_step_process": 350.0,
    "cli_help": 300.0,
}


def env_with(home: str, **extra: str) -> dict[str, str]:
    """The environment of a measured process: its own home, the local store unless
    ``extra`` names one, and cached bytecode (users run from it: pip writes it at
    install, Python on first import; without it every process would measure compiling
    the sources instead)."""
    env = dict(os.environ)
    env.pop("KITARU_DATABASE_URL", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return {**env, "KITARU_HOME": home, "PYTHONPATH": str(HERE), **extra}


def wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


RECORD_AND_REPLAY = """
import asyncio, json, sys, time
import bench_flows as b
from kitaru import KitaruClient
from kitaru_core.store.metadata_store import get_store
n = int(sys.argv[1])
b.timed_steps.run(50)  # warm up: schema, directories, caches
started = time.perf_counter()
for i in range(n):
    b.plain_step(i)
plain = time.perf_counter() - started
handle = b.timed_steps.run(n)
recorded = handle.wait()
get_store().db.execute("UPDATE executions SET status='running' WHERE id=:id", {"id": handle.exec_id})
replayed = KitaruClient().executions.resume(handle.exec_id).wait()
# The same in an async flow with an async checkpoint, against plain awaited calls.
b.atimed_steps.run(50)
aplain = asyncio.run(b.aplain_steps(n))
arecorded = b.atimed_steps.run(n).wait()
print(json.dumps({"record": (recorded - plain) / n, "replay": (replayed - plain) / n,
                  "record_async": (arecorded - aplain) / n}))
"""


def record_and_replay(rounds: int, n: int) -> dict[str, float]:
    results: dict[str, list[float]] = {
        "record_normal": [],
        "record_full": [],
        "replay": [],
        "record_async": [],
    }
    for durability in ("normal", "full"):
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as home:
                out = subprocess.run(
                    [sys.executable, "-c", RECORD_AND_REPLAY, str(n)],
                    env=env_with(home, KITARU_DURABILITY=durability),
                    check=True,
                    capture_output=True,
                    text=True,
                )
            figures = json.loads(out.stdout)
            results[f"record_{durability}"].append(figures["record"])
            if durability == "normal":
                results["replay"].append(figures["replay"])
                results["record_async"].append(figures["record_async"])
    return {name: median_ms(values) for name, values in results.items()}


def crashed_resume(rounds: int, n: int) -> float:
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as home:
            crash = subprocess.run(
                [sys.executable, "-c", f"import bench_flows as b; b.crash_after.run({n})"],
                env=env_with(home, KITARU_BENCH_CRASH="1"),
                check=False,
            )
            assert crash.returncode == -9, crash
            exec_id = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from kitaru import KitaruClient; print(KitaruClient().executions.latest().exec_id)",
                ],
                env=env_with(home),
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            resume = (
                "import sys; from kitaru import KitaruClient; "
                "r = KitaruClient().executions.resume(sys.argv[1]).wait(); "
                f"assert r == {sum(range(n))}, r"
            )
            times.append(wall([sys.executable, "-c", resume, exec_id], env_with(home)))
    return median_ms(times)


LLM_FLOW = (
    "import sys, bench_flows as b; b.llm_steps.run('x').wait(); print('litellm' in sys.modules)"
)
# What a user's program does first; `import kitaru` alone defers names until used.
IMPORT = "from kitaru import flow, checkpoint, KitaruClient"


def process_times(rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = env_with(home)
        three = [sys.executable, "-c", "import bench_flows as b; b.three_steps.run('x').wait()"]
        wall(three, env)  # the first run creates the database
        bare = [wall([sys.executable, "-c", "pass"], env) for _ in range(rounds)]
        imports = [wall([sys.executable, "-c", IMPORT], env) for _ in range(rounds)]
        threes = [wall(three, env) for _ in range(rounds)]
        mocked = env_with(home, KITARU_LLM_MOCK_RESPONSE="a mocked answer")
        llm_flow = [sys.executable, "-c", LLM_FLOW]
        llms = [wall(llm_flow, mocked) for _ in range(rounds)]
        litellm_loaded = subprocess.run(
            llm_flow, env=mocked, check=True, capture_output=True, text=True
        ).stdout.strip()
        kitaru_bin = str(Path(sys.executable).with_name("kitaru"))
        helps = [wall([kitaru_bin, "--help"], env) for _ in range(rounds)]
    return {
        "interpreter": median_ms(bare),
        "import": median_ms(imports) - median_ms(bare),
        "three_step_process": median_ms(threes),
        "cli_help": median_ms(helps),
        "mocked_llm_process": median_ms(llms),
        "litellm_imported": 1.0 if litellm_loaded == "True" else 0.0,
    }


PLUGINS = ("kitaru_aws", "kitaru_gcp", "kitaru_azure", "kitaru_kubernetes")


def plugin_imports(rounds: int) -> dict[str, float]:
    """``import kitaru_X`` over a bare interpreter, for each plugin installed (a plugin
    declares flavors; its SDK loads on first use, so this must stay small)."""
    import importlib.util

    figures = {}
    with tempfile.TemporaryDirectory() as home:
        env = env_with(home)
        bare = median_ms([wall([sys.executable, "-c", "pass"], env) for _ in range(rounds)])
        for module in PLUGINS:
            if importlib.util.find_spec(module) is None:
                continue
            code = [sys.executable, "-c", f"import {module}"]
            figures[module] = median_ms([wall(code, env) for _ in range(rounds)]) - bare
    return figures


PEAK_MEMORY = """
import resource, sys
import bench_flows as b
from kitaru import KitaruClient
from kitaru_core.store.metadata_store import get_store
n = int(sys.argv[1])
handle = b.timed_steps.run(n)
get_store().db.execute("UPDATE executions SET status='running' WHERE id=:id", {"id": handle.exec_id})
KitaruClient().executions.resume(handle.exec_id).wait()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory_mib(n: int) -> float:
    """Peak RSS of a process that records then replays ``n`` checkpoints."""
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, str(n)],
            env=env_with(home),
            check=True,
            capture_output=True,
            text=True,
        )
    return int(out.stdout) / 1024


LABELS = {
    "record_normal": "recording overhead per checkpoint (default durability)",
    "record_full": "recording overhead per checkpoint (KITARU_DURABILITY=full)",
    "record_async": "the same for an async checkpoint in an async flow (target 1.5x sync)",
    "replay": "replaying a recorded checkpoint",
    "resume_200": "crashed 200-checkpoint execution, new process launch to result",
    "import": "from kitaru import flow, checkpoint, KitaruClient (over a bare interpreter)",
    "three_step_process": "whole process running a three-checkpoint flow",
    "cli_help": "kitaru --help",
    "mocked_llm_process": "whole process running a flow of three mocked llm() calls",
    "interpreter": "bare interpreter start (for reference)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--peers", action="store_true", help="also measure DBOS and LangGraph")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("KITARU_BENCH_DATABASE_URL"),
        help="a PostgreSQL URL: memory contention is measured there beside SQLite",
    )
    args = parser.parse_args()

    print(f"Kitaru benchmarks: medians of {args.rounds} runs; {os.cpu_count()} cores", flush=True)
    figures: dict[str, float] = {}
    figures.update(record_and_replay(args.rounds, args.checkpoints))
    figures["resume_200"] = crashed_resume(args.rounds, 200)
    figures.update(process_times(max(args.rounds, 11)))
    memory = {n: peak_memory_mib(n) for n in (1_000, 20_000)}
    plugins = plugin_imports(max(args.rounds, 11))
    import memory_contention

    contention = memory_contention.measure(args.database_url)
    peers: dict[str, dict[str, float]] = {}
    if args.peers:
        import peers as peer_benchmarks

        peers = peer_benchmarks.measure(args.rounds, args.checkpoints)
    if args.json:
        print(
            json.dumps(
                {"kitaru": figures, "peak_rss_mib": memory, "contention": contention, **peers},
                indent=2,
            )
        )
        return
    header = f"{'figure':<66} {'kitaru':>10} {'target':>9}"
    for name in peers:
        header += f" {name:>16}"
    print(header)
    for key, label in LABELS.items():
        unit_ms = figures[key]
        target = TARGETS_MS.get(key)
        line = f"{label:<66} {fmt(unit_ms):>10} {fmt(target) if target else '':>9}"
        for values in peers.values():
            peer = values.get(key)
            line += f" {fmt(peer) + f' ({peer / unit_ms:.1f}x)' if peer else '-':>16}"
        print(line)
    print(
        "the mocked-LLM process imported litellm: "
        + ("yes (a regression)" if figures["litellm_imported"] else "no")
    )
    if plugins:
        print(
            "importing a plugin (over a bare interpreter; target 20 ms): "
            + ", ".join(f"{name} {ms:.0f} ms" for name, ms in plugins.items())
        )
    print(
        "peak memory of a process recording then replaying N checkpoints: "
        + ", ".join(f"N={n:,}: {mib:.0f} MiB" for n, mib in memory.items())
    )
    memory_contention.report(contention)


def fmt(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:.0f} ms"


if __name__ == "__main__":
    main()
