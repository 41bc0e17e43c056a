"""``python -m kitaru_core.runtime.runner EXEC_ID``: run one execution by id.

What orchestrators start: the local one after input is given, the Kubernetes one in a
Job. The flow is imported from the reference recorded when the execution started.
"""

from __future__ import annotations

import sys

from kitaru_core.errors import KitaruError, KitaruStateError
from kitaru_core.runtime.engine import run_execution
from kitaru_core.store.records import Status


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m kitaru_core.runtime.runner EXEC_ID", file=sys.stderr)
        return 2
    try:
        record = run_execution(argv[0], mode="resume", unattended=True)
    except KitaruStateError as exc:  # someone else runs it, or it already ended: fine
        print(f"runner: nothing to do: {exc}", file=sys.stderr)
        return 0
    except KitaruError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 1
    print(f"runner: execution {record.id} is {record.status}", file=sys.stderr)
    return 0 if record.status != Status.FAILED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
