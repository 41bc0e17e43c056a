"""``kitaru serve`` against hostile clients and forged rows: real servers on loopback,
bounded loops that stop by themselves. Each test is an attack that once worked."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kitaru_core.runtime import lease
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


def forge(served: Served, exec_id: str, **columns: object) -> None:
    """Change an execution's row as a database writer without the key would."""
    sets = ", ".join(f"{column} = :{column}" for column in columns)
    params = json.dumps({**columns, "id": exec_id})
    in_store(
        served,
        f"import json; store.db.execute('UPDATE executions SET {sets} WHERE id = :id', "
        f"json.loads({params!r}))",
    )


def echoed(client: httpx.Client, text: str) -> str:
    """The id of a completed execution of the served ``echo`` flow."""
    started = client.post(f"{API}/flows/echo/executions?wait=30", json={"args": {"text": text}})
    assert started.json()["status"] == "completed", started.text
    return str(started.json()["exec_id"])


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
            assert (
                "which this server does not serve (served: approval, breaks, echo, fan_out, files, flaky, interview, rate"
                in detail
            )
    assert count_executions(served) == before
    time.sleep(0.5)  # were anything handed to the worker, it would have run by now
    assert effects(served) == ["ran 1"]


def test_replay_arguments_and_overrides_are_type_checked_before_anything_is_recorded(
    served: Served,
) -> None:
    with served.client("run") as client:
        exec_id = echoed(client, "a")  # completed
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
        exec_id = echoed(client, "b")
        forge(served, exec_id, status="failed", flow_ref=f"{script}:x")
        refused = client.post(f"{API}/executions/{exec_id}/retry")
        assert refused.status_code == 409, refused.text
        assert f"({script}:x), which this server does not serve" in refused.json()["detail"]
        # The same reference, kept to a served flow but not signed by the key: refused too.
        forge(served, exec_id, options="{}", flow_ref=f"{SERVER_FLOWS}:echo")
        unsigned = client.post(f"{API}/executions/{exec_id}/retry")
        assert unsigned.status_code == 400, unsigned.text
        assert "is not signed by this deployment's key" in unsigned.json()["detail"]
    assert not marker.exists()


