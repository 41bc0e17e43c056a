"""Azurite (from npm) for Blob Storage, and a loopback HTTPS fake of Azure Key Vault's
REST API with its 401 bearer challenge (no Key Vault emulator exists)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kitaru.testing import ServerProcess

AZURITE_DIR = Path(__file__).parent / ".azurite"
ACCOUNT = "devstoreaccount1"


def azurite_binary() -> Path:
    binary = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "Azurite is needed: install Node.js and npm, then "
                f"`npm install --prefix {AZURITE_DIR} azurite@3`"
            )
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(AZURITE_DIR), "azurite@3"],
            check=True,
            capture_output=True,
        )
    return binary


def account_key() -> str:
    """Azurite's development account key, read from the installed package (it is public
    in Azurite's documentation; reading it keeps it out of this repository)."""
    constants = (
        AZURITE_DIR
        / "node_modules"
        / "azurite"
        / "dist"
        / "src"
        / "common"
        / "utils"
        / "constants.js"
    )
    match = re.search(r'EMULATOR_ACCOUNT_KEY = Buffer\.from\("([^"]+)"', constants.read_text())
    assert match, "Azurite's development key was not found"
    return match.group(1)


class Azurite(ServerProcess):
    def __init__(self) -> None:
        super().__init__()
        self.binary = azurite_binary()
        self.url = f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={account_key()};"
            f"BlobEndpoint={self.url};"
        )

    def command(self) -> list[str]:
        # azurite-blob itself, not through npx: stopping npx leaves node running.
        return [
            str(self.binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--silent",
            "--disableTelemetry",
        ]

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def container(azurite: Azurite) -> str:
    name = f"kitaru-{uuid.uuid4().hex[:12]}"
    azurite.service().create_container(name)
    return name


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now for this test session."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class KeyVaultFake(BaseHTTPRequestHandler):
    secrets: dict[str, list[tuple[str, str]]] = {}  # name -> [(version, value)]
    deleted: set[str] = set()
    tokens_seen: list[str] = []
    base = ""
    lock = threading.Lock()

    def _send(
        self,
        code: int,
        payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        length = int(self.headers.get("content-length", 0))
        self._raw = self.rfile.read(length) if length else b""
        auth = self.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            self.tokens_seen.append(auth[7:])
            return True
        self._send(
            401,
            {"error": {"code": "Unauthorized", "message": "no token"}},
            {
                "WWW-Authenticate": 'Bearer authorization="https://login.microsoftonline.com/tenant", '
                'resource="https://vault.azure.net"',
            },
        )
        return False

    def _bundle(self, name: str, version: str, value: str | None = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "id": f"{self.base}/secrets/{name}/{version}",
            "attributes": {
                "enabled": True,
                "created": 1700000000,
                "updated": 1700000000,
                "recoveryLevel": "Recoverable+Purgeable",
            },
        }
        if value is not None:
            bundle["value"] = value
        return bundle

    def _not_found(self, name: str) -> None:
        self._send(
            404,
            {
                "error": {
                    "code": "SecretNotFound",
                    "message": f"A secret with (name/id) {name} was not found in this key vault.",
                }
            },
        )

    def do_PUT(self) -> None:
        if not self._authorized():
            return
        name = self.path.partition("?")[0].split("/")[2]
        value = json.loads(self._raw)["value"]
        version = uuid.uuid4().hex
        with self.lock:
            self.secrets.setdefault(name, []).append((version, value))
        self._send(200, self._bundle(name, version, value))

    def do_GET(self) -> None:
        if not self._authorized():
            return
        parts = [p for p in self.path.partition("?")[0].split("/") if p]
        with self.lock:
            if parts == ["secrets"]:
                items = [
                    {"id": f"{self.base}/secrets/{n}", "attributes": {"enabled": True}}
                    for n in self.secrets
                ]
                return self._send(200, {"value": items, "nextLink": None})
            if parts[0] == "deletedsecrets":
                if parts[1] in self.deleted:
                    return self._send(
                        200,
                        {
                            **self._bundle(parts[1], "v"),
                            "recoveryId": f"{self.base}/deletedsecrets/{parts[1]}",
                        },
                    )
                return self._not_found(parts[1])
            versions = self.secrets.get(parts[1])
            if not versions:
                return self._not_found(parts[1])
            wanted = parts[2] if len(parts) > 2 else None
            for version, value in reversed(versions):
                if wanted in (None, version):
                    return self._send(200, self._bundle(parts[1], version, value))
            return self._not_found(parts[1])

    def do_DELETE(self) -> None:
        if not self._authorized():
            return
        parts = [p for p in self.path.partition("?")[0].split("/") if p]
        with self.lock:
            if parts[0] == "deletedsecrets":
                self.deleted.discard(parts[1])
                return self._send(204)
            if self.secrets.pop(parts[1], None) is None:
                return self._not_found(parts[1])
            self.deleted.add(parts[1])
        self._send(
            200,
            {
                **self._bundle(parts[1], "v"),
                "recoveryId": f"{self.base}/deletedsecrets/{parts[1]}",
                "deletedDate": 1700000000,
                "scheduledPurgeDate": 1800000000,
            },
        )

    def log_message(self, *args: Any) -> None:
        pass


class KeyVault:
    def __init__(self, url: str, ca: Path) -> None:
        self.url = url
        self.ca = ca

    def tokens(self) -> list[str]:
        return list(KeyVaultFake.tokens_seen)


@pytest.fixture(scope="session")
def key_vault(tls_files: tuple[Path, Path]) -> Iterator[KeyVault]:
    cert, key = tls_files
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeyVaultFake)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    KeyVaultFake.base = f"https://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield KeyVault(KeyVaultFake.base, cert)
    server.shutdown()


class AzuriteWithOAuth(Azurite):
    """Azurite over HTTPS that accepts bearer tokens (``--oauth basic``), for
    DefaultAzureCredential; its certificate is made for this session."""

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__()
        self.cert, self.key = cert, key
        self.url = f"https://127.0.0.1:{self.port}/{ACCOUNT}"

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--oauth",
            "basic",
            "--cert",
            str(self.cert),
            "--key",
            str(self.key),
        ]


class ManagedIdentityFake(BaseHTTPRequestHandler):
    """App Service's managed-identity endpoint (IDENTITY_ENDPOINT, IDENTITY_HEADER): hands
    out an unsigned token for the resource asked for, which Azurite's basic OAuth accepts."""

    header = "kitaru-test-identity-header"
    requests: list[str] = []

    def do_GET(self) -> None:
        import base64
        from urllib.parse import parse_qs, urlparse

        self.requests.append(self.path)
        if self.headers.get("X-IDENTITY-HEADER") != self.header:
            self.send_response(401)
            self.end_headers()
            return
        resource = parse_qs(urlparse(self.path).query)["resource"][0]
        now = int(time.time())
        claims = {
            "aud": resource.rstrip("/"),
            "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": "kitaru-test",
        }

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        token = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
        body = json.dumps(
            {
                "access_token": token,
                "expires_on": str(now + 3600),
                "resource": resource,
                "token_type": "Bearer",
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def azurite_oauth(tls_files: tuple[Path, Path]) -> Iterator[AzuriteWithOAuth]:
    server = AzuriteWithOAuth(*tls_files)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def managed_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ManagedIdentityFake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}/msi/token"
    monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", ManagedIdentityFake.header)
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    yield endpoint
    server.shutdown()
