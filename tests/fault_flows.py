"""A flow whose checkpoints leave a mark each time their body runs: a fault test counts
the marks to show that no step ran twice."""

from __future__ import annotations

import time

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def marked_step(marks: str, label: str) -> str:
    with open(marks, "a") as f:
        f.write(label + "\n")
    time.sleep(0.05)
    return label


@flow
def marked(marks: str, name: str, steps: int = 4) -> list[str]:
    return [marked_step(marks, f"{name}:{i}") for i in range(steps)]


@checkpoint
def shout(text: str) -> str:
    return text.upper()


@flow
def echoes(text: str) -> str:
    return shout(text)


@flow
def fails(text: str) -> str:
    shout(text)
    raise ValueError(f"no {text}")


@flow
def asks(text: str) -> str:
    answer = kitaru.wait(schema=str, name="answer", question=text)
    return str(answer)
