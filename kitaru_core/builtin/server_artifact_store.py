"""The artifacts of a stack whose artifact store is the server's own disk, for a process
that uses the metadata store through ``kitaru serve``: its blobs go through the
server's ``/api/v1/stacks/STACK/blobs/KEY`` (``kitaru_core/server/store_api.py``).

Artifacts up to the inline limit never come here: they travel inside the store call
that records their step. Larger ones are uploaded in chunks; the server checks that
their bytes hash to their key before it keeps them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

from kitaru_core.components.artifact_store import ArtifactStore
from kitaru_core.store import wire
from kitaru_core.store.http_store import ServerTransport, refusal

_CHUNK = 1024 * 1024


class ServerArtifactStore(ArtifactStore):
    flavor = "local"

    def __init__(self, transport: ServerTransport, stack: str) -> None:
        self.transport = transport
        self.stack = stack
        self._path = f"/api/v1/stacks/{quote(stack, safe='')}/blobs/"

    def put(self, key: str, source: BinaryIO | bytes) -> None:
        # A stream is sent as it is read, in chunked transfer encoding.
        status, data, _ = self.transport.request(
            "PUT", self._path + key, source, {"Content-Type": "application/octet-stream"}
        )
        if status != 204:
            raise refusal(status, data, f"the upload of artifact {key}")

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.read(key))

    def read(self, key: str) -> bytes:
        status, data, _ = self.transport.request("GET", self._path + key)
        if status == 404:
            raise FileNotFoundError(f"artifact {key} is not on the server {self.transport.url}")
        if status != 200:
            raise refusal(status, data, f"the download of artifact {key}")
        return data

    def exists(self, key: str) -> bool:
        status, data, _ = self.transport.request("HEAD", self._path + key)
        if status not in (200, 404):
            raise refusal(status, data, f"the lookup of artifact {key}")
        return status == 200

    def delete(self, key: str) -> None:
        status, data, _ = self.transport.request("DELETE", self._path + key)
        if status not in (204, 404):
            raise refusal(status, data, f"the deletion of artifact {key}")

    def list(self, prefix: str = "") -> Iterator[str]:
        status, data, _ = self.transport.request("GET", f"{self._path}?prefix={quote(prefix)}")
        if status != 200:
            raise refusal(status, data, "the listing of artifacts")
        yield from wire.loads(data)

    def uri(self, key: str) -> str:
        return f"{self.transport.url}{self._path}{key}"
