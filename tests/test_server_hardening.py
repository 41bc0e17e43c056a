"""``kitaru serve`` against hostile clients and forged rows: real servers on loopback,
bounded loops that stop by themselves. Each test is an attack that once worked."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitaru_server import SERVER_FLOWS, Served, start_server, wait_for_status

API = "/api/v1"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("hardened")
    server = start_server(base, SERVER_FLOWS, KITARU_TEST_EFFECTS=str(base / "effects.txt"))
    yield server
    server.stop()


def effects(served: Served) -> list[str]:
    path = Path(served.env["KITARU_TEST_EFFECTS"])
    return path.read_text().splitlines() if path.exists() else []


def in_store(served: Served, code: str) -> str:
    """Python run against the server's store (``store`` is its MetadataStore), as a
    database writer without the server's help would."""
    prelude = "from kitaru_core.store.metadata_store import get_store; store = get_store()\n"
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def count_executions(served: Served) -> int:
    return int(in_store(served, "print(len(store.list_executions(limit=100000)))"))


# -- nothing unserved runs ---------------------------------------------------------------


def test_replay_retry_and_resume_of_an_unserved_flow_are_refused(served: Served) -> None:
    ran = served.kitaru("run", "hostile_flows:unserved", "--arg", "n=1", "-o", "json")
    assert ran.returncode == 0, ran.stderr
    exec_id = json.loads(ran.stdout)["exec_id"]
    assert effects(served) == ["ran 1"]
    in_store(served, f"store.cancel({exec_id!r})")  # a state retry would accept
    before = count_executions(served)
    with served.client("run") as client:
        for action, body in (
            ("replay", {"from": "mark", "args": {"n": 2}}),
            ("retry", None),
            ("resume", None),
        ):
            answer = client.post(f"{API}/executions/{exec_id}/{action}", json=body)
            assert answer.status_code == 409, answer.text
            detail = answer.json()["detail"]
            assert "which this server does not serve (served: approval, echo, files, rate" in detail
    assert count_executions(served) == before
    time.sleep(0.5)  # were anything handed to the worker, it would have run by now
    assert effects(served) == ["ran 1"]


def test_replay_arguments_and_overrides_are_type_checked_before_anything_is_recorded(
    served: Served,
) -> None:
    with served.client("run") as client:
        started = client.post(f"{API}/flows/echo/executions?wait=30", json={"args": {"text": "a"}})
        exec_id = started.json()["exec_id"]
        assert started.json()["status"] == "completed"
        before = count_executions(served)
        wrong_arg = client.post(
            f"{API}/executions/{exec_id}/replay", json={"from": 0, "args": {"times": "many"}}
        )
        assert wrong_arg.status_code == 400
        assert wrong_arg.json()["detail"].startswith("argument 'times' of flow 'echo':")
        unknown = client.post(
            f"{API}/executions/{exec_id}/replay", json={"from": 0, "args": {"nope": 1}}
        )
        assert unknown.status_code == 400 and "has no parameter 'nope'" in unknown.text
        wrong_override = client.post(
            f"{API}/executions/{exec_id}/replay",
            json={"from": 0, "overrides": {"checkpoint.shout": {"not": "a string"}}},
        )
        assert wrong_override.status_code == 400
        assert wrong_override.json()["detail"].startswith("replay override 'checkpoint.shout':")
        assert count_executions(served) == before
        fine = client.post(
            f"{API}/executions/{exec_id}/replay",
            json={"from": 0, "args": {"times": 2}},
        )
        assert fine.status_code == 201, fine.text
        done = wait_for_status(client, fine.json()["exec_id"], ("completed",))
        assert done["result"] == "A A"


# -- nothing forged is imported ----------------------------------------------------------

EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")

def x():
    pass
