"""Kitaru in one minute: a flow that crashes halfway and is resumed without redoing work.

    python examples/crash_demo.py

1. runs ``write_article`` in a child process that is killed (SIGKILL) in its second
   checkpoint, as a crash or an out-of-memory kill would;
2. shows the execution as the journal left it;
3. resumes it with ``kitaru executions resume`` in a new process: ``research`` answers
   from the journal (its body does not run again), ``draft`` and ``publish`` run.

The demo keeps its data in a temporary KITARU_HOME (removed when it ends) unless you set
one, and answers its LLM call with KITARU_LLM_MOCK_RESPONSE unless you set that (and a
`fast` model alias).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def research(topic: str) -> list[str]:
    print(f"  [research] asking the model about {topic!r} (slow and costly)", flush=True)
    time.sleep(0.5)
    answer = kitaru.llm(f"Two facts about {topic}, one per line.", model="fast")
    return [line.strip() for line in answer.splitlines() if line.strip()]


@checkpoint(retries=1)
def draft(notes: list[str]) -> str:
    print("  [draft] writing", flush=True)
    if os.environ.get("DEMO_CRASH") == "1":
        print("  [draft] *** the process is killed here ***", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return "Durable agents. " + " ".join(f"They say: {n}." for n in notes)


@checkpoint
def publish(text: str) -> dict[str, object]:
    print("  [publish] publishing", flush=True)
    return {"words": len(text.split()), "text": text}


@flow
def write_article(topic: str) -> dict[str, object]:
    return publish(draft(research(topic)))


def run_cli(*args: str) -> None:
    print(f"$ kitaru {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "kitaru", *args], check=False)


def main() -> None:
    if os.environ.get("KITARU_HOME"):
        show()
        return
    with tempfile.TemporaryDirectory(prefix="kitaru-demo-") as home:  # removed at the end
        os.environ["KITARU_HOME"] = home
        show()


def show() -> None:
    os.environ.setdefault("COLUMNS", "100")
    os.environ.setdefault(
        "KITARU_LLM_MOCK_RESPONSE", "Kitaru survives crashes\nKitaru never pays twice for a step"
    )
    print(f"KITARU_HOME={os.environ['KITARU_HOME']}\n")

    print("1. start the flow in a process that will be killed mid-flow", flush=True)
    child = subprocess.run(
        [sys.executable, "-c", "import crash_demo; crash_demo.write_article.run('kitaru')"],
        env={**os.environ, "DEMO_CRASH": "1", "PYTHONPATH": os.path.dirname(__file__)},
        check=False,
    )
    print(f"  child process ended with signal {-child.returncode}\n")

    from kitaru import KitaruClient

    execution = KitaruClient().executions.latest()
    assert execution is not None
    print("2. the journal after the crash", flush=True)
    run_cli("executions", "get", execution.exec_id)

    print("\n3. resume in a new process: research is answered from the journal", flush=True)
    run_cli("executions", "resume", execution.exec_id)
    print()
    run_cli("executions", "get", execution.exec_id)


if __name__ == "__main__":
    main()
