"""The orchestrator: decides where and when an execution's flow body runs."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Orchestrator(ABC):
    flavor: str = ""

    runs_in_worker: bool = False
    """True when executions run on this machine: ``kitaru worker`` then runs what it
    claims in its own threads instead of handing each to the orchestrator."""

    @abstractmethod
    def start(self, exec_id: str, *, background: bool = False) -> None:
        """Run a newly created execution. ``background``: return at once, the run goes
        on elsewhere (``flow.start()``, the worker); else return when it has ended or
        stopped to wait, where the flavor can."""

    @abstractmethod
    def resume(self, exec_id: str, *, retry: bool = False, background: bool = False) -> None:
        """Run an existing execution again from the top, answering from its journal.

        ``background``: return once the run is scheduled (after input was given); else
        return when it has ended or stopped to wait, where the flavor can.
        """

    @abstractmethod
    def cancel(self, exec_id: str) -> None:
        """Stop an execution; it ends ``cancelled`` at its next checkpoint boundary."""

    def starting(self, exec_id: str) -> bool:
        """True while a run this orchestrator was handed is still being started where it
        runs (a pod being scheduled, its image pulled): no process holds the execution
        yet, and the worker leaves it be rather than start it a second time. How long
        is the orchestrator's to bound (``diagnose`` then says why it never started)."""
        return False

    def diagnose(self, exec_id: str) -> str | None:
        """Why a run this orchestrator started is not running, when it can tell (a pod
        that could not pull its image, was OOM-killed or evicted): the worker then
        fails the execution with this reason instead of starting it again."""
        return None

    def interruption(self, exec_id: str) -> str | None:
        """Why a run this orchestrator started was stopped from outside in a way a new
        run survives (an evicted or preempted pod, a lost node), when it can tell: the
        worker recovers the execution and logs this as the cause."""
        return None

    def reconcile(self) -> list[str]:
        """Put right what it runs that the store says should not run (a Job left from
        an execution cancelled while the cluster could not be reached); what it did, in
        words for the worker's log. The worker asks about every ``RECONCILE_SECONDS``."""
        return []

    def logs(self, exec_id: str, tail: int | None = None) -> str | None:
        """What the execution's runs printed where they ran (pod logs), if kept there;
        with ``tail``, only the last ``tail`` lines of each run. Bound what one call
        reads (a pod's log can be gigabytes): say where the rest is when cut."""
        return None

    def check(self) -> None:
        """Raise ``KitaruStackError`` or ``KitaruBackendError`` naming what is wrong
        with where executions would run (``kitaru stack validate``); the local
        orchestrator has nothing to check."""
        return None
