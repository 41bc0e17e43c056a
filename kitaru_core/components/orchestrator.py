"""The orchestrator: decides where and when an execution's flow body runs."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Orchestrator(ABC):
    flavor: str = ""

    @abstractmethod
    def start(self, exec_id: str) -> None:
        """Run a newly created execution (the caller holds its lease when in process)."""

    @abstractmethod
    def resume(self, exec_id: str, *, retry: bool = False, background: bool = False) -> None:
        """Run an existing execution again from the top, answering from its journal.

        ``background``: return once the run is scheduled (after input was given); else
        return when it has ended or stopped to wait, where the flavor can.
        """

    @abstractmethod
    def cancel(self, exec_id: str) -> None:
        """Stop an execution; it ends ``cancelled`` at its next checkpoint boundary."""
