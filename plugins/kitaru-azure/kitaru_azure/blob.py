"""The ``azure-blob`` artifact store: blobs under ``az://container/prefix/<key>``.

Uploads are staged blocks committed at the end (a reader never sees half a blob), in
parallel and streamed; reads stream the download in chunks.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from kitaru.plugin import ArtifactStore
from kitaru_azure.config import AzureBlobArtifactStoreConfig
from kitaru_azure.errors import service_error

_MB = 1024 * 1024


class AzureBlobArtifactStore(ArtifactStore):
    flavor = "azure-blob"

    def __init__(self, config: AzureBlobArtifactStoreConfig) -> None:
        self.config = config
        self.container_name, _, prefix = config.path.removeprefix("az://").partition("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._container: Any = None

    @property
    def container(self) -> Any:
        if self._container is None:
            from azure.storage.blob import BlobServiceClient

            options: dict[str, Any] = {
                "max_block_size": self.config.block_size_mb * _MB,
                "max_single_put_size": self.config.block_size_mb * _MB,
                "retry_total": self.config.retries,
            }
            if self.config.connection_verify:
                options["connection_verify"] = self.config.connection_verify
            if self.config.connection_string:
                service = BlobServiceClient.from_connection_string(
                    self.config.connection_string, **options
                )
            else:
                credential: Any = self.config.account_key
                if credential is None:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                service = BlobServiceClient(
                    self.config.account_url or "", credential=credential, **options
                )
            self._container = service.get_container_client(self.container_name)
        return self._container

    def _blob(self, key: str) -> Any:
        return self.container.get_blob_client(f"{self.prefix}{key}")

    def _error(self, exc: BaseException, key: str = "") -> Exception:
        return service_error(
            "azure-blob artifact store", self.uri(key) if key else self.uri(""), exc
        )

    def put(self, key: str, source: BinaryIO | bytes) -> None:
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        try:
            self._blob(key).upload_blob(
                stream, overwrite=True, max_concurrency=self.config.max_concurrency
            )
        except Exception as exc:
            raise self._error(exc, key) from exc

    def open(self, key: str) -> BinaryIO:
        try:
            downloader = self._blob(key).download_blob(max_concurrency=1)
        except Exception as exc:
            if (
                type(exc).__name__ == "ResourceNotFoundError"
                and getattr(exc, "error_code", "") == "BlobNotFound"
            ):
                raise FileNotFoundError(self.uri(key)) from None
            raise self._error(exc, key) from exc
        return _DownloadReader(downloader)

    def exists(self, key: str) -> bool:
        try:
            return bool(self._blob(key).exists())
        except Exception as exc:
            raise self._error(exc, key) from exc

    def delete(self, key: str) -> None:
        try:
            self._blob(key).delete_blob()
        except Exception as exc:
            if type(exc).__name__ != "ResourceNotFoundError":
                raise self._error(exc, key) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        try:
            for name in self.container.list_blob_names(name_starts_with=f"{self.prefix}{prefix}"):
                yield name[len(self.prefix) :]
        except Exception as exc:
            raise self._error(exc) from exc

    def uri(self, key: str) -> str:
        return f"az://{self.container_name}/{self.prefix}{key}"


class _DownloadReader(io.RawIOBase):
    """The SDK's streaming downloader as a standard binary stream."""

    def __init__(self, downloader: Any) -> None:
        self._downloader = downloader

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._downloader.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
