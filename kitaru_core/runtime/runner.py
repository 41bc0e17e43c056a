"""``python -m kitaru_core.runtime.runner EXEC_ID``: run one execution by id.

What orchestrators start: the local one after input is given, the Kubernetes one in a
Job. The flow is imported from the reference recorded when the execution started.
"""

from __future__ import annotations

import os
import signal
import sys

from kitaru_core.errors import KitaruError, KitaruStateError
from kitaru_core.runtime import printed
from kitaru_core.runtime.context import STOP_REQUESTED
from kitaru_core.runtime.engine import run_execution
from kitaru_core.runtime.output import SHIP_OUTPUT_VARIABLE, shipped_output
from kitaru_core.store.metadata_store import get_store
from kitaru_core.store.records import Status

STOPPED_EXIT = 128 + signal.SIGTERM
"""The exit status of a runner that stopped on SIGTERM, as if the signal had ended it."""


def _stop_at_next_step(signum: int, frame: object) -> None:
    # A container's first process gets no default action for SIGTERM: without this, a
    # deleted, evicted or drained pod would run on until its grace period ends and it
    # is killed mid-step. With it, the step running ends and is recorded, the next
    # does not start, and the lease is let go for a worker to recover the execution.
    print("runner: asked to stop; stopping at the next step", file=sys.stderr, flush=True)
    STOP_REQUESTED.set()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m kitaru_core.runtime.runner EXEC_ID", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_at_next_step)
    # This process's whole output is kept: shipped from its descriptors, or written to
    # the log file by the local orchestrator. Not once more per print.
    printed.kept_elsewhere = True
    exec_id = argv[0]
    try:
        store = get_store()
        found = store.get_execution(exec_id)
    except KitaruError as exc:  # the store could not be opened
        print(f"runner: {exc}", file=sys.stderr)
        return 1
    if found is None:
        print(f"runner: no execution {exec_id} in the metadata store", file=sys.stderr)
        return 1
    if os.environ.get(SHIP_OUTPUT_VARIABLE, "1") == "0":
        return _run(exec_id)
    with shipped_output(store, exec_id, found.runs + 1):
        return _run(exec_id)


def _run(exec_id: str) -> int:
    """Run it; its exit status (what it printed meanwhile goes to the store too)."""
    try:
        record = run_execution(exec_id, mode="resume", unattended=True)
    except KitaruStateError as exc:  # someone else runs it, or it already ended: fine
        print(f"runner: nothing to do: {exc}", file=sys.stderr)
        return 0
    except KitaruError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 1
    if STOP_REQUESTED.is_set() and record.status == Status.RUNNING:
        print(f"runner: execution {record.id} left for recovery", file=sys.stderr)
        return STOPPED_EXIT
    print(f"runner: execution {record.id} is {record.status}", file=sys.stderr)
    return 0 if record.status != Status.FAILED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