def test_a_forged_running_row_of_a_dead_owner_is_failed_by_the_worker_unimported(
    served: Served, tmp_path: Path
) -> None:
    script, marker = plant(tmp_path)
    with served.client("run") as client:
        exec_id = echoed(client, "c")
    dead_owner = f"{lease.HOST_ID}:999999999:1:deadbeef"  # no such process
    forge(
        served,
        exec_id,
        status="running",
        lease_owner=dead_owner,
        lease_heartbeat=0,
        flow_ref=f"{script}:x",
        stack="isolated",
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
    forge(served, exec_id, options="{}")
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


# -- no client can exhaust it ------------------------------------------------------------


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def healthy(served: Served, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(served.url + "/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def flood_with_half_requests(
    server: Served, count: int, until: Callable[[], bool] | None = None
) -> list[socket.socket]:
    """``count`` connections that each send half a request line and never the rest
    (fewer if ``until()`` comes true first: it is asked before each)."""
    host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
    flood: list[socket.socket] = []
    for _ in range(count):
        if until is not None and until():
            break
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect((host, port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        except OSError:
            sock.close()
            continue
        flood.append(sock)
    return flood


def test_half_sent_requests_cannot_exhaust_the_descriptors(tmp_path: Path) -> None:
    server = start_server(
        tmp_path, SERVER_FLOWS, file_limit=512, extra_args=("--request-timeout", "2")
    )
    flood: list[socket.socket] = []
    try:
        flood = flood_with_half_requests(server, 900)  # well past its 512 descriptors
        # While the flood's connections are still open on this side, the server drops
        # them at their deadline and answers again.
        deadline = time.monotonic() + 20
        while not healthy(server):
            assert time.monotonic() < deadline, f"no answer after the flood:\n{server.log()}"
            assert server.process.poll() is None, server.log()
            time.sleep(0.2)
    finally:
        for sock in flood:
            sock.close()
        try:
            assert healthy(server, timeout=5)
            assert server.process.poll() is None
        finally:
            server.stop()


def test_running_out_of_descriptors_is_survived(tmp_path: Path) -> None:
    """A cap set above what the file limit allows: accept fails with EMFILE, and the
    server says so, stops accepting for a second at a time, stays up, and answers
    again once the flood's connections close."""
    server = start_server(
        tmp_path,
        SERVER_FLOWS,
        file_limit=256,
        extra_args=("--request-timeout", "60", "--max-connections", "2000"),
    )

    def ran_out() -> bool:
        return "out of file descriptors" in " ".join(server.log().split())

    try:
        flood = flood_with_half_requests(server, 600, until=ran_out)
        try:
            deadline = time.monotonic() + 20
            while not ran_out():
                assert time.monotonic() < deadline, f"never ran out:\n{server.log()}"
                time.sleep(0.2)
            assert server.process.poll() is None, server.log()
        finally:
            for sock in flood:  # the flood ends: its connections close
                sock.close()
        deadline = time.monotonic() + 20
        while not healthy(server):
            assert time.monotonic() < deadline, f"no answer after the flood:\n{server.log()}"
            assert server.process.poll() is None, server.log()
            time.sleep(0.2)
    finally:
        server.stop()


def send_raw(served: Served, head: bytes, body_size: int, *, chunked: bool = False) -> bytes:
    """A request head, then up to ``body_size`` bytes of body as fast as the server
    takes them; what the server answered (it may answer before reading the body)."""
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        chunk = b"x" * (1 << 20)
        if chunked:
            chunk = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        # A server that refuses on the head answers at once; one that reads bodies does
        # not, and is sent the whole body. (Sending into a refusal would make its close a
        # reset that can drop the answer.)
        answered, _, _ = select.select([sock], [], [], 1.0)
        sent = body_size if answered else 0
        try:
            while sent < body_size:
                sock.sendall(chunk[: body_size - sent])
                sent += len(chunk)
        except OSError:
            pass  # the server answered and closed: what we wanted
        answer = b""
        try:
            while len(answer) < 4096:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    return answer


def test_an_unauthenticated_200_mib_body_is_never_read(served: Served) -> None:
    before = peak_rss_kib(served.process.pid)
    size = 200 * 1024 * 1024
    for path in ("/api/v1/tokens", "/ui/session", "/api/v1/executions/x/input"):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        answer = send_raw(served, head, size)
        assert answer.split(b"\r\n", 1)[0] in (
            b"HTTP/1.1 401 Unauthorized",
            b"HTTP/1.1 413 Request Entity Too Large",
            b"HTTP/1.1 413 Content Too Large",
        ), answer[:200]
    chunked = (
        b"POST /api/v1/executions/x/input HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    )
    assert b" 401 " in send_raw(served, chunked, size, chunked=True).split(b"\r\n", 1)[0]
    grown = peak_rss_kib(served.process.pid) - before
    assert grown < 64 * 1024, f"the server's peak memory grew {grown} KiB"
    assert healthy(served)


def test_an_authenticated_body_over_the_cap_is_refused_as_it_arrives(served: Served) -> None:
    token = served.tokens["admin"]
    head = (
        f"PUT /api/v1/memory/namespace/big/key HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/json\r\n\r\n"
    ).encode()
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        chunk = b"x" * (1 << 20)
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            for _ in range(40):  # 40 MiB, past the 16 MiB cap
                sock.sendall(framed)
        except OSError:
            pass
        answer = sock.recv(4096)
    # The status line is what arrives for sure: the unread body makes the server's
    # close a reset, which may drop the rest of the answer on the way.
    assert b" 413 " in answer.split(b"\r\n", 1)[0], answer[:200]
    # Announced with Content-Length and not sent, the body is refused before it is read:
    # nothing unread, so the whole answer arrives.
    head = head.replace(b"Transfer-Encoding: chunked", b"Content-Length: 40000000")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        whole = b""
        while data := sock.recv(65536):
            whole += data
    assert b" 413 " in whole.split(b"\r\n", 1)[0], whole[:200]
    assert b"over the limit of 16,842,752 bytes for this route" in whole


# -- values: depth, surrogates, keys -----------------------------------------------------


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_values_nested_to_the_limit_are_read_back_and_one_deeper_is_refused(
    served: Served,
) -> None:
    with served.client("admin") as client:
        for shape in ("list", "dict"):
            deep: object = 1
            for _ in range(200):
                deep = [deep] if shape == "list" else {"k": deep}
            stored = client.put(f"{API}/memory/namespace/deep/{shape}", json={"value": deep})
            assert stored.status_code == 200, stored.text
            read = client.get(f"{API}/memory/namespace/deep/{shape}")
            assert read.status_code == 200 and read.json()["value"] == deep
            deeper = [deep] if shape == "list" else {"k": deep}
            refused = client.put(f"{API}/memory/namespace/deep/{shape}-2", json={"value": deeper})
            assert refused.status_code == 400, refused.text
            assert "nested more than 200 levels deep" in refused.json()["detail"]
        started = client.post(f"{API}/flows/approval/executions", json={"args": {"n": 1}})
        exec_id = started.json()["exec_id"]
        wait_for_status(client, exec_id, ("waiting",))
        too_deep = client.post(f"{API}/executions/{exec_id}/input", json={"value": nested(201)})
        assert too_deep.status_code in (400, 422), too_deep.text
        assert client.get(f"{API}/executions/{exec_id}").status_code == 200


def test_a_lone_surrogate_is_a_clear_400(served: Served) -> None:
    with served.client("admin") as client:
        answer = client.put(
            f"{API}/memory/namespace/text/key",
            content=b'{"value": "a\\ud800b"}',
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400, answer.text
        assert "lone surrogate \\ud800" in answer.json()["detail"]
    assert healthy(served)


def test_idempotency_keys_cannot_pass_for_other_executions(served: Served) -> None:
    with served.client("run") as client:

        def start(key: str) -> httpx.Response:
            return client.post(
                f"{API}/flows/echo/executions",
                json={"args": {"text": "k"}},
                headers={"Idempotency-Key": key},
            )

        for key, why in (
            (".", "only dots"),
            ("..", "only dots"),
            ("order-7.1", "the form of a child flow's id"),
        ):
            refused = start(key)
            assert refused.status_code == 400 and why in refused.json()["detail"], refused.text
        assert start("order-10").status_code == 201
        assert start("order-10").status_code == 200  # a repeat
        shadow = start("order-1")
        assert shadow.status_code == 400
        assert "is the start of execution order-10's id" in shadow.json()["detail"]


# -- headers, the docs page, failed authentication ---------------------------------------


def test_responses_carry_protective_headers_and_no_page_loads_foreign_scripts(
    served: Served,
) -> None:
    with served.client("read") as client:
        flows = client.get(f"{API}/flows")
        assert flows.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in flows.headers["content-security-policy"]
        assert client.get(f"{API}/docs").status_code == 404
        assert client.get(f"{API}/openapi.json").status_code == 200
    with served.client("run") as client:
        ran = client.post(f"{API}/flows/files/executions?wait=30", json={"args": {}})
        exec_id = ran.json()["exec_id"]
        artifacts = client.get(f"{API}/executions/{exec_id}/artifacts").json()
        picture = next(a for a in artifacts if a["name"] == "picture")
        binary = client.get(f"{API}/artifacts/{picture['id']}")
        assert binary.headers["content-type"] == "image/png"
        assert binary.headers["content-disposition"] == 'attachment; filename="picture"'
        assert binary.headers["x-content-type-options"] == "nosniff"


def test_failed_authentications_are_logged_without_the_token_and_slowed(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, SERVER_FLOWS)
    try:
        wrong = "kitaru_0123456789abcdef_" + "s" * 43
        timings = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(20):
                began = time.monotonic()
                answer = client.get(f"{API}/flows", headers={"Authorization": f"Bearer {wrong}"})
                timings.append(time.monotonic() - began)
                assert answer.status_code == 401
        assert sum(timings[15:]) > 5 * 0.4  # the 16th failure onwards waits 0.6 s and more
        log = server.log()
        assert "refused authentication from 127.0.0.1" in log
        assert wrong not in log and "s" * 43 not in log
    finally:
        server.stop()


# -- stack files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: big\nsettings:\n  max_recoveries: " + "9" * 100_000 + "\n", "thousands of digits"),
        ("name: deep\nllm_gateway: " + "[" * 20_000 + "]" * 20_000 + "\n", "too deeply"),
        (
            "name: inf\nllm_gateway:\n  flavor: litellm\n  timeout: 1e999999\n",
            "field 'timeout': Input should be a finite number",
        ),
        ("name: inf\nsettings:\n  retention_days: .inf\n", "not a finite number"),
    ],
    ids=["huge-integer", "deep-list", "1e999999", "inf"],
)
def test_hostile_stack_files_are_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "kitaru", "stack", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0] and "bug in Kitaru" not in lines[0]


# -- a flow added to a served file after the server started ------------------------------

BEFORE = """
import kitaru
from kitaru import flow


@flow
def first() -> str:
    return "first"
"""

AFTER = (
    BEFORE
    + """

@flow
def added() -> str:
    kitaru.sleep(6)  # past the inline limit: the server's worker wakes it
    return "added"
"""
)


def test_a_flow_added_after_the_server_started_is_run_not_failed(tmp_path: Path) -> None:
    script = tmp_path / "deployed.py"
    script.write_text(BEFORE)
    server = start_server(tmp_path, str(script))
    try:
        time.sleep(0.05)
        script.write_text(AFTER)  # a deploy, while the server runs
        ran = server.kitaru("run", f"{script}:added", "-o", "json")
        assert ran.returncode == 0, ran.stderr
        exec_id = json.loads(ran.stdout)["exec_id"]
        assert json.loads(ran.stdout)["status"] == "sleeping"
        with server.client("read") as client:
            done = wait_for_status(client, exec_id, ("completed", "failed"), timeout=60)
        assert done["status"] == "completed", done.get("error")
        assert done["result"] == "added"
    finally:
        server.stop()
