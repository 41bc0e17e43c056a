"""One contract for an execution's handle, from the store or through a server: the same
executions, read both ways, give the same answers and the same errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kitaru import KitaruClient
from kitaru_core.errors import KitaruExecutionError, KitaruStateError
from kitaru_core.runtime.flow import ExecutionHandle
from kitaru_core.testing.fixtures import reset_caches
from kitaru_server import FAULT_FLOWS, Served, start_server

API = "/api/v1"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_server(tmp_path_factory.mktemp("contract"), FAULT_FLOWS)
    yield server
    server.stop()


@pytest.fixture(params=["store", "server"])
def client(
    request: pytest.FixtureRequest, served: Served, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KitaruClient]:
    """A client of the server's executions: reading its database, or through it."""
    for name in ("KITARU_HOME", "KITARU_DATABASE_URL"):
        if name in served.env:
            monkeypatch.setenv(name, served.env[name])
    if request.param == "server":
        monkeypatch.setenv("KITARU_SERVER_URL", served.url)
        monkeypatch.setenv("KITARU_TOKEN", served.tokens["admin"])
    reset_caches()
    yield KitaruClient()
    reset_caches()


def started(served: Served, flow: str, text: str) -> str:
    with served.client("run") as runner:
        response = runner.post(
            f"{API}/flows/{flow}/executions?wait=30", json={"args": {"text": text}}
        )
    assert response.status_code == 201, response.text
    return str(response.json()["exec_id"])


def test_a_failed_execution_raises_the_same_error_from_wait_and_get(
    client: KitaruClient, served: Served
) -> None:
    handle: ExecutionHandle[Any] = client.executions.retry(started(served, "fails", "luck"))
    for read in (lambda: handle.wait(timeout=30), handle.get):
        with pytest.raises(KitaruExecutionError) as info:
            read()
        assert info.value.status == "failed"
        assert "ValueError: no luck" in str(info.value)
        assert f"kitaru executions retry {handle.exec_id}" in str(info.value)
    assert handle.status == "failed"


def test_a_completed_execution_returns_its_result(client: KitaruClient, served: Served) -> None:
    source = started(served, "echoes", "twice")
    handle: ExecutionHandle[Any] = client.executions.replay(source, from_="shout", text="again")
    assert handle.wait(timeout=30) == "AGAIN"
    assert handle.get() == "AGAIN"
    assert handle.status == "completed"


def test_a_waiting_execution_has_not_ended_and_cancelling_ends_it(
    client: KitaruClient, served: Served
) -> None:
    handle: ExecutionHandle[Any] = client.executions.resume(started(served, "asks", "now?"))
    assert handle.status == "waiting"
    with pytest.raises(KitaruStateError, match="not finished"):
        handle.get()
    with pytest.raises(TimeoutError, match="still waiting"):
        handle.wait(timeout=0.3)
    client.executions.cancel(handle.exec_id)
    with pytest.raises(KitaruExecutionError, match="was cancelled") as info:
        handle.wait(timeout=30)
    assert info.value.status == "cancelled"
