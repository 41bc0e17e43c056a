"""Comparing two executions checkpoint by checkpoint: ``kitaru.diff(a, b)``.

Entries are aligned by journal position and name. Outputs are compared by content hash,
so "same" means byte for byte; a changed output is shown as a unified diff of its text
(strings as they are, everything else as indented JSON).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from kitaru_core.stack_registry import get_stack
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import ArtifactRecord, ExecutionRecord, JournalEntry


@dataclass
class CheckpointDiff:
    position: int
    name: str
    status: str
    """``same``, ``changed``, ``only_a`` or ``only_b``."""
    duration_a: float | None = None
    duration_b: float | None = None
    diff: str = ""
    """A unified diff of the two outputs when they changed."""
    tokens_a: int | None = None
    """Input plus output tokens of the LLM calls made in this checkpoint, per side."""
    tokens_b: int | None = None
    llm_latency_a: float | None = None
    llm_latency_b: float | None = None

    @property
    def token_change(self) -> int | None:
        if self.tokens_a is None or self.tokens_b is None:
            return None
        return self.tokens_b - self.tokens_a

    @property
    def duration_change(self) -> float | None:
        if self.duration_a is None or self.duration_b is None:
            return None
        return self.duration_b - self.duration_a


@dataclass
class ExecutionDiff:
    exec_a: str
    exec_b: str
    checkpoints: list[CheckpointDiff] = field(default_factory=list)
    result: CheckpointDiff | None = None
    code_versions: tuple[str | None, str | None] = (None, None)
    """The code each ran (``runtime/code_version.py``)."""

    @property
    def code_changed(self) -> bool:
        """Whether the two ran different code (both versions known and unequal)."""
        a, b = self.code_versions
        return a is not None and b is not None and a != b

    def by_name(self) -> dict[str, str]:
        """Each checkpoint's status by name (the last one wins for repeated names)."""
        return {c.name: c.status for c in self.checkpoints}

    def to_dict(self) -> dict[str, Any]:
        return {
            "exec_a": self.exec_a,
            "exec_b": self.exec_b,
            "checkpoints": [
                dict(c.__dict__, duration_change=c.duration_change, token_change=c.token_change)
                for c in self.checkpoints
            ],
            "result": dict(self.result.__dict__) if self.result else None,
            "code_versions": list(self.code_versions),
            "code_changed": self.code_changed,
        }

    def __str__(self) -> str:
        lines = [f"diff {self.exec_a} {self.exec_b}"]
        if self.code_changed:
            lines.append(f"code changed: {self.code_versions[0]} -> {self.code_versions[1]}")
        for c in [*self.checkpoints, *([self.result] if self.result else [])]:
            change = f" ({c.duration_change * 1000:+.1f} ms)" if c.duration_change else ""
            if c.token_change:
                change += f" ({c.token_change:+d} tokens)"
            lines.append(f"{c.position:>4} {c.name:<30} {c.status}{change}")
            if c.diff:
                lines.extend("       " + line for line in c.diff.splitlines())
        return "\n".join(lines)


def render(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.splitlines() or [""]
    try:
        text = json.dumps(value, indent=2, sort_keys=True, default=_jsonable)
    except (TypeError, ValueError):
        text = repr(value)
    return text.splitlines()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        return dict(value.__dict__)
    return repr(value)


class _Side:
    def __init__(self, store: MetadataStore, record: ExecutionRecord) -> None:
        self.store = store
        self.record = record
        self.artifacts = get_stack(record.stack).artifacts
        self.journal = store.load_journal(record.id)
        self.llm: dict[int, tuple[int, float]] = {}
        for call in store.llm_calls(record.id):
            if call.position is not None:
                tokens, latency = self.llm.get(call.position, (0, 0.0))
                used = (call.input_tokens or 0) + (call.output_tokens or 0)
                self.llm[call.position] = (tokens + used, latency + call.latency)

    def compared_output(self, entry: JournalEntry) -> str | None:
        """The artifact a step is compared by: its output; for a child flow, the
        child's result (so two runs' children line up by what they returned)."""
        if entry.kind != "flow" or entry.output_artifact_id is None:
            return entry.output_artifact_id
        _, child_id = self.output(entry.output_artifact_id)
        child = self.store.get_execution(str(child_id))
        return child.result_artifact_id if child is not None else None

    def output(self, artifact_id: str | None) -> tuple[ArtifactRecord | None, Any]:
        artifact = self.store.get_artifact(artifact_id or "")
        return artifact, (self.artifacts.read(artifact) if artifact else None)


def _compare(
    position: int, name: str, a: _Side, a_id: str | None, b: _Side, b_id: str | None
) -> CheckpointDiff:
    a_record, a_value = a.output(a_id)
    b_record, b_value = b.output(b_id)
    same = a_record is not None and b_record is not None and a_record.key == b_record.key
    diff = ""
    if not same:
        diff = "\n".join(
            difflib.unified_diff(
                render(a_value),
                render(b_value),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
                lineterm="",
            )
        )
    return CheckpointDiff(position, name, "same" if same else "changed", diff=diff)


def _duration(entry: JournalEntry) -> float:
    return entry.ended_at - entry.started_at


def diff(exec_a: str, exec_b: str) -> ExecutionDiff:
    """Compare two executions checkpoint by checkpoint (and their results)."""
    store = get_store()
    a = _Side(store, store.require_execution(exec_a))
    b = _Side(store, store.require_execution(exec_b))
    result = ExecutionDiff(
        a.record.id, b.record.id, code_versions=(a.record.code_version, b.record.code_version)
    )
    for position in sorted(set(a.journal) | set(b.journal)):
        ea, eb = a.journal.get(position), b.journal.get(position)
        if ea is not None and eb is not None and ea.name == eb.name:
            row = _compare(position, ea.name, a, a.compared_output(ea), b, b.compared_output(eb))
            row.duration_a, row.duration_b = _duration(ea), _duration(eb)
            if position in a.llm or position in b.llm:
                row.tokens_a, row.llm_latency_a = a.llm.get(position, (None, None))
                row.tokens_b, row.llm_latency_b = b.llm.get(position, (None, None))
            result.checkpoints.append(row)
            continue
        if ea is not None:
            result.checkpoints.append(
                CheckpointDiff(position, ea.name, "only_a", duration_a=_duration(ea))
            )
        if eb is not None:
            result.checkpoints.append(
                CheckpointDiff(position, eb.name, "only_b", duration_b=_duration(eb))
            )
    a_result, b_result = a.record.result_artifact_id, b.record.result_artifact_id
    if a_result and b_result:
        result.result = _compare(-1, "result", a, a_result, b, b_result)
    elif a_result or b_result:
        result.result = CheckpointDiff(-1, "result", "only_a" if a_result else "only_b")
    return result
