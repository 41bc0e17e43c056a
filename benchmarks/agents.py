"""What an agent adapter adds to each model request: an agent run of one model request
through ``KitaruAgent`` (PydanticAI) and ``KitaruRunner`` (OpenAI Agents SDK) in a flow,
against the same run of the plain agent, offline (PydanticAI's ``FunctionModel``, the
SDK's ``ScriptedModel``), on the local stack (SQLite). With ``dbos`` installed, PydanticAI's
own ``DBOSAgent`` on SQLite is measured the same way beside them.

Plain and durable runs alternate in one process, a batch of each at a time, so the
machine's drift between hours falls on both alike.

    python benchmarks/agents.py [--requests N] [--rounds N]

Run by ``nox -s bench``. Target: at most 0.3 ms added per model request.
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

KITARU = """
import asyncio, json, sys, time
from agents import Agent as SdkAgent, Runner, set_tracing_disabled
from agents.testing import ScriptedModel
from agents.testing.model import ModelStep, assistant_message
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel
from kitaru import flow
from kitaru.adapters.openai_agents import KitaruRunner
from kitaru.adapters.pydantic_ai import KitaruAgent, KitaruDurability

set_tracing_disabled(True)
n, batches = int(sys.argv[1]), int(sys.argv[2])
agent = Agent(FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("ok")])), name="bench")
durable = KitaruAgent(agent)
model = FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("ok")]))
built_in = Agent(model, name="bench", capabilities=[KitaruDurability()])
answer = ModelStep.respond(lambda call: [assistant_message("ok")])
sdk_agent = SdkAgent(name="bench", model=ScriptedModel([answer] * (4 * n * batches + 8)))

async def timed(run) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await run()
    return (time.perf_counter() - started) / n

@flow
async def measure() -> dict:
    pairs = {
        "pydantic_ai": (lambda: agent.run("q"), lambda: durable.run("q")),
        "pydantic_ai_capability": (lambda: agent.run("q"), lambda: built_in.run("q")),
        "openai_agents": (lambda: Runner.run(sdk_agent, "q"), lambda: KitaruRunner.run(sdk_agent, "q")),
    }
    out = {}
    for name, (plain, wrapped) in pairs.items():
        await plain(); await wrapped()
        p, w = [], []
        for _ in range(batches):
            p.append(await timed(plain)); w.append(await timed(wrapped))
        out[name] = {"plain": statistics.median(p), "wrapped": statistics.median(w)}
    return out

import statistics
print(json.dumps(measure.run().wait()))
"""

DBOS = """
import asyncio, json, os, statistics, sys, time
from dbos import DBOS, DBOSConfig
from pydantic_ai import Agent
from pydantic_ai.durable_exec.dbos import DBOSAgent
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel

n, batches = int(sys.argv[1]), int(sys.argv[2])
DBOS(config=DBOSConfig(name="bench", system_database_url="sqlite:///" + sys.argv[3]))
agent = Agent(FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("ok")])), name="bench")
durable = DBOSAgent(agent)

@DBOS.workflow()
async def measure() -> dict:
    async def timed(run):
        started = time.perf_counter()
        for _ in range(n):
            await run()
        return (time.perf_counter() - started) / n
    await agent.run("q"); await durable.run("q")
    p, w = [], []
    for _ in range(batches):
        p.append(await timed(lambda: agent.run("q"))); w.append(await timed(lambda: durable.run("q")))
    return {"plain": statistics.median(p), "wrapped": statistics.median(w)}

DBOS.launch()
print(json.dumps(asyncio.run(measure())))
DBOS.destroy()
"""


def _measured_env(home: str) -> dict[str, str]:
    # Without this folder on the path: this file's name would hide the SDK's ``agents``.
    env = env_with(home)
    env.pop("PYTHONPATH")
    return env


def _rounds(script: str, args: argparse.Namespace, extra: list[str]) -> list[dict]:
    results = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as home:
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    script,
                    str(args.requests),
                    str(args.batches),
                    *extra,
                    *([str(Path(home) / "dbos.sqlite")] if script is DBOS else []),
                ],
                env=_measured_env(home),
                capture_output=True,
                text=True,
            )
        if out.returncode != 0:
            raise SystemExit(f"the measured process failed:\n{out.stderr}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def _row(label: str, figures: list[dict]) -> tuple[float, float]:
    plain = statistics.median(f["plain"] for f in figures) * 1000
    added = statistics.median(f["wrapped"] - f["plain"] for f in figures) * 1000
    print(f"  {label:<46} plain {plain:6.2f} ms   added per request {added:5.2f} ms")
    return plain, added


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100, help="runs per batch")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="processes")
    args, _ = parser.parse_known_args()
    print(f"Agent adapters, one model request per run (medians of {args.rounds} processes)")
    kitaru = _rounds(KITARU, args, [])
    _row("PydanticAI: KitaruAgent(agent)", [k["pydantic_ai"] for k in kitaru])
    _, pydantic_added = _row(
        "PydanticAI: capabilities=[KitaruDurability()]",
        [k["pydantic_ai_capability"] for k in kitaru],
    )
    _row("OpenAI Agents SDK: KitaruRunner", [k["openai_agents"] for k in kitaru])
    try:
        import dbos  # noqa: F401
    except ImportError:
        print("  PydanticAI: DBOSAgent: skipped (pip install dbos, or nox -s bench -- --peers)")
        return
    _, dbos_added = _row("PydanticAI: DBOSAgent (SQLite)", _rounds(DBOS, args, []))
    if pydantic_added > 0:
        print(f"  DBOSAgent adds {dbos_added / pydantic_added:.0f}x what KitaruDurability adds")
    print("  target: at most 0.3 ms added per request")


if __name__ == "__main__":
    main()
