"""``kitaru serve``: the HTTP API against a real uvicorn, over real HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PG_URL, TESTS_DIR, error_line
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
    base = tmp_path_factory.mktemp("served")
    server = start_server(
        base, REVIEW_FLOW, SERVER_FLOWS, APPROVAL_COUNTER=str(base / "approvals.txt")
    )
    yield server
    server.stop()


def _operations(served: Served) -> list[tuple[str, str]]:
    schema = httpx.get(served.url + f"{API}/openapi.json").json()
    found = []
    for path, item in schema["paths"].items():
        if path == "/healthz":
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path).replace(":path", "")
        found += [(method.upper(), concrete) for method in item]
    return found


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def test_every_endpoint_but_healthz_needs_a_token(served: Served) -> None:
    operations = _operations(served)
    assert len(operations) > 20
    # Each endpoint is asked from a loopback address of its own: the server slows a
    # client that keeps failing (tested in test_server_hardening), which is not what
    # this test is about.
    for i, (method, path) in enumerate([*operations, ("POST", "/mcp")]):
        source = httpx.HTTPTransport(local_address=f"127.0.1.{i + 1}")
        with served.client(None, transport=source) as anonymous:
            _problem(anonymous.request(method, path), 401)
            anonymous.headers["Authorization"] = "Bearer kitaru_000000000000_x"
            _problem(anonymous.request(method, path), 401)
    with served.client(None) as anonymous, served.client("admin") as admin:
        assert anonymous.get("/healthz").json()["status"] == "ok"
        assert admin.get(f"{API}/flows").status_code == 200


def test_a_read_token_reads_but_every_write_is_forbidden(served: Served) -> None:
    with served.client("read") as reader:
        assert reader.get(f"{API}/executions").status_code == 200
        assert reader.get("/metrics").status_code == 200
        writes = [(m, p) for m, p in _operations(served) if m != "GET"]
        assert len(writes) >= 10
        for method, path in writes:
            body = _problem(reader.request(method, path, json={}), 403)
            assert "scope 'read'" in body["detail"]
    with served.client("input") as answerer:
        _problem(answerer.post(f"{API}/flows/echo/executions", json={"args": {}}), 403)
    with served.client("run") as runner:
        _problem(runner.put(f"{API}/memory/namespace/default/k", json={"value": 1}), 403)


def test_tokens_are_stored_only_as_hashes(served: Served) -> None:
    secrets = [t.split("_", 2)[2] for t in served.tokens.values()]
    if PG_URL:
        dump = subprocess.run(
            ["pg_dump", "-a", "-n", served.schema or "", PG_URL],
            capture_output=True,
            text=True,
            env={**served.env, "PGPASSWORD": "kitaru_test"},
        ).stdout
        assert "api_tokens" in dump
    else:
        dump = b"".join(p.read_bytes() for p in served.home.rglob("*") if p.is_file()).decode(
            "latin-1"
        )
    for secret in secrets:
        assert secret not in dump
    listed = served.kitaru("tokens", "list", "-o", "json")
    assert {t["name"] for t in json.loads(listed.stdout)} >= {"test-read", "test-admin"}
    assert "secret_hash" not in listed.stdout


def test_expired_and_revoked_tokens_are_refused(served: Served) -> None:
    short = served.token("short-lived", "admin", "--expires", "1s")
    revoked = served.token("to-revoke", "admin")
    with httpx.Client(base_url=served.url) as http:
        ok = http.get(f"{API}/flows", headers={"Authorization": f"Bearer {revoked}"})
        assert ok.status_code == 200
        assert served.kitaru("tokens", "revoke", "to-revoke").returncode == 0
        body = _problem(
            http.get(f"{API}/flows", headers={"Authorization": f"Bearer {revoked}"}), 401
        )
        assert "revoked" in body["detail"]
        time.sleep(1.1)
        body = _problem(http.get(f"{API}/flows", headers={"Authorization": f"Bearer {short}"}), 401)
        assert "expired" in body["detail"]


def test_the_review_example_over_http(served: Served) -> None:
    with served.client("run") as runner, served.client("input") as answerer:
        flows = {f["name"]: f for f in runner.get(f"{API}/flows").json()}
        assert flows["review"]["parameters"] == [
            {"name": "topic", "required": True, "schema": {"type": "string"}}
        ]
        started = runner.post(
            f"{API}/flows/review/executions?wait=30",
            json={"args": {"topic": "durable agents"}},
            headers={"Idempotency-Key": "review-http-1"},
        )
        assert started.status_code == 201, started.text
        execution = started.json()
        assert execution["exec_id"] == "review-http-1"
        assert execution["status"] == "waiting"
        wait = execution["pending_wait"]
        assert (wait["name"], wait["question"], wait["schema"]) == (
            "approve_draft",
            "Approve draft?",
            {"type": "boolean"},
        )
        steps = [(c["name"], c["status"]) for c in execution["checkpoints"]]
        assert steps[-3:] == [
            ("research", "completed"),
            ("draft", "completed"),
            ("approve_draft", "waiting"),  # the wait it stopped at holds its place
        ]
        assert execution["llm_totals"]["calls"] == 2

        again = runner.post(
            f"{API}/flows/review/executions",
            json={"args": {"topic": "durable agents"}},
            headers={"Idempotency-Key": "review-http-1"},
        )
        assert again.status_code == 200 and again.json()["exec_id"] == "review-http-1"
        other = runner.post(
            f"{API}/flows/review/executions",
            json={"args": {"topic": "something else"}},
            headers={"Idempotency-Key": "review-http-1"},
        )
        _problem(other, 409)

        refused = answerer.post(
            f"{API}/executions/review-http-1/input", json={"wait": "approve_draft", "value": "yes"}
        )
        assert "must be bool" in _problem(refused, 422)["detail"]
        still = runner.get(f"{API}/executions/review-http-1").json()
        assert still["status"] == "waiting" and still["pending_wait"]["status"] == "pending"

        answered = answerer.post(
            f"{API}/executions/review-http-1/input", json={"wait": "approve_draft", "value": True}
        )
        assert answered.status_code == 200, answered.text
        done = wait_for_status(runner, "review-http-1", ("completed",))
        assert done["result"]["published"] is True
        assert done["result"]["text"].startswith("a fact")
        late = answerer.post(f"{API}/executions/review-http-1/input", json={"value": False})
        assert "has ended" in _problem(late, 409)["detail"]


def test_bad_arguments_and_unknown_names_are_clear(served: Served) -> None:
    with served.client("admin") as admin:
        body = _problem(admin.post(f"{API}/flows/echo/executions", json={"args": {}}), 400)
        assert "needs the argument 'text'" in body["detail"]
        body = _problem(
            admin.post(f"{API}/flows/echo/executions", json={"args": {"text": "a", "times": "x"}}),
            400,
        )
        assert "'times'" in body["detail"]
        body = _problem(admin.post(f"{API}/flows/nope/executions", json={"args": {}}), 404)
        assert (
            "served: approval, breaks, echo, fan_out, files, flaky, interview, rate, review"
            in body["detail"]
        )
        _problem(admin.get(f"{API}/executions/no-such-execution"), 404)
        _problem(admin.post(f"{API}/flows/echo/executions", json={"argz": {}}), 422)
        body = _problem(admin.get(f"{API}/executions?status=sleepy"), 400)
        assert "'sleepy' is not a status" in body["detail"]


def test_a_hundred_concurrent_answers_resume_the_flow_once(served: Served) -> None:
    counter = Path(served.env["APPROVAL_COUNTER"])
    with served.client("run") as runner:
        started = runner.post(f"{API}/flows/approval/executions?wait=30", json={"args": {"n": 7}})
        exec_id = started.json()["exec_id"]
        assert started.json()["status"] == "waiting"
    clients = [served.client("input") for _ in range(10)]
    barrier = threading.Barrier(100)

    def answer(i: int) -> int:
        barrier.wait()
        response = clients[i % 10].post(
            f"{API}/executions/{exec_id}/input", json={"wait": "ok", "value": True}
        )
        return response.status_code

    with ThreadPoolExecutor(100) as pool:
        codes = Counter(pool.map(answer, range(100)))
    for client in clients:
        client.close()
    assert codes == {200: 1, 409: 99}
    with served.client("read") as reader:
        done = wait_for_status(reader, exec_id, ("completed",))
    assert done["result"] == {"n": 7, "ok": True}
    assert done["runs"] == 2
    time.sleep(0.5)  # a second resume, if there were one, would have run by now
    assert counter.read_text().split().count("7") == 1


def test_fifty_concurrent_starts_with_one_key_make_one_execution(served: Served) -> None:
    clients = [served.client("run") for _ in range(10)]
    barrier = threading.Barrier(50)

    def start(i: int) -> tuple[int, str]:
        barrier.wait()
        response = clients[i % 10].post(
            f"{API}/flows/echo/executions",
            json={"args": {"text": "once"}},
            headers={"Idempotency-Key": "echo-once"},
        )
        assert "exec_id" in response.json(), (response.status_code, response.text)
        return response.status_code, response.json()["exec_id"]

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(start, range(50)))
    for client in clients:
        client.close()
    assert Counter(code for code, _ in results) == {201: 1, 200: 49}
    assert {exec_id for _, exec_id in results} == {"echo-once"}
    with served.client("read") as reader:
        listed = reader.get(f"{API}/executions", params={"flow": "echo", "limit": 500}).json()
        assert [e["exec_id"] for e in listed].count("echo-once") == 1
        assert wait_for_status(reader, "echo-once", ("completed",))["result"] == "ONCE"


def test_listing_pages_with_a_cursor(served: Served) -> None:
    with served.client("run") as runner:
        for i in range(5):
            runner.post(
                f"{API}/flows/echo/executions?wait=30",
                json={"args": {"text": f"page {i}"}},
                headers={"Idempotency-Key": f"page-{i}"},
            )
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"flow": "echo", "limit": 2, "status": "completed"}
            if cursor:
                params["cursor"] = cursor
            page = runner.get(f"{API}/executions", params=params)
            seen += [e["exec_id"] for e in page.json()]
            cursor = page.headers.get("X-Next-Cursor")
            if not cursor:
                break
        assert [s for s in seen if s.startswith("page-")] == [f"page-{i}" for i in range(4, -1, -1)]
        assert len(seen) == len(set(seen))
        _problem(runner.get(f"{API}/executions", params={"cursor": "garbage"}), 400)


def test_artifacts_are_sent_as_json_or_bytes_and_pickles_never(served: Served) -> None:
    with served.client("run") as runner:
        started = runner.post(f"{API}/flows/files/executions?wait=30", json={})
        exec_id = started.json()["exec_id"]
        done = wait_for_status(runner, exec_id, ("completed",))
        assert done["result"] == {"png_bytes": 72}
        artifacts = {
            a["name"]: a for a in runner.get(f"{API}/executions/{exec_id}/artifacts").json()
        }
        notes = runner.get(f"{API}/artifacts/{artifacts['notes']['id']}")
        assert notes.json() == "plain text"
        png = runner.get(f"{API}/artifacts/{artifacts['picture']['id']}")
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG") and len(png.content) == 72
        pickled = runner.get(f"{API}/artifacts/{artifacts['opaque']['id']}")
        assert "never sent over HTTP" in _problem(pickled, 409)["detail"]
        assert b"not for the wire" not in pickled.content


def test_memory_over_http(served: Served) -> None:
    with served.client("admin") as admin:
        path = f"{API}/memory/namespace/team/style/tone"
        first = admin.put(path, json={"value": {"tone": "plain"}})
        assert first.status_code == 200 and first.json()["version"] == 1
        second = admin.put(path, json={"value": {"tone": "warm"}, "expected_version": 1})
        assert second.json()["version"] == 2
        _problem(admin.put(path, json={"value": 1, "expected_version": 1}), 409)
        assert admin.get(path).json()["value"] == {"tone": "warm"}
        assert admin.get(path, params={"version": 1}).json()["value"] == {"tone": "plain"}
        assert admin.delete(path).json()["deleted"] is True
        history = admin.get(path, params={"history": "true"}).json()
        assert [(h["version"], h["deleted"]) for h in history] == [
            (3, True),
            (2, False),
            (1, False),
        ]
        listed = admin.get(f"{API}/memory/namespace/team").json()
        assert [(e["key"], e["version"]) for e in listed] == [("style/tone", 3)]
        _problem(admin.get(f"{API}/memory/namespace/team/missing"), 404)
        body = _problem(admin.put(f"{API}/memory/galaxy/team/k", json={"value": 1}), 400)
        assert "scope type 'galaxy'" in body["detail"]


def test_replay_retry_cancel_resume_and_diff(served: Served) -> None:
    with served.client("run") as runner:
        first = runner.post(f"{API}/flows/echo/executions?wait=30", json={"args": {"text": "hi"}})
        source = first.json()["exec_id"]
        replayed = runner.post(
            f"{API}/executions/{source}/replay",
            json={"from": "shout", "overrides": {}, "args": {"text": "bye"}},
        )
        assert replayed.status_code == 201, replayed.text
        copy = wait_for_status(runner, replayed.json()["exec_id"], ("completed",))
        assert copy["result"] == "BYE" and copy["original_exec_id"] == source
        compared = runner.get(f"{API}/diff", params={"a": source, "b": copy["exec_id"]}).json()
        assert {c["name"]: c["status"] for c in compared["checkpoints"]} == {"shout": "changed"}
        assert "-HI" in compared["result"]["diff"] or '-"HI"' in compared["result"]["diff"]
        _problem(runner.post(f"{API}/executions/{source}/retry"), 409)
        _problem(runner.post(f"{API}/executions/{source}/resume"), 409)
        _problem(runner.post(f"{API}/executions/{source}/cancel"), 409)

        waiting = runner.post(f"{API}/flows/approval/executions?wait=30", json={"args": {"n": 1}})
        exec_id = waiting.json()["exec_id"]
        resumed = runner.post(f"{API}/executions/{exec_id}/resume")
        assert resumed.status_code == 200
        wait_for_status(runner, exec_id, ("waiting",))  # no input: it waits again
        cancelled = runner.post(f"{API}/executions/{exec_id}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        retried = runner.post(f"{API}/executions/{exec_id}/retry")
        assert retried.status_code == 200, retried.text
        assert wait_for_status(runner, exec_id, ("waiting",))["pending_wait"]["name"] == "ok"
        logs = runner.get(f"{API}/executions/{exec_id}/logs")
        assert logs.headers["content-type"].startswith("text/plain")
        tail = runner.get(f"{API}/executions/{exec_id}/logs", params={"tail": 1})
        assert tail.text.splitlines() == logs.text.splitlines()[-1:]


def _read_events(
    response: httpx.Response, until: str, limit: float = 30
) -> list[tuple[int, dict[str, Any]]]:
    events: list[tuple[int, dict[str, Any]]] = []
    event_id = None
    deadline = time.monotonic() + limit
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            assert event_id is not None
            data = json.loads(line[6:])
            events.append((event_id, data))
            if data["kind"] == "status" and data["status"] == until:
                break
        assert time.monotonic() < deadline
    return events


def test_the_event_stream_delivers_every_status_change_in_order(served: Served) -> None:
    with served.client("run") as runner:
        started = runner.post(f"{API}/flows/approval/executions", json={"args": {"n": 3}})
        exec_id = started.json()["exec_id"]
        with runner.stream("GET", f"{API}/executions/{exec_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            before = _read_events(stream, until="waiting")
        with served.client("input") as answerer:
            answerer.post(f"{API}/executions/{exec_id}/input", json={"value": False})
        last_seen = before[-1][0]
        with runner.stream(
            "GET", f"{API}/executions/{exec_id}/events", headers={"Last-Event-ID": str(last_seen)}
        ) as stream:
            after = _read_events(stream, until="completed")
    statuses = [d["status"] for _, d in before + after if d["kind"] == "status"]
    assert statuses == ["running", "waiting", "running", "completed"]
    ids = [i for i, _ in before + after]
    assert ids == sorted(set(ids)) and all(i > last_seen for i, _ in after)
    kinds = [(d["kind"], d["name"]) for _, d in before]
    assert ("wait", "ok") in kinds
    assert ("step", "ok") in [(d["kind"], d["name"]) for _, d in after]
    with runner_stream_all(served, last_seen - 1) as everything:
        first = next(everything)
        assert first[0] == last_seen


class runner_stream_all:
    """The global stream from an id on, as (id, data) pairs."""

    def __init__(self, served: Served, after: int) -> None:
        self.client = served.client("read")
        self.after = after

    def __enter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        self.context = self.client.stream(
            "GET", f"{API}/events", headers={"Last-Event-ID": str(self.after)}
        )
        response = self.context.__enter__()

        def pairs() -> Iterator[tuple[int, dict[str, Any]]]:
            event_id = 0
            for line in response.iter_lines():
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    yield event_id, json.loads(line[6:])

        return pairs()

    def __exit__(self, *exc: object) -> None:
        self.context.__exit__(None, None, None)
        self.client.close()


def test_listings_and_the_ui_are_gzipped_for_clients_that_ask(served: Served) -> None:
    with served.client("read") as reader:
        for path in (f"{API}/openapi.json", "/ui/assets/pages/execution.js"):
            zipped = reader.get(path, headers={"Accept-Encoding": "gzip"})
            assert zipped.headers.get("content-encoding") == "gzip", path
            plain = reader.get(path, headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers and plain.content == zipped.content
            assert int(zipped.headers["content-length"]) < len(plain.content) / 2


def test_the_ui_assets_are_kept_a_year_under_an_address_that_changes_with_them(
    served: Served,
) -> None:
    page = httpx.get(served.url + "/")
    assert page.headers["cache-control"] == "no-cache"
    (script,) = re.findall(r'src="(/ui/assets/[0-9a-f]{12}/app\.js)"', page.text)
    (style,) = re.findall(r'href="(/ui/assets/[0-9a-f]{12}/style\.css)"', page.text)
    for path in (script, style, script.replace("app.js", "pages/execution.js")):
        kept = httpx.get(served.url + path)
        assert kept.status_code == 200, path
        assert kept.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_metrics_are_prometheus_text(served: Served) -> None:
    with served.client("run") as runner:
        runner.post(f"{API}/flows/echo/executions?wait=30", json={"args": {"text": "m"}})
        text = runner.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    completed = re.search(r'^kitaru_executions\{status="completed"\} (\d+)$', text.text, re.M)
    assert completed and int(completed.group(1)) >= 1
    assert re.search(r'kitaru_step_duration_seconds_count\{kind="checkpoint"\} \d+', text.text)
    assert 'kitaru_llm_tokens_total{model="fast",direction="input"}' in text.text
    assert "kitaru_workers 1" in text.text


def test_the_readme_curl_lines_run_as_written(served: Served) -> None:
    readme = (TESTS_DIR.parent / "README.md").read_text()
    section = readme.split("<!-- curl-example -->")[1]
    lines = [line for line in section.splitlines() if line.startswith("curl ")]
    assert len(lines) == 3
    env = {**served.env, "KITARU_SERVER_URL": served.url, "KITARU_TOKEN": served.tokens["admin"]}
    outputs = [
        subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, timeout=60)
        for line in lines
    ]
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    assert json.loads(outputs[0].stdout)["status"] == "waiting"
    answered = json.loads(outputs[2].stdout)
    with served.client("read") as reader:
        done = wait_for_status(reader, answered["exec_id"], ("completed",))
    assert done["result"]["published"] is True


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(served: Served) -> None:
    report = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{served.url}{API}/openapi.json",
            "--header",
            f"Authorization: Bearer {served.tokens['admin']}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--exclude-path-regex",
            "events|/tokens",
            "--max-examples",
            "15",
            "--phases",
            "examples,fuzzing",
            "--seed",
            "7",
            "--suppress-health-check",
            "all",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=served.env,
        cwd=served.home.parent,  # its cache, out of the project
    )
    assert report.returncode == 0, report.stdout[-6000:] + report.stderr[-2000:]


def test_insecure_no_auth_is_for_loopback_only(served: Served) -> None:
    refused = served.kitaru("serve", "--host", "0.0.0.0", "--insecure-no-auth")
    assert refused.returncode == 1
    assert "only on a loopback address" in refused.stderr


def test_without_auth_on_loopback_no_token_is_needed(tmp_path: Path) -> None:
    # The served flows come from the project's pyproject.toml here, not from --flows.
    (tmp_path / "pyproject.toml").write_text(f'[tool.kitaru]\nflows = ["{SERVER_FLOWS}"]\n')
    server = start_server(tmp_path, extra_args=("--insecure-no-auth", "--no-worker"))
    try:
        with httpx.Client(base_url=server.url) as http:
            served_flows = [f["name"] for f in http.get(f"{API}/flows").json()]
            assert served_flows == [
                "approval",
                "breaks",
                "echo",
                "fan_out",
                "files",
                "flaky",
                "interview",
                "rate",
            ]
            started = http.post(
                f"{API}/flows/echo/executions?wait=30", json={"args": {"text": "x"}}
            )
            assert started.status_code == 201
            assert started.json()["status"] == "completed"  # run by a background process
    finally:
        server.stop()


def test_token_commands_refuse_bad_input_in_one_line(served: Served) -> None:
    taken = served.kitaru("tokens", "create", "test-read", "--scope", "read")
    assert "a token named 'test-read' exists" in error_line(taken)
    scope = served.kitaru("tokens", "create", "t2", "--scope", "root")
    assert "scope 'root' is not one of read, input, run, admin" in error_line(scope)
    duration = served.kitaru("tokens", "create", "t3", "--scope", "read", "--expires", "soon")
    assert "duration 'soon' is not valid" in error_line(duration)
    missing = served.kitaru("tokens", "revoke", "nobody")
    assert "no token named 'nobody'" in error_line(missing)
    busy = served.kitaru("serve", "--port", str(free_port()), "--flows", "no_such_module_here")
    assert "--flows no_such_module_here: cannot import it" in error_line(busy)
