"""The metadata store's own contract, run against the database this test run uses
(SQLite, or PostgreSQL in the PostgreSQL run) and against the HTTP store through a real
``kitaru serve`` on that same kind of database: the three stores behave alike."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kitaru_core.errors import KitaruLeaseLost, KitaruNotFoundError, KitaruStateError
from kitaru_core.store.http_store import HttpMetadataStore
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import (
    ArtifactRecord,
    ExecutionRecord,
    JournalEntry,
    LLMCallRecord,
)
from kitaru_server import Served, start_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_server(tmp_path_factory.mktemp("store-calls"))
    yield server
    server.stop()


@pytest.fixture(params=["direct", "http"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "direct":
        return get_store()
    served: Served = request.getfixturevalue("served")
    return HttpMetadataStore(served.url, served.tokens["admin"])


def _execution(store: MetadataStore, **fields: Any) -> ExecutionRecord:
    values: dict[str, Any] = {"status": "running", **fields}
    record = ExecutionRecord(
        id=uuid.uuid4().hex,
        flow_name="contract",
        flow_ref="contract_flows:contract",
        stack="local",
        created_at=time.time(),
        **values,
    )
    return store.create_execution(record, [])


def _inline(exec_id: str, data: bytes, position: int | None = 0) -> ArtifactRecord:
    return ArtifactRecord(
        id=uuid.uuid4().hex,
        exec_id=exec_id,
        name="output",
        role="output",
        key=hashlib.sha256(data).hexdigest(),
        serializer="json",
        type_ref="builtins.list",
        size=len(data),
        created_at=time.time(),
        position=position,
        inline=data,
    )


def _entry(exec_id: str, position: int, artifact: ArtifactRecord) -> JournalEntry:
    now = time.time()
    return JournalEntry.completed(
        exec_id,
        position,
        f"step{position}",
        kind="checkpoint",
        started_at=now,
        ended_at=now,
        output_artifact_id=artifact.id,
        metadata={"n": position},
    )


def test_executions_are_created_found_and_listed(store: Any) -> None:
    made = _execution(store, metadata={"team": "a"})
    found = store.get_execution(made.id)
    assert found == made and found.metadata == {"team": "a"}
    assert store.statuses([made.id, "nope"]) == {made.id: "running"}
    assert made.id in [r.id for r in store.list_executions(flow="contract", limit=500)]
    assert store.find_execution_ids(made.id[:10]) == [made.id]
    assert store.get_execution("nope") is None
    with pytest.raises(KitaruNotFoundError):
        store.require_execution("nope-" + made.id[:6])
    with pytest.raises(store.db.integrity_error):  # one id, one execution
        store.create_execution(made, [])


def test_the_lease_fences_the_journal(store: Any) -> None:
    made = _execution(store)
    assert store.claim_lease(made.id, "host:1:1:a", observed_owner=None)
    assert not store.claim_lease(made.id, "host:2:2:b", observed_owner=None)
    assert store.renew_lease(made.id, "host:1:1:a") == "running"
    data = b"[1, 2, 3]"
    artifact = _inline(made.id, data)
    store.record_entry(_entry(made.id, 0, artifact), [artifact], replace=False, owner="host:1:1:a")
    # Another process takes it over; the first one's next checkpoint is refused.
    assert store.claim_lease(made.id, "host:2:2:b", observed_owner="host:1:1:a")
    late = _inline(made.id, b"[4]", position=1)
    with pytest.raises(KitaruLeaseLost):
        store.record_entry(_entry(made.id, 1, late), [late], replace=False, owner="host:1:1:a")
    assert store.renew_lease(made.id, "host:1:1:a") is None
    journal = store.load_journal(made.id)
    assert list(journal) == [0] and journal[0].metadata == {"n": 0}
    (entry, kept), *_ = store.journal_page(made.id, 0, 10)
    assert entry.name == "step0" and kept.inline == data
    assert store.get_artifact(artifact.id).inline == data
    assert store.journal_extent(made.id)[0] == 0


def test_waits_are_created_and_answered_once(store: Any) -> None:
    made = _execution(store, status="waiting")
    wait = store.waits.create_pending(
        exec_id=made.id,
        name="approve",
        position=0,
        question="ship it?",
        schema={"type": "boolean"},
        schema_name="bool",
        metadata={"risk": "low"},
    )
    assert wait.status == "pending"
    assert [w.name for w in store.waits.pending(made.id)] == ["approve"]
    answer = _inline(made.id, b"true", position=None)
    assert store.waits.answer(made.id, "approve", answer)
    assert not store.waits.answer(made.id, "approve", answer)  # answered already
    assert store.waits.get(made.id, "approve").status == "answered"
    assert store.waits.pending(made.id) == []


def test_memory_compare_and_set(store: Any) -> None:
    key = "k" + uuid.uuid4().hex[:8]

    def write(expected_version: int | None = None) -> Any:  # each version its own artifact
        value = _inline(None, b'"one"', position=None)  # type: ignore[arg-type]
        return store.memory.write(
            scope_type="namespace",
            scope="contract",
            key=key,
            value=value,
            exec_id=None,
            stack="local",
            expected_version=expected_version,
        )

    assert write().version == 1
    with pytest.raises(KitaruStateError, match="someone else wrote it first"):
        write(expected_version=0)
    assert write(expected_version=1).version == 2
    assert [m.version for m in store.memory.history("namespace", "contract", key)] == [2, 1]
    found, artifact = store.memory.get_with_value("namespace", "contract", key)
    assert found.version == 2 and artifact.inline == b'"one"'


def test_llm_calls_add_up(store: Any) -> None:
    made = _execution(store)
    for tokens in (10, 20):
        call = LLMCallRecord(
            id=uuid.uuid4().hex,
            exec_id=made.id,
            position=None,
            checkpoint=None,
            alias=None,
            model="gpt-test",
            prompt_artifact_id=None,
            response_artifact_id=None,
            input_tokens=tokens,
            output_tokens=1,
            cost_usd=0.5,
            latency=0.003,
            attempts=1,
            error=None,
            created_at=time.time(),
        )
        store.record_llm_call(call, [])
    assert tuple(store.llm_spend(made.id)) == (2, 1.0)
    assert sorted(c.input_tokens for c in store.llm_calls(made.id)) == [10, 20]


def test_queues_admit_only_what_the_caller_accepts(store: Any) -> None:
    queue = "q" + uuid.uuid4().hex[:8]
    mine = _execution(store, status="queued", queue=queue, code_version="mine")
    theirs = _execution(store, status="queued", queue=queue, code_version="theirs")
    admitted = store.queues.admit(queue, None, lambda r: r.code_version == "mine")
    assert [r.id for r in admitted] == [mine.id]
    assert store.statuses([mine.id, theirs.id]) == {mine.id: "running", theirs.id: "queued"}


def test_run_output_and_cancel(store: Any) -> None:
    made = _execution(store)
    store.output.append(made.id, 1, "hello\n")
    store.output.append(made.id, 1, "again\n")
    assert [list(p) for p in store.output.read(made.id)] == [[1, "hello\nagain\n"]]
    assert store.cancel(made.id)
    assert store.get_execution(made.id).status == "cancelled"
    assert not store.cancel(made.id)  # it has ended
