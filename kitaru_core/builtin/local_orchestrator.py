"""The ``local`` orchestrator: runs executions in the calling process."""

from __future__ import annotations

from kitaru_core.components.orchestrator import Orchestrator


class LocalOrchestrator(Orchestrator):
    flavor = "local"

    def start(self, exec_id: str) -> None:
        from kitaru_core.runtime.engine import run_execution

        run_execution(exec_id, mode="start")

    def resume(self, exec_id: str, *, retry: bool = False) -> None:
        from kitaru_core.runtime.engine import run_execution

        run_execution(exec_id, mode="retry" if retry else "resume")

    def cancel(self, exec_id: str) -> None:
        # The runner's heartbeat sees the status and stops at its next checkpoint.
        from kitaru_core.store.metadata_store import get_store

        get_store().cancel(exec_id)
