"""The behaviour every flavor of a component type must show."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from typing import Any

import pytest

from kitaru_core.artifacts import Artifacts
from kitaru_core.components.artifact_store import ArtifactStore
from kitaru_core.components.orchestrator import Orchestrator
from kitaru_core.components.secret_provider import SecretNotFoundError, SecretProvider


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStoreContract:
    """Provide an ``artifact_store`` fixture: a store with nothing in it."""

    @pytest.fixture
    def artifact_store(self) -> ArtifactStore:
        raise NotImplementedError("subclasses provide the artifact_store fixture")

    def test_bytes_written_are_read_back(self, artifact_store: ArtifactStore) -> None:
        data = b"kitaru \x00\xff artifact"
        artifact_store.put(_key(data), data)
        assert artifact_store.read(_key(data)) == data
        assert artifact_store.exists(_key(data))

    def test_a_stream_is_copied_in_chunks_and_read_back_as_a_stream(
        self, artifact_store: ArtifactStore
    ) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        artifact_store.put(_key(data), io.BytesIO(data))
        with artifact_store.open(_key(data)) as stream:
            chunks = iter(lambda: stream.read(1024 * 1024), b"")
            assert b"".join(chunks) == data

    def test_writing_a_key_twice_keeps_its_bytes(self, artifact_store: ArtifactStore) -> None:
        data = b"same content"
        artifact_store.put(_key(data), data)
        artifact_store.put(_key(data), data)
        assert artifact_store.read(_key(data)) == data

    def test_a_missing_key_is_file_not_found(self, artifact_store: ArtifactStore) -> None:
        assert not artifact_store.exists(_key(b"never written"))
        with pytest.raises(FileNotFoundError):
            artifact_store.read(_key(b"never written"))

    def test_delete_removes_and_is_quiet_when_missing(self, artifact_store: ArtifactStore) -> None:
        data = b"short-lived"
        artifact_store.put(_key(data), data)
        artifact_store.delete(_key(data))
        assert not artifact_store.exists(_key(data))
        artifact_store.delete(_key(data))

    def test_list_by_prefix(self, artifact_store: ArtifactStore) -> None:
        keys = sorted(_key(f"item {i}".encode()) for i in range(5))
        for i in range(5):
            artifact_store.put(_key(f"item {i}".encode()), f"item {i}".encode())
        assert sorted(artifact_store.list()) == keys
        assert list(artifact_store.list(keys[0][:6])) == [keys[0]]

    def test_uri_names_the_key(self, artifact_store: ArtifactStore) -> None:
        key = _key(b"x")
        assert key in artifact_store.uri(key)

    def test_typed_values_round_trip_through_the_store(self, artifact_store: ArtifactStore) -> None:
        artifacts = Artifacts(artifact_store, inline_limit=0)
        for value in ("text", b"bytes", {"a": [1, 2.5, None]}, (1, "two"), {1, 2}):
            record = artifacts.write(value, exec_id=None, name="value", role="saved")
            assert record.inline is None and artifact_store.exists(record.key)
            assert artifacts.read(record) == value

    def test_a_file_object_is_streamed_in_and_out(self, artifact_store: ArtifactStore) -> None:
        _stream_round_trip(artifact_store, 9 * 1024 * 1024)


class SecretProviderContract:
    """Provide a ``secret_provider`` fixture: a provider with no secrets named ``kitarucontract*``."""

    @pytest.fixture
    def secret_provider(self) -> SecretProvider:
        raise NotImplementedError("subclasses provide the secret_provider fixture")

    @pytest.fixture
    def name(self) -> str:
        # letters and digits only: every secret service accepts those names
        return f"kitarucontract{uuid.uuid4().hex[:8]}"

    def test_a_secret_set_is_read_back(self, secret_provider: SecretProvider, name: str) -> None:
        secret_provider.set(name, "s3cr3t value with spaces")
        assert secret_provider.get(name) == "s3cr3t value with spaces"

    def test_setting_again_replaces_the_value(
        self, secret_provider: SecretProvider, name: str
    ) -> None:
        secret_provider.set(name, "first")
        secret_provider.set(name, "second")
        assert secret_provider.get(name) == "second"

    def test_list_names_the_secret_and_shows_no_values(
        self, secret_provider: SecretProvider, name: str
    ) -> None:
        secret_provider.set(name, "hidden-value")
        names = secret_provider.list()
        assert name in names
        assert "hidden-value" not in names

    def test_delete_removes_it(self, secret_provider: SecretProvider, name: str) -> None:
        secret_provider.set(name, "gone soon")
        secret_provider.delete(name)
        with pytest.raises(SecretNotFoundError):
            secret_provider.get(name)
        assert name not in secret_provider.list()

    def test_a_missing_secret_is_secret_not_found_naming_it(
        self, secret_provider: SecretProvider, name: str
    ) -> None:
        with pytest.raises(SecretNotFoundError, match=name):
            secret_provider.get(name)
        with pytest.raises(SecretNotFoundError):
            secret_provider.delete(name)


class OrchestratorContract:
    """Provide an ``orchestrator`` fixture. Executions run the flows of
    ``kitaru_core.testing.flows``, which the orchestrator's workers must be able to import;
    ``run_timeout`` is how long a run may take to be scheduled and finish."""

    run_timeout = 60.0

    @pytest.fixture
    def orchestrator(self) -> Orchestrator:
        raise NotImplementedError("subclasses provide the orchestrator fixture")

    def _create(self, flow: Any) -> str:
        from kitaru_core.runtime.engine import create_execution
        from kitaru_core.stack_registry import get_stack

        return create_execution(flow, ("contract",), {}, stack=get_stack()).record.id

    def _wait_for(self, exec_id: str, statuses: set[str]) -> Any:
        from kitaru import KitaruClient

        deadline = time.monotonic() + self.run_timeout
        while True:
            execution = KitaruClient().executions.get(exec_id)
            if execution.status in statuses:
                return execution
            assert time.monotonic() < deadline, f"execution is still {execution.status}"
            time.sleep(0.05)

    def test_start_runs_the_execution_to_its_result(self, orchestrator: Orchestrator) -> None:
        from kitaru_core.testing.flows import contract_flow

        exec_id = self._create(contract_flow)
        orchestrator.start(exec_id)
        execution = self._wait_for(exec_id, {"completed", "failed"})
        assert execution.status == "completed"
        assert execution.result == "hello contract"

    def test_resume_after_input_in_the_background(self, orchestrator: Orchestrator) -> None:
        from kitaru import KitaruClient
        from kitaru_core.testing.flows import contract_waiting_flow

        exec_id = self._create(contract_waiting_flow)
        orchestrator.start(exec_id)
        self._wait_for(exec_id, {"waiting"})
        KitaruClient().executions.input(exec_id, wait="approve", value=True, resume=False)
        orchestrator.resume(exec_id, background=True)
        execution = self._wait_for(exec_id, {"completed", "failed"})
        assert execution.result == "hello contract"

    def test_cancel_ends_a_waiting_execution(self, orchestrator: Orchestrator) -> None:
        from kitaru_core.testing.flows import contract_waiting_flow

        exec_id = self._create(contract_waiting_flow)
        orchestrator.start(exec_id)
        self._wait_for(exec_id, {"waiting"})
        orchestrator.cancel(exec_id)
        assert self._wait_for(exec_id, {"cancelled"}).status == "cancelled"


def _stream_round_trip(artifact_store: ArtifactStore, size: int) -> None:
    """A binary file object is stored and loaded as a stream, bytes intact."""
    import tempfile

    artifacts = Artifacts(artifact_store, inline_limit=0)
    with tempfile.TemporaryFile() as source:
        block = os.urandom(1024 * 1024)
        for _ in range(size // len(block)):
            source.write(block)
        source.seek(0)
        record = artifacts.write(source, exec_id=None, name="big", role="saved")
        assert record.serializer == "stream" and record.size == size
        source.seek(0)
        with artifacts.read(record) as loaded:
            for expected in iter(lambda: source.read(1024 * 1024), b""):
                assert loaded.read(len(expected)) == expected
            assert loaded.read(1) == b""
