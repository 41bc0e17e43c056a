"""One journaled step: what every kind of step goes through.

Checkpoints, LLM calls, waits and memory operations are all steps. A step is
addressed when it is *called*: its path in the flow body's tree of tasks
(``scopes.py``), so steps submitted to threads, later awaited ones and steps of
concurrent tasks line up on resume whatever the timing. If an earlier run completed a
step at that path, its recorded output answers (after checking the name: a different
one is divergence); otherwise the step runs, its output is written as an artifact, and
only then is the journal entry committed, so a crash in between leaves an unreferenced
blob, never an entry without its bytes. Plugins hear of each step that ran.

``ExecutionContext.step(name, kind, run)`` is the whole protocol for a step that runs
where it is called; ``ExecutionContext.open_step`` and ``Step.recorded_output`` split it
for a step that runs later (``checkpoint.submit``).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kitaru_core.events import StepEnded
from kitaru_core.store.records import ArtifactRecord, JournalEntry, LLMCallRecord

if TYPE_CHECKING:
    from kitaru_core.artifacts import Prepared
    from kitaru_core.runtime.context import ExecutionContext
    from kitaru_core.runtime.journal import Recorded


HELD = ("waiting", "sleeping")
"""Journal statuses of a step the execution reached and stopped at (a wait not yet
answered, a timer not yet due): a later run must call the same step there."""


class Step:
    """One call of a step at its journal position, handed to the code that runs it."""

    __slots__ = ("ctx", "found", "kind", "name", "path", "position", "started_at")

    def __init__(
        self,
        ctx: ExecutionContext,
        name: str,
        kind: str,
        position: int,
        path: str | None = None,
        found: Recorded | None = None,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.kind = kind
        self.position = position
        self.path = str(position) if path is None else path
        self.found = found
        """The entry an earlier run recorded at this step's path (completed, failed, or
        a timer that is sleeping), with its output's record."""
        self.started_at = time.time()

    @property
    def stored_path(self) -> str | None:
        """The path as the journal stores it: none when it is the position itself (every
        step of a flow body that creates no tasks), which keeps rows small."""
        return None if self.path == str(self.position) else self.path

    def recorded_output(self) -> ArtifactRecord | None:
        """The output an earlier run recorded here, if it completed this step."""
        return self.ctx.answer(self)

    def output(
        self,
        value: Any,
        *,
        artifact_type: str = "output",
        what: str | None = None,
        prepared: Prepared | None = None,
    ) -> ArtifactRecord:
        """Write ``value`` as this step's output artifact (not committed yet)."""
        return self.ctx.artifacts.write(
            value,
            exec_id=self.ctx.exec_id,
            name=self.name,
            role="output",
            position=self.position,
            artifact_type=artifact_type,
            what=what,
            prepared=prepared,
        )

    def entry(
        self,
        output_artifact_id: str,
        *,
        attempts: int = 1,
        metadata: dict[str, Any] | None = None,
        started_at: float | None = None,
    ) -> JournalEntry:
        """The entry recording that this step completed now with that output."""
        return JournalEntry.completed(
            self.ctx.exec_id,
            self.position,
            self.name,
            kind=self.kind,
            started_at=self.started_at if started_at is None else started_at,
            ended_at=time.time(),
            output_artifact_id=output_artifact_id,
            attempts=attempts,
            metadata=metadata,
            path=self.stored_path,
        )

    def record(
        self,
        entry: JournalEntry,
        artifacts: Iterable[ArtifactRecord] = (),
        *,
        llm_calls: Iterable[LLMCallRecord] = (),
    ) -> None:
        """Commit ``entry`` with the artifact records and LLM calls it refers to,
        replacing a failed entry an earlier run left here (whose failure the new entry
        keeps in its metadata, ``failed_before``: the journal shows every attempt)."""
        found = self.found[0] if self.found is not None else None
        if found is not None and found.status == "failed":
            earlier = {
                "started_at": found.started_at,
                "ended_at": found.ended_at,
                "attempts": found.attempts,
                "error": found.error,
            }
            failed_before = [*found.metadata.get("failed_before", ()), earlier]
            entry.metadata = {**entry.metadata, "failed_before": failed_before}
        self.ctx.store.record_entry(
            entry,
            list(artifacts),
            replace=self.found is not None,
            llm_calls=list(llm_calls),
            owner=self.ctx.owner,
        )

    def ended(self, entry: JournalEntry) -> None:
        """Tell plugins the step ran (``completed`` or ``failed``)."""
        if not self.ctx.observers.observes_steps:
            return
        self.ctx.observers.step_ended(
            StepEnded(
                exec_id=self.ctx.exec_id,
                name=self.name,
                kind=self.kind,
                position=self.position,
                status=entry.status,
                duration=entry.ended_at - entry.started_at,
            )
        )

    def complete(
        self,
        value: Any,
        *,
        artifacts: Iterable[ArtifactRecord] = (),
        attempts: int = 1,
        metadata: dict[str, Any] | None = None,
        artifact_type: str = "output",
        what: str | None = None,
        prepared: Prepared | None = None,
    ) -> Any:
        """Record ``value`` as this step's output and return it: the usual ending."""
        output = self.output(value, artifact_type=artifact_type, what=what, prepared=prepared)
        entry = self.entry(output.id, attempts=attempts, metadata=metadata)
        self.record(entry, [output, *artifacts])
        self.ended(entry)
        return value

    def held_entry(
        self,
        status: str,
        *,
        started_at: float,
        output_artifact_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> JournalEntry:
        """The entry recording that the execution stopped at this step (``HELD``)."""
        assert status in HELD
        return JournalEntry(
            exec_id=self.ctx.exec_id,
            position=self.position,
            name=self.name,
            status=status,
            started_at=started_at,
            ended_at=time.time(),
            kind=self.kind,
            output_artifact_id=output_artifact_id,
            metadata=metadata or {},
            path=self.stored_path,
        )

    def failed_entry(
        self, exc: BaseException, *, attempts: int = 1, metadata: dict[str, Any] | None = None
    ) -> JournalEntry:
        """The entry recording that this step failed: a later run runs it again."""
        return JournalEntry(
            exec_id=self.ctx.exec_id,
            position=self.position,
            name=self.name,
            status="failed",
            started_at=self.started_at,
            ended_at=time.time(),
            kind=self.kind,
            attempts=attempts,
            error=error_info(exc),
            metadata=metadata or {},
            path=self.stored_path,
        )

    def fail(
        self, exc: BaseException, *, attempts: int = 1, metadata: dict[str, Any] | None = None
    ) -> None:
        """Record that this step failed, and tell plugins."""
        entry = self.failed_entry(exc, attempts=attempts, metadata=metadata)
        self.record(entry)
        self.ended(entry)


def error_info(exc: BaseException) -> dict[str, Any]:
    """How an exception is recorded on a failed step or execution."""
    tp = type(exc)
    return {
        "type": f"{tp.__module__}.{tp.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
