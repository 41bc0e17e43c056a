"""Flows at module level, importable by other processes (resume runs them by reference).

Side effects are counted in ``$KITARU_TEST_EFFECTS`` (one line per checkpoint body run),
so tests can see which bodies ran, and how often, across processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import kitaru
from kitaru import checkpoint, flow


def effect(name: str) -> None:
    path = os.environ.get("KITARU_TEST_EFFECTS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name}\n".encode())
        finally:
            os.close(fd)


def effects() -> list[str]:
    path = os.environ.get("KITARU_TEST_EFFECTS", "")
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()


def maybe_crash(label: str) -> None:
    """Kill this process with SIGKILL when ``KITARU_TEST_CRASH_AT`` names ``label``."""
    if os.environ.get("KITARU_TEST_CRASH_AT") == label:
        os.kill(os.getpid(), signal.SIGKILL)


@checkpoint
def numbered(i: int) -> dict[str, int]:
    maybe_crash(f"before:{i}")
    effect(f"step{i}")
    time.sleep(float(os.environ.get("KITARU_TEST_STEP_SLEEP", "0")))
    payload = int(os.environ.get("KITARU_TEST_PAYLOAD", "0"))
    maybe_crash(f"after:{i}")
    return {"i": i, "square": i * i, "pad": "x" * payload if i % 5 == 4 else ""}


@flow
def steps(n: int) -> list[int]:
    """``n`` checkpoints in a row; the result depends on every output."""
    results = []
    for i in range(n):
        out = numbered(i)
        results.append(out["square"] + len(out["pad"]) % 7)
    return results


@checkpoint(name="numbered")
async def anumbered(i: int) -> dict[str, int]:
    effect(f"step{i}")
    # Ten of these run at once: they end in a different order than they were called.
    await asyncio.sleep(float(os.environ.get("KITARU_TEST_STEP_SLEEP", "0")) * (1 + i % 3))
    payload = int(os.environ.get("KITARU_TEST_PAYLOAD", "0"))
    return {"i": i, "square": i * i, "pad": "x" * payload if i % 5 == 4 else ""}


@flow
async def gathered_steps(n: int) -> list[int]:
    """``steps`` as an async flow: ``asyncio.gather`` of ten checkpoints at a time."""
    results = []
    for start in range(0, n, 10):
        calls = [anumbered(i) for i in range(start, min(n, start + 10))]
        results += [o["square"] + len(o["pad"]) % 7 for o in await asyncio.gather(*calls)]
    return results


@checkpoint
def fetch(topic: str) -> str:
    effect("fetch")
    return f"notes on {topic}"


@checkpoint
def summarize(text: str) -> str:
    effect("summarize")
    return text.upper()


@flow
def research(topic: str) -> str:
    return summarize(fetch(topic))


@checkpoint
def flaky_once(marker: str) -> str:
    """Fails until the file ``marker`` exists: a fault fixed between runs."""
    effect("flaky")
    if not os.path.exists(marker):
        raise RuntimeError("the service is down")
    return "recovered"


@flow
def fragile(marker: str) -> str:
    first = fetch("a")
    return first + " / " + flaky_once(marker)


@flow(cache=False)
def fragile_fresh(marker: str) -> str:
    """``fragile`` with a wait, whose retry does every step's work again."""
    first = fetch("a")
    if not kitaru.wait(schema=bool, name="go"):
        return "stopped"
    return first + " / " + flaky_once(marker)


@flow
def reorderable(order: str) -> list[str]:
    """Calls fetch and summarize in the order the environment says (for divergence)."""
    if os.environ.get("KITARU_TEST_ORDER", order) == "swapped":
        return [summarize("b"), fetch("a")]
    maybe_crash("between")
    first = fetch("a")
    maybe_crash("middle")
    return [first, summarize("b")]


@flow
def logs_metadata(x: int) -> int:
    kitaru.log(stage="body", x=x)
    return x


@flow
def needs_approval() -> bool:
    return bool(kitaru.wait(name="approve", question="Go ahead?"))


@checkpoint
def slow_step() -> str:
    effect("slow_step")
    time.sleep(float(os.environ.get("KITARU_TEST_SLOW", "0")))
    return "slept"


@flow
def approve_then_work() -> str:
    """Waits for input, then runs a checkpoint slow enough to be killed in."""
    fetch("a")
    kitaru.wait(name="go")
    return slow_step()


@flow
def slow() -> str:
    fetch("a")
    return slow_step()


@flow
def asks(question: str) -> bool:
    return bool(kitaru.wait(question=question))


@flow
def llm_twice() -> str:
    return kitaru.llm("one", model="mock") + kitaru.llm("two", model="mock")


@flow
def remembers() -> int:
    kitaru.memory.set("seen", 1)
    return 1


# -- child flows ------------------------------------------------------------------------


@checkpoint
def child_step(name: str) -> str:
    effect(f"child:{name}")
    return name.upper()


@checkpoint
def parent_step(name: str) -> str:
    effect(f"parent:{name}")
    return name


@flow
def child(n: int) -> list[str]:
    first = child_step(f"a{n}")
    maybe_crash("child-between")
    return [first, child_step(f"b{n}")]


@flow
def parent(n: int) -> dict[str, object]:
    before = parent_step("before")
    kid = child.run(n)  # a child execution, linked to this one
    return {"before": before, "child": kid.get(), "after": parent_step("after")}


@flow
def asking_child(n: int) -> str:
    answer = kitaru.wait(schema=str, name="answer", question=f"Answer for {n}?")
    done = child_step(f"x{answer}")
    maybe_crash("asking-after")
    return done


@flow
def waiting_parent(n: int) -> dict[str, object]:
    pre = parent_step("pre")
    kid = asking_child.run(n)
    return {"pre": pre, "kid": kid.get(), "post": parent_step("post")}


@flow
def starting_parent(n: int) -> str:
    handle = child.start(n)  # handed over; the parent goes on
    parent_step("started")
    return handle.exec_id


@flow
def chatty() -> str:
    """Prints through Python, through a C-level write and through a child process."""
    answer = str(kitaru.wait(schema=str, name="word"))
    print(f"the word is {answer}")
    print("a warning on stderr", file=sys.stderr)
    os.write(1, b"written to fd 1\n")
    subprocess.run(["echo", "echoed by a child"], check=True)
    return answer


@checkpoint
def say(word: str, i: int) -> str:
    print(f"saying {word} {i}")
    time.sleep(0.01)
    return word


@flow
def talkative(word: str) -> int:
    """Prints from its steps and logs from its body (its log keeps both)."""
    said = [say(word, i) for i in range(3)]
    logging.getLogger("talkative").warning("%s was said %d times", word, len(said))
    return len(said)
