"""Typed values in and out of an artifact store, under content-addressed keys.

The bytes go to the store first; the caller commits the returned record afterwards,
so a crash in between leaves an unreferenced blob, never a record without its bytes.
Reads verify the hash, so a corrupted blob is an error, never a wrong value.

Small artifacts (``inline_limit`` bytes, 4 KiB by default) travel inside their record
instead, committed in the same transaction as their journal entry: one write per
checkpoint instead of two (one fsync instead of three at full durability, and no
network round trip per checkpoint on a cloud store).

Artifacts whose loading runs code (pickle, typed models) are signed when written and
loaded only when their signature checks out (``signing.py``); values from outside a
flow are written as plain JSON data only (``untrusted.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from kitaru_core.components.artifact_store import ArtifactStore
from kitaru_core.errors import KitaruBackendError, KitaruUsageError
from kitaru_core.serialization import Serialized, deserialize, serialize
from kitaru_core.settings import load_settings
from kitaru_core.signing import SIGNED_SERIALIZERS, Signer, pickle_allowed
from kitaru_core.store.records import ArtifactRecord
from kitaru_core.untrusted import plain_data


def new_id() -> str:
    """A random id, for an execution: the first few characters of one name it."""
    return uuid.uuid4().hex


def new_row_id() -> str:
    """The id of a row that is written once per step and never named by a prefix (an
    artifact, an LLM call): a UUIDv7 as 32 hex digits, the time in milliseconds first.
    Ids made one after another sort together, so a new row lands beside the last one in
    the primary key's index instead of on a random page of it: a step's commit then
    writes pages that are already in memory."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 9562 variant
    return f"{value:032x}"


