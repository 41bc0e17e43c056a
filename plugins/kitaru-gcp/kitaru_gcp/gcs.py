"""The ``gcs`` artifact store: blobs under ``gs://bucket/prefix/<key>``.

Uploads are resumable and chunked, reads stream through the SDK's blob reader: a large
artifact is never held whole in memory. A GCS object appears whole or not at all.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from kitaru.plugin import ArtifactStore
from kitaru_gcp.config import GCSArtifactStoreConfig
from kitaru_gcp.credentials import credentials
from kitaru_gcp.errors import service_error

_MB = 1024 * 1024


class GCSArtifactStore(ArtifactStore):
    flavor = "gcs"

    def __init__(self, config: GCSArtifactStoreConfig) -> None:
        self.config = config
        self.bucket_name, _, prefix = config.path.removeprefix("gs://").partition("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._bucket: Any = None

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            from google.cloud import storage

            options = {"api_endpoint": self.config.endpoint} if self.config.endpoint else None
            client = storage.Client(
                project=self.config.project,
                credentials=credentials(self.config),
                client_options=options,
            )
            self._bucket = client.bucket(self.bucket_name)
        return self._bucket

    def _blob(self, key: str) -> Any:
        # A chunk size makes the upload resumable (and streamed) and the reads chunked.
        return self.bucket.blob(f"{self.prefix}{key}", chunk_size=self.config.chunk_size_mb * _MB)

    def _error(self, exc: BaseException, key: str = "") -> Exception:
        return service_error(
            "gcs artifact store", self.uri(key) if key else f"gs://{self.bucket_name}", exc
        )

    @property
    def retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_deadline(self.config.retry_deadline)

    def put(self, key: str, source: BinaryIO | bytes) -> None:
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        try:
            self._blob(key).upload_from_file(stream, rewind=False, retry=self.retry)
        except Exception as exc:
            raise self._error(exc, key) from exc

    def open(self, key: str) -> BinaryIO:
        from google.api_core.exceptions import NotFound

        blob = self._blob(key)
        try:
            if not blob.exists(retry=self.retry):
                raise FileNotFoundError(self.uri(key))
            return blob.open("rb")  # type: ignore[no-any-return]
        except NotFound:
            raise FileNotFoundError(self.uri(key)) from None
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise self._error(exc, key) from exc

    def exists(self, key: str) -> bool:
        try:
            return bool(self._blob(key).exists(retry=self.retry))
        except Exception as exc:
            raise self._error(exc, key) from exc

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._blob(key).delete()
        except NotFound:
            pass
        except Exception as exc:
            raise self._error(exc, key) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        try:
            for blob in self.bucket.client.list_blobs(
                self.bucket_name, prefix=f"{self.prefix}{prefix}"
            ):
                yield blob.name[len(self.prefix) :]
        except Exception as exc:
            raise self._error(exc) from exc

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}{key}"
