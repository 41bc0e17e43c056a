"""kitaru.memory: versions, tombstones, scopes, journaling, compare-and-set under races."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kitaru
from conftest import subprocess_env
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.runtime.memory import MemoryScope


def test_every_write_is_a_version_and_delete_is_a_tombstone() -> None:
    memory = kitaru.memory
    memory.configure("team")
    memory.set("plan", {"steps": 1})
    memory.set("plan", {"steps": 2})
    memory.delete("plan")
    assert memory.get("plan") is None
    assert memory.get("plan", version=1) == {"steps": 1}
    assert [(e.version, e.deleted, e.value) for e in memory.history("plan")] == [
        (3, True, None),
        (2, False, {"steps": 2}),
        (1, False, {"steps": 1}),
    ]
    memory.set("plan", "again")
    assert memory.get_entry("plan").version == 4  # type: ignore[union-attr]


def test_list_shows_live_keys_by_prefix() -> None:
    scope = MemoryScope("namespace", "listing")
    for key in ("user:1", "user:2", "order:1", "user_3"):
        scope.set(key, key.upper())
    scope.delete("user:2")
    assert [(e.key, e.value) for e in scope.list("user:")] == [("user:1", "USER:1")]
    assert [e.key for e in scope.list()] == ["order:1", "user:1", "user_3"]


def test_invalid_keys_and_scopes_are_refused() -> None:
    with pytest.raises(kitaru.KitaruUsageError, match="memory key '' is not valid"):
        kitaru.memory.set("", 1)
    with pytest.raises(kitaru.KitaruUsageError, match="memory key 'a b' is not valid"):
        kitaru.memory.get("a b")
    with pytest.raises(kitaru.KitaruUsageError, match="not one of namespace, flow, execution"):
        kitaru.memory.configure("x", scope_type="galaxy")


def test_compare_and_set_refuses_a_stale_version() -> None:
    scope = MemoryScope("namespace", "cas")
    assert scope.set("order", "new", expected_version=0) == 1
    with pytest.raises(
        kitaru.KitaruStateError, match="expected at version 0, but it is now at version 1"
    ):
        scope.set("order", "other", expected_version=0)
    assert scope.set("order", "paid", expected_version=1) == 2


reads: list[object] = []


@checkpoint
def remember(value: int) -> int:
    kitaru.memory.set("inside", value)  # inline in a checkpoint
    return value


@flow
def uses_memory(value: int) -> dict[str, object]:
    before = kitaru.memory.get("counter", default=0)
    reads.append(before)
    kitaru.memory.set("counter", before + value)
    remember(value)
    after = kitaru.memory.get("counter")
    kitaru.memory.configure(scope_type="execution")
    kitaru.memory.set("private", True)
    assert kitaru.memory.get("counter") is None  # another scope now
    return {"before": before, "after": after}


def test_flow_scope_by_default_and_journaled_in_the_body() -> None:
    first = uses_memory.run(5)
    assert first.wait() == {"before": 0, "after": 5}
    assert uses_memory.run(1).wait() == {"before": 5, "after": 6}
    flow_scope = MemoryScope("flow", "uses_memory")
    assert flow_scope.get("counter") == 6
    assert MemoryScope("execution", first.exec_id).get("private") is True
    kinds = [(c.name, c.kind) for c in KitaruClient().executions.get(first.exec_id).checkpoints]
    assert kinds[:3] == [
        ("memory.get:counter", "memory"),
        ("memory.set:counter", "memory"),
        ("remember", "checkpoint"),
    ]

    # A resumed execution sees what it saw before and writes nothing twice.
    from kitaru_core.store.metadata_store import get_store

    get_store().db.execute(
        "UPDATE executions SET status = 'running' WHERE id = :id", {"id": first.exec_id}
    )
    reads.clear()
    assert KitaruClient().executions.resume(first.exec_id).wait() == {"before": 0, "after": 5}
    assert reads == [0]
    assert [e.version for e in flow_scope.history("counter")] == [2, 1]


RACER = """
import sys
import kitaru
from kitaru import flow
from kitaru_core.errors import KitaruStateError

@flow
def increment(times: int) -> int:
    kitaru.memory.configure("orders")
    conflicts = 0
    for _ in range(times):
        while True:
            entry = kitaru.memory.get_entry("order-42")
            current = entry.version if entry else 0
            try:
                kitaru.memory.set("order-42", (entry.value if entry else 0) + 1,
                                  expected_version=current)
                break
            except KitaruStateError:
                conflicts += 1
    return conflicts

print(increment.run(int(sys.argv[1])).wait())
"""


@pytest.mark.slow
def test_two_flows_racing_compare_and_set_lose_no_update() -> None:
    times = 150
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(times)],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in racers]
    assert all(p.returncode == 0 for p in racers), outputs
    scope = MemoryScope("namespace", "orders")
    assert scope.get("order-42") == 2 * times, outputs
    history = scope.history("order-42")
    assert [e.version for e in history] == list(range(2 * times, 0, -1))
    assert [e.value for e in history] == list(range(2 * times, 0, -1))
    print("conflicts retried:", [int(out) for out, _ in outputs])
