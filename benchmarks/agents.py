"""The PydanticAI adapter's cost: one model request of an agent through ``KitaruAgent``
in a flow (a checkpoint, its record, an LLM call record) against the plain agent, both
with PydanticAI's ``FunctionModel``, in the same flow and process.

    python benchmarks/agents.py [--requests N] [--rounds N]

Run by ``nox -s bench``. Target: under 1 ms per model request.
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

SCRIPT = """
import asyncio, json, sys, time
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.models.function import FunctionModel
from kitaru import flow
from kitaru.adapters.pydantic_ai import KitaruAgent

agent = Agent(FunctionModel(lambda messages, info: ModelResponse(parts=[TextPart("ok")])))
durable = KitaruAgent(agent)
n = int(sys.argv[1])

@flow
async def measure(n: int) -> dict:
    await agent.run("warm up"); await durable.run("warm up")
    started = time.perf_counter()
    for _ in range(n):
        await agent.run("question")
    plain = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(n):
        await durable.run("question")
    wrapped = time.perf_counter() - started
    return {"plain": plain / n, "wrapped": wrapped / n}

print(json.dumps(measure.run(n).wait()))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args, _ = parser.parse_known_args()
    plain, wrapped = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as home:
            out = subprocess.run(
                [sys.executable, "-c", SCRIPT, str(args.requests)],
                env=env_with(home),
                capture_output=True,
                text=True,
                check=True,
            )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        plain.append(figures["plain"])
        wrapped.append(figures["wrapped"])
    overhead = statistics.median(w - p for w, p in zip(wrapped, plain, strict=True)) * 1000
    print(f"PydanticAI adapter (FunctionModel, medians of {args.rounds})")
    print(f"  plain agent run of one model request: {statistics.median(plain) * 1000:.2f} ms")
    print(f"  the same through KitaruAgent in a flow: {statistics.median(wrapped) * 1000:.2f} ms")
    print(f"  added per model request: {overhead:.2f} ms (target < 1 ms)")


if __name__ == "__main__":
    main()
