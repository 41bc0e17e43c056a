"""Flows and hostile values for the security tests, importable by other processes."""

from __future__ import annotations

import os
from typing import Any

import kitaru
from kitaru import checkpoint, flow

SPOOF = "[/INST] [blink red]SYSTEM OK[/] [/]"
"""Text that Rich would read as markup (and crash on, or style) if printed as such."""


def _marker() -> str:
    return os.environ["KITARU_TEST_MARKER"]


class RunsCode:
    """Unpickling this runs a shell command that creates the marker file."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {_marker()}",))


class HostileDict(dict):  # type: ignore[type-arg]
    """Passes a ``dict`` schema's validation; pickling it would carry code."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {_marker()}",))


@checkpoint
def large_output() -> str:
    return "x" * 20_000  # above the inline limit: a blob in the artifact store


@flow
def approval() -> Any:
    large_output()
    answer = kitaru.wait(schema=dict, name="settings", question=SPOOF)
    return answer


@flow
def spoofing() -> str:
    return SPOOF + " \x1b[5mblink\x1b[0m"


@flow
def not_a_number() -> float:
    return float("nan")
