"""A flow the hardening tests record but no server serves: its checkpoint leaves a mark
in ``$KITARU_TEST_EFFECTS`` each time it runs."""

from __future__ import annotations

import os

from kitaru import checkpoint, flow


@checkpoint
def mark(n: int) -> int:
    path = os.environ.get("KITARU_TEST_EFFECTS")
    if path:
        with open(path, "a") as f:
            f.write(f"ran {n}\n")
    return n


@flow
def unserved(n: int) -> int:
    return mark(n)
