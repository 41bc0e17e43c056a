"""The ``local`` orchestrator: runs executions in the calling process (``run``), or in a
detached process on this machine (``start``, resumes after input); ``kitaru worker``
runs what it claims in its own threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from kitaru_core.components.orchestrator import Orchestrator
from kitaru_core.private_files import open_private_append
from kitaru_core.runtime.engine import run_execution
from kitaru_core.runtime.logs import log_path
from kitaru_core.runtime.output import SHIP_OUTPUT_VARIABLE
from kitaru_core.store.metadata_store import get_store


class LocalOrchestrator(Orchestrator):
    flavor = "local"
    runs_in_worker = True

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def start(self, exec_id: str, *, background: bool = False) -> None:
        if background:
            self._spawn_runner(exec_id)
            return
        run_execution(exec_id, mode="start", interactive=True)

    def resume(self, exec_id: str, *, retry: bool = False, background: bool = False) -> None:
        if background:
            self._spawn_runner(exec_id)
            return
        run_execution(exec_id, mode="retry" if retry else "resume", interactive=True)

    def cancel(self, exec_id: str) -> None:
        # The runner's heartbeat sees the status and stops at its next checkpoint.
        get_store().cancel(exec_id)

    @staticmethod
    def _spawn_runner(exec_id: str) -> None:
        """A process of its own session, so it outlives the caller (a CLI, a notebook);
        its output goes to the execution's log, where `kitaru executions logs` reads it."""
        with open_private_append(log_path(exec_id)) as log:
            runner = subprocess.Popen(
                [sys.executable, "-m", "kitaru_core.runtime.runner", exec_id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=os.getcwd(),
                # Its output is in the log on this machine already: not in the store too.
                env={**os.environ, SHIP_OUTPUT_VARIABLE: "0"},
                close_fds=True,
            )
        # Reap it when it exits, so a long-lived caller (a notebook, a server) keeps
        # no zombie whose pid would look alive to the lease check.
        threading.Thread(target=runner.wait, name=f"kitaru-reap-{exec_id[:8]}", daemon=True).start()
