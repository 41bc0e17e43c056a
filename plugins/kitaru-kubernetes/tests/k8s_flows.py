"""Flows the pods run (importable there: the tests put this folder on PYTHONPATH)."""

from __future__ import annotations

import os
import time

import kitaru
from kitaru import checkpoint, flow


def _count(i: int) -> None:
    path = os.environ.get("REVIEW_FLOW_COUNTER")
    if path:
        with open(path, "a") as f:
            f.write(f"step{i}\n")


@checkpoint
def step(i: int) -> int:
    _count(i)
    return i * i


@checkpoint
def slow_step(i: int) -> int:
    """A step that takes long enough to be interrupted in the middle."""
    _count(i)
    time.sleep(1.5)
    return i * i


@flow
def paced(x: int) -> int:
    return step(0) + slow_step(1) + step(2) + x


@flow
def three(x: int) -> int:
    print(f"three: adding {x}")
    return step(0) + step(1) + step(2) + x


@flow(
    settings={
        "kubernetes": {
            "node_selector": {"gpu": "a100"},
            "resources": {"limits": {"nvidia.com/gpu": 1}},
        }
    }
)
def on_gpu() -> int:
    return step(7)


@flow
def approval() -> bool:
    return bool(kitaru.wait(schema=bool, name="ok"))


@flow
def nap() -> str:
    step(0)
    kitaru.sleep(3600)
    return "rested"


@flow(
    settings={
        "kubernetes": {
            # A root container: a namespace enforcing `restricted` refuses its pod.
            "pod_template": {"securityContext": {"runAsNonRoot": False, "runAsUser": 0}}
        }
    }
)
def as_root() -> int:
    return step(0)


@flow(settings={"kubernetes": {"resources": {"limits": {"nvidia.com/gpu": 8}}}})
def on_eight_gpus() -> int:
    return step(0)
