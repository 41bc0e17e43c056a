"""The orchestrator: decides where and when an execution's flow body runs."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Orchestrator(ABC):
    flavor: str = ""

    @abstractmethod
    def start(self, exec_id: str) -> None:
        """Run a newly created execution (the caller holds its lease when in process)."""

    @abstractmethod
    def resume(self, exec_id: str, *, retry: bool = False) -> None:
        """Run an existing execution again from the top, answering from its journal."""

    @abstractmethod
    def cancel(self, exec_id: str) -> None:
        """Stop an execution; it ends ``cancelled`` at its next checkpoint boundary."""