INLINE_URI_PREFIX = "kitaru-inline:"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A value made ready to store: serialized and signed, or a stream to copy."""

    serialized: Serialized | None = None
    signature: str | None = None
    stream: BinaryIO | None = None
    uploads: bool = True
    """Writing it puts a blob in the artifact store (blocking I/O), not only a row."""


class Artifacts:
    def __init__(
        self,
        store: ArtifactStore,
        *,
        inline_limit: int = 4096,
        signer: Signer | None = None,
        note_blob_write: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.inline_limit = inline_limit
        self.note_blob_write = note_blob_write
        """Told a blob's key before it is put (or found there and reused), so that
        retention leaves it alone until the row referring to it is committed."""
        if signer is None:
            signer = Signer(load_settings().home)
        self.signer = signer

    def uri(self, record: ArtifactRecord) -> str:
        """Where the bytes are: the store's URI, or a note that they are inline."""
        if record.inline is not None:
            return f"{INLINE_URI_PREFIX}{record.key}"
        return self.store.uri(record.key)

    def prepare(self, value: Any, *, what: str, data_only: bool = False) -> Prepared:
        """Serialize and sign ``value`` (CPU only: nothing is stored yet). Its
        ``uploads`` says whether writing it will put a blob in the artifact store."""
        if data_only:
            value = plain_data(value, what=what)
        if not data_only and is_binary_stream(value):
            return Prepared(stream=value)
        serialized = serialize(value, what=what)
        signature: str | None = None
        if serialized.serializer in SIGNED_SERIALIZERS:
            if serialized.serializer == "pickle" and not pickle_allowed():
                type_name = serialized.type_ref.replace(":", ".")
                raise KitaruUsageError(
                    f"{what} of type {type_name} would be stored as "
                    "pickle, which KITARU_ALLOW_PICKLE=0 refuses; use plain data, a "
                    "pydantic model or a dataclass"
                )
            signature = self.signer.sign(
                serialized.serializer, serialized.type_ref, serialized.data
            )
        return Prepared(
            serialized=serialized,
            signature=signature,
            uploads=len(serialized.data) > self.inline_limit,
        )

    def write(
        self,
        value: Any,
        *,
        exec_id: str | None,
        name: str,
        role: str,
        position: int | None = None,
        artifact_type: str = "output",
        tags: list[str] | None = None,
        what: str | None = None,
        data_only: bool = False,
        prepared: Prepared | None = None,
    ) -> ArtifactRecord:
        """Serialize and store ``value`` (or what ``prepare`` made of it); returns the
        record to commit.

        A binary file object (``open(path, "rb")``) is streamed in chunks, never held in
        memory, and loads back as a binary stream. ``data_only`` is for values from
        outside the flow's code: they must be plain JSON data and are stored as such.
        """
        what = what or f"artifact {name!r}"
        if prepared is None:
            prepared = self.prepare(value, what=what, data_only=data_only)
        inline: bytes | None = None
        if prepared.stream is not None:
            key, size = self._put_stream(prepared.stream, name)
            serializer, type_ref = "stream", "io:BufferedReader"
        else:
            serialized = prepared.serialized
            assert serialized is not None
            key, size = hashlib.sha256(serialized.data).hexdigest(), len(serialized.data)
            serializer, type_ref = serialized.serializer, serialized.type_ref
            if prepared.uploads:
                self._put(key, serialized.data, name)
            else:
                inline = serialized.data
        return ArtifactRecord(
            id=new_row_id(),
            exec_id=exec_id,
            name=name,
            role=role,
            key=key,
            serializer=serializer,
            type_ref=type_ref,
            size=size,
            created_at=time.time(),
            artifact_type=artifact_type,
            position=position,
            tags=list(tags or []),
            inline=inline,
            signature=prepared.signature,
        )

    def put_blob(self, key: str, data: bytes, what: str) -> None:
        """Store bytes the caller keyed by their sha256 (a code archive)."""
        self._put(key, data, what)

    def _put(self, key: str, source: BinaryIO | bytes, name: str) -> None:
        if self.note_blob_write is not None:
            self.note_blob_write(key)
        try:
            self.store.put(key, source)
        except KitaruBackendError:
            raise
        except Exception as exc:
            raise KitaruBackendError(
                f"{self.store.flavor} artifact store could not write artifact {name!r} "
                f"({self.store.uri(key)}): {type(exc).__name__}: {exc}"
            ) from exc

    def _put_stream(self, stream: BinaryIO, name: str) -> tuple[str, int]:
        """Hash, then copy, a stream in chunks: (key, size). A stream that cannot seek
        back is spooled to a temporary file first."""
        with contextlib.ExitStack() as cleanup:
            source: BinaryIO = stream
            if not stream.seekable():
                source = cleanup.enter_context(tempfile.TemporaryFile())
                shutil.copyfileobj(stream, source, _CHUNK)
                source.seek(0)
            start = source.tell()
            digest, size = hashlib.sha256(), 0
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
            source.seek(start)
            key = digest.hexdigest()
            self._put(key, source, name)
            if source is stream:
                stream.seek(start)  # the caller gets its stream back as it gave it
            return key, size

    def read(self, record: ArtifactRecord) -> Any:
        """Load an artifact's value, checking its bytes against the recorded hash."""
        where = f"artifact {record.name!r} ({record.id}) of execution {record.exec_id}"
        if record.serializer == "stream":
            return VerifiedStream(self._open(record, where), record.key, where)
        if record.inline is not None:
            return self._verified(record, record.inline, where, "in the metadata store")
        with self._open(record, where) as stream:
            data = stream.read()
        return self._verified(record, data, where, f"at {self.store.uri(record.key)}")

    def read_bytes(self, record: ArtifactRecord) -> bytes:
        """The stored bytes, checked against their hash, without building a value from
        them: what may be sent to a client that must never run code from them."""
        where = f"artifact {record.name!r} ({record.id}) of execution {record.exec_id}"
        if record.inline is not None:
            data = record.inline
        else:
            with self._open(record, where) as stream:
                data = stream.read()
        if hashlib.sha256(data).hexdigest() != record.key:
            raise KitaruBackendError(
                f"{where} is corrupted: its bytes do not match their recorded hash; restore "
                "them or re-run the execution"
            )
        return data

    def open_verified(self, record: ArtifactRecord) -> BinaryIO:
        """A stream of the stored bytes that fails at its end if they do not match."""
        where = f"artifact {record.name!r} ({record.id}) of execution {record.exec_id}"
        if record.inline is not None:
            return io.BytesIO(self.read_bytes(record))
        return VerifiedStream(self._open(record, where), record.key, where)  # type: ignore[return-value]

    def _open(self, record: ArtifactRecord, where: str) -> BinaryIO:
        try:
            return self.store.open(record.key)
        except FileNotFoundError as exc:
            raise KitaruBackendError(
                f"{where} is missing from the {self.store.flavor} artifact store "
                f"(expected at {self.store.uri(record.key)}); restore the file or re-run "
                "the execution"
            ) from exc
        except KitaruBackendError:
            raise
        except Exception as exc:
            raise KitaruBackendError(
                f"{where} could not be read from {self.store.uri(record.key)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _verified(self, record: ArtifactRecord, data: bytes, where: str, place: str) -> Any:
        if hashlib.sha256(data).hexdigest() != record.key:
            raise KitaruBackendError(
                f"{where} is corrupted: the bytes {place} do not match their recorded "
                "hash; restore them or re-run the execution"
            )
        if record.serializer in SIGNED_SERIALIZERS:
            self._check_signature(record, data, where)
        return deserialize(data, record.serializer, record.type_ref)

    def _check_signature(self, record: ArtifactRecord, data: bytes, where: str) -> None:
        """Nothing that runs code is loaded unless this deployment signed it."""
        if record.serializer == "pickle" and not pickle_allowed():
            raise KitaruBackendError(
                f"{where} is a pickle, which KITARU_ALLOW_PICKLE=0 refuses to load; nothing "
                "was unpickled. Unset KITARU_ALLOW_PICKLE to load pickles this deployment "
                "signed"
            )
        if not self.signer.verify(record.serializer, record.type_ref, data, record.signature):
            state = "has a wrong signature" if record.signature else "is not signed"
            raise KitaruBackendError(
                f"{where} ({record.serializer} of {record.type_ref.replace(':', '.')}) {state}: "
                "it was not written by this deployment, so it was not loaded (nothing was "
                "unpickled or imported). If a trusted machine wrote it, give every machine "
                "the same signing key: the secret 'kitaru_signing_key' in the stack's "
                "secret provider (see docs/security.md)"
            )


_CHUNK = 1024 * 1024


def is_binary_stream(value: Any) -> bool:
    """A readable binary file object (not text, not an in-memory bytes value)."""
    return (
        isinstance(value, (io.BufferedIOBase, io.RawIOBase))
        and not isinstance(value, io.TextIOBase)
        and value.readable()
    )


class VerifiedStream(io.RawIOBase):
    """A stored stream that checks its bytes against their hash as they are read: a
    damaged artifact fails at its end instead of passing as a wrong value."""

    def __init__(self, inner: BinaryIO, key: str, where: str) -> None:
        self._inner = inner
        self._key = key
        self._where = where
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        if not data:
            if self._digest.hexdigest() != self._key:
                raise KitaruBackendError(
                    f"{self._where} is corrupted: its bytes do not match their recorded hash"
                )
            return 0
        self._digest.update(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()
