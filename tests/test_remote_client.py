"""``KITARU_SERVER_URL`` + ``KITARU_TOKEN``: the client and the CLI through a server,
from a machine with no database of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import error_line
from kitaru_server import (
    REVIEW_FLOW,
    SERVER_FLOWS,
    Served,
    free_port,
    start_server,
    wait_for_status,
)

API = "/api/v1"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_server(tmp_path_factory.mktemp("remote"), REVIEW_FLOW, SERVER_FLOWS)
    yield server
    server.stop()


@pytest.fixture
def laptop(served: Served, tmp_path: Path) -> dict[str, str]:
    """The environment of a machine that only knows the server's URL and a token."""
    return {
        "KITARU_HOME": str(tmp_path / "laptop-home"),
        "KITARU_DATABASE_URL": "",
        "KITARU_SERVER_URL": served.url,
        "KITARU_TOKEN": served.tokens["input"],
    }


def _waiting_review(served: Served, key: str) -> dict[str, object]:
    with served.client("run") as runner:
        started = runner.post(
            f"{API}/flows/review/executions?wait=30",
            json={"args": {"topic": "remote"}},
            headers={"Idempotency-Key": key},
        )
    data: dict[str, object] = started.json()
    assert data["status"] == "waiting"
    return data


def test_the_cli_answers_a_wait_through_the_server(
    served: Served, laptop: dict[str, str], tmp_path: Path
) -> None:
    _waiting_review(served, "remote-cli")
    waits = served.kitaru("executions", "waits", "-o", "json", **laptop)
    assert waits.returncode == 0, waits.stderr
    assert [w["exec_id"] for w in json.loads(waits.stdout)] == ["remote-cli"]

    refused = served.kitaru("executions", "input", "remote-cli", "--value", "maybe", **laptop)
    assert "must be bool" in error_line(refused)
    answered = served.kitaru(
        "executions", "input", "remote-cli", "--wait", "approve_draft", "--value", "true", **laptop
    )
    assert answered.returncode == 0, answered.stderr
    with served.client("read") as reader:
        wait_for_status(reader, "remote-cli", ("completed",))

    over_http = served.kitaru("executions", "get", "remote-cli", "-o", "json", **laptop)
    direct = served.kitaru("executions", "get", "remote-cli", "-o", "json")
    assert over_http.returncode == 0 and direct.returncode == 0, over_http.stderr
    remote, local = json.loads(over_http.stdout), json.loads(direct.stdout)
    for field in ("exec_id", "status", "runs", "result", "llm_totals", "error"):
        assert remote[field] == local[field], field
    assert [c["name"] for c in remote["checkpoints"]] == [c["name"] for c in local["checkpoints"]]
    listed = served.kitaru("executions", "list", "--flow", "review", "-o", "json", **laptop)
    assert "remote-cli" in [e["exec_id"] for e in json.loads(listed.stdout)]
    assert not (tmp_path / "laptop-home" / "kitaru.db").exists()  # no database opened here


def test_the_python_client_gives_the_same_results(
    served: Served, laptop: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _waiting_review(served, "remote-py")
    for name, value in {**laptop, "KITARU_TOKEN": served.tokens["admin"]}.items():
        monkeypatch.setenv(name, value)
    from kitaru import KitaruClient

    client = KitaruClient()
    pending = client.executions.pending_waits("remote-py")
    assert [(w.name, w.schema) for w in pending] == [("approve_draft", {"type": "boolean"})]
    client.executions.input("remote-py", wait="approve_draft", value=False)
    with served.client("read") as reader:
        wait_for_status(reader, "remote-py", ("completed",))
    execution = client.executions.get("remote-py")
    assert execution.status == "completed"
    assert execution.result == {"published": False, "text": execution.result["text"]}
    assert execution.llm_totals["calls"] == 2

    assert client.memories.set("tone", "plain", scope="remote") == 1
    assert client.memories.get("tone", scope="remote") == "plain"
    assert [e.version for e in client.memories.history("tone", scope="remote")] == [1]

    replayed = client.executions.replay("remote-py", from_="draft")
    assert replayed.status == "waiting"
    compared = client.diff("remote-py", replayed.exec_id)
    assert compared.by_name()["research"] == "same"


def test_a_wrong_token_or_an_unreachable_server_is_one_clear_line(
    served: Served, laptop: dict[str, str]
) -> None:
    wrong = served.kitaru("executions", "list", **{**laptop, "KITARU_TOKEN": "nope"})
    assert "the Kitaru server refused" in error_line(wrong) and "(401)" in error_line(wrong)
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = served.kitaru("executions", "list", **{**laptop, "KITARU_SERVER_URL": nowhere})
    line = error_line(down)
    assert nowhere in line and "KITARU_SERVER_URL" in line
    # Tokens are the one thing never read through a server.
    tokens = served.kitaru("tokens", "list", **laptop)
    assert "tokens are managed where the server's database is" in error_line(tokens)
