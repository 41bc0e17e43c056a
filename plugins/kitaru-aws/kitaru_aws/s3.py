"""The ``s3`` artifact store: blobs under ``s3://bucket/prefix/<key>``.

Writes go through boto3's managed transfer (multipart above a threshold, parts in
parallel), reads are the response body streamed in chunks: a large artifact is never
held whole in memory. S3 writes are atomic, so a reader never sees half an object.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from kitaru.plugin import ArtifactStore
from kitaru_aws.config import S3ArtifactStoreConfig
from kitaru_aws.errors import error_code, service_error
from kitaru_aws.session import client

_MB = 1024 * 1024


class S3ArtifactStore(ArtifactStore):
    flavor = "s3"

    def __init__(self, config: S3ArtifactStoreConfig) -> None:
        self.config = config
        self.bucket, _, prefix = config.path.removeprefix("s3://").partition("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client("s3", self.config)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def _error(self, exc: BaseException, key: str = "") -> Exception:
        return service_error(
            "s3 artifact store", self.uri(key) if key else f"s3://{self.bucket}", exc, self.config
        )

    def put(self, key: str, source: BinaryIO | bytes) -> None:
        from boto3.s3.transfer import TransferConfig

        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        transfer = TransferConfig(
            multipart_threshold=self.config.multipart_threshold_mb * _MB,
            multipart_chunksize=self.config.multipart_threshold_mb * _MB,
            max_concurrency=self.config.max_concurrency,
        )
        # Each queued part holds its bytes: bound the queue so memory stays a few parts.
        transfer.max_in_memory_upload_chunks = self.config.max_concurrency
        transfer.max_request_queue_size = self.config.max_concurrency * 2
        transfer.max_submission_queue_size = self.config.max_concurrency * 2
        try:
            self.client.upload_fileobj(stream, self.bucket, self._key(key), Config=transfer)
        except Exception as exc:
            raise self._error(exc, key) from exc

    def open(self, key: str) -> BinaryIO:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(self.uri(key)) from None
            raise self._error(exc, key) from exc
        return _BodyReader(body)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error(exc, key) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._error(exc, key) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix)
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]
        except Exception as exc:
            raise self._error(exc) from exc

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


class _BodyReader(io.RawIOBase):
    """botocore's streaming body as a standard binary stream."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()
