"""Every kind of step goes through one journaled-step primitive; a run's context is the
only source of its stack and store; plugins keep every field of their flavors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import kitaru
from conftest import SECRET_KEY
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.events import Observers, StepEnded
from kitaru_core.flavors import Flavor
from kitaru_core.plugins import Plugins, get_plugins
from kitaru_core.stack_registry import get_stack, register
from kitaru_core.store.metadata_store import get_store
from kitaru_core.testing.llm_server import FakeLLM

BIG = "b" * 100_000


@checkpoint
def big_output() -> str:
    return BIG + "!"


@flow
def writes_everywhere() -> str:
    kitaru.memory.set("notes", BIG)  # a memory write: a blob of its own
    seen = kitaru.memory.get("notes")  # a journaled read: its output recorded too
    return big_output() + str(len(seen))


def blobs(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_a_flow_on_a_non_active_stack_writes_every_blob_to_that_stack(
    tmp_path: Path, kitaru_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITARU_INLINE_ARTIFACT_BYTES", "0")
    other = tmp_path / "other-artifacts"
    path = tmp_path / "other.yaml"
    path.write_text(f"name: other\nartifact_store: {{flavor: local, path: '{other}'}}\n")
    register(path)  # registered, not activated: `local` stays active

    handle = writes_everywhere.run(stack="other")
    assert handle.wait() == BIG + "!" + str(len(BIG))

    store = get_store()
    referenced = {a.key for a in store.list_artifacts(handle.exec_id)}
    memory = store.memory.get("flow", "writes_everywhere", "notes")
    assert memory is not None and memory.stack == "other"
    memory_artifact = store.get_artifact(memory.artifact_id or "")
    assert memory_artifact is not None
    referenced.add(memory_artifact.key)
    assert referenced <= blobs(other)
    assert blobs(kitaru_home / "artifacts") & referenced == set()
    assert KitaruClient().memories.get("notes", scope="writes_everywhere", scope_type="flow") == BIG


class Recorder:
    """A plugin, registered with the real plugin manager, that keeps what it hears."""

    def __init__(self) -> None:
        self.events: list[StepEnded] = []

    @kitaru.hookimpl
    def kitaru_step_ended(self, event: StepEnded) -> None:
        self.events.append(event)


@flow
def every_kind() -> str:
    kitaru.memory.set("k", 1)
    answer = kitaru.llm("hi", model="mock")
    approved = kitaru.wait(name="ok", timeout=0)
    return f"{answer} {approved} {big_output()[-1]}"


def test_every_kind_of_step_is_journaled_and_observed_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "hello")
    recorder = Recorder()
    plugins = get_plugins()
    plugins.pm.register(recorder)
    plugins.observers = Observers(plugins.pm.hook)
    exec_id = every_kind.run().exec_id
    KitaruClient().executions.input(exec_id, value=True, resume=False)
    assert KitaruClient().executions.resume(exec_id).wait() == "hello True !"

    execution = KitaruClient().executions.get(exec_id)
    assert [(c.position, c.name, c.kind) for c in execution.checkpoints] == [
        (0, "memory.set:k", "memory"),
        (1, "llm_1", "llm"),
        (2, "ok", "wait"),
        (3, "big_output", "checkpoint"),
    ]
    ended = [(e.kind, e.name, e.status) for e in recorder.events]
    # First run: memory and llm ran, then the wait suspended; resumed: the wait and the
    # checkpoint ran, the rest answered from the journal (not observed again).
    assert ended == [
        ("memory", "memory.set:k", "completed"),
        ("llm", "llm_1", "completed"),
        ("wait", "ok", "completed"),
        ("checkpoint", "big_output", "completed"),
    ]


def test_positions_are_taken_when_a_step_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    @checkpoint
    def slow(i: int) -> int:
        import time

        time.sleep(0.05 * (3 - i))  # the first called ends last
        return i

    @flow
    def fan_out() -> list[int]:
        futures = [slow.submit(i) for i in range(3)]
        return [f.result() for f in futures]

    exec_id = fan_out.run().exec_id
    execution = KitaruClient().executions.get(exec_id)
    assert [(c.position, c.name) for c in execution.checkpoints] == [
        (0, "slow"),
        (1, "slow"),
        (2, "slow"),
    ]
    outputs = [KitaruClient().artifacts.get(c.artifact_id).load() for c in execution.checkpoints]  # type: ignore[arg-type]
    assert outputs == [0, 1, 2]


def test_a_registered_flavor_keeps_every_field(monkeypatch: pytest.MonkeyPatch) -> None:
    flavor = Plugins().registry.get("llm_gateway", "litellm")
    assert flavor is not None
    assert flavor.resolve_when_used == ("models",)
    assert flavor.plugin == "builtin"
    declared = {f.name for f in __import__("dataclasses").fields(Flavor)}
    assert {"resolve_when_used", "description", "config", "implementation"} <= declared


def test_an_unused_alias_whose_secret_is_missing_blocks_no_call(
    tmp_path: Path, fake_llm: FakeLLM
) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: aliases
        llm_gateway:
          flavor: litellm
          models:
            fast:
              model: openai/gpt-4o-mini
              api_base: {fake_llm.api_base}
              api_key: "{{{{ secret.openai_api_key }}}}"
            unused:
              model: anthropic/claude-3-5-haiku-latest
              api_key: "{{{{ secret.a_secret_nobody_set }}}}"
        """)
    )
    register(path, activate=True)
    get_stack().secret_provider.set("openai_api_key", SECRET_KEY)
    assert kitaru.llm("hi", model="fast")
    assert fake_llm.authorizations() == [f"Bearer {SECRET_KEY}"]