"""


def plant(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "evil-ran"
    script = tmp_path / "evil.py"
    script.write_text(EVIL.format(marker=str(marker)))
    return script, marker


def test_a_forged_failed_row_retried_over_http_imports_nothing(
    served: Served, tmp_path: Path
) -> None:
    script, marker = plant(tmp_path)
    with served.client("run") as client:
        started = client.post(f"{API}/flows/echo/executions?wait=30", json={"args": {"text": "b"}})
        exec_id = started.json()["exec_id"]
        in_store(
            served,
            f"store.db.execute(\"UPDATE executions SET status = 'failed', flow_ref = :ref "
            f'WHERE id = :id", {{"ref": "{script}:x", "id": {exec_id!r}}})',
        )
        refused = client.post(f"{API}/executions/{exec_id}/retry")
        assert refused.status_code == 409, refused.text
        assert f"({script}:x), which this server does not serve" in refused.json()["detail"]
        # The same reference, kept to a served flow but not signed by the key: refused too.
        in_store(
            served,
            f"store.db.execute(\"UPDATE executions SET options = '{{}}', flow_ref = :ref "
            f'WHERE id = :id", {{"ref": "{SERVER_FLOWS}:echo", "id": {exec_id!r}}})',
        )
        unsigned = client.post(f"{API}/executions/{exec_id}/retry")
        assert unsigned.status_code == 400, unsigned.text
        assert "is not signed by this deployment's key" in unsigned.json()["detail"]
    assert not marker.exists()


def test_a_forged_running_row_of_a_dead_owner_is_failed_by_the_worker_unimported(
    served: Served, tmp_path: Path
) -> None:
    script, marker = plant(tmp_path)
    with served.client("run") as client:
        started = client.post(f"{API}/flows/echo/executions?wait=30", json={"args": {"text": "c"}})
        exec_id = started.json()["exec_id"]
    dead_owner = f"{socket.gethostname()}:999999999:1:deadbeef"  # no such process
    in_store(
        served,
        "store.db.execute(\"UPDATE executions SET status = 'running', lease_owner = :owner, "
        'lease_heartbeat = 0, flow_ref = :ref, stack = :stack WHERE id = :id", '
        f'{{"owner": "{dead_owner}", "ref": "{script}:x", "id": {exec_id!r}, '
        '"stack": "isolated"})',
    )
    stack = tmp_path / "isolated.yaml"
    stack.write_text("name: isolated\n")  # the server's own worker serves 'local'
    assert served.kitaru("stack", "register", str(stack)).returncode == 0
    once = served.kitaru("worker", "--once", "--stack", "isolated")
    assert once.returncode == 0, once.stderr
    assert not marker.exists()
    error = json.loads(
        in_store(
            served, f"import json; print(json.dumps(store.require_execution({exec_id!r}).error))"
        )
    )
    assert error["message"].startswith(f"execution {exec_id}: its flow reference")
    assert f"`kitaru executions trust {exec_id}`" in error["message"]


def test_an_unsigned_execution_is_refused_until_an_administrator_trusts_it(
    served: Served,
) -> None:
    ran = served.kitaru("run", "server_flows:approval", "--arg", "n=7", "-o", "json")
    exec_id = json.loads(ran.stdout)["exec_id"]
    in_store(
        served,
        f"store.db.execute(\"UPDATE executions SET options = '{{}}' WHERE id = :id\", "
        f"{{'id': {exec_id!r}}})",
    )
    refused = served.kitaru("executions", "resume", exec_id)
    assert refused.returncode == 1
    assert "is not signed by this deployment's key" in refused.stderr
    unconfirmed = served.kitaru("executions", "trust", exec_id)
    assert unconfirmed.returncode == 1 and "--yes" in unconfirmed.stderr
    trusted = served.kitaru("executions", "trust", exec_id, "--yes")
    assert trusted.returncode == 0, trusted.stderr
    assert "runs flow approval from server_flows:approval" in trusted.stdout
    assert f"continue it with `kitaru executions resume {exec_id}`" in trusted.stdout
    answered = served.kitaru("executions", "input", exec_id, "--value", "true")
    assert answered.returncode == 0, answered.stderr
    with served.client("read") as client:
        done = wait_for_status(client, exec_id, ("completed",))
    assert done["result"] == {"n": 7, "ok": True}
