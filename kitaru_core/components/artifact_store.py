"""The artifact store: where serialized values live, under keys the core chooses.

Stores are deliberately dumb: the core picks content-addressed keys, so a store only
has to write bytes under a key atomically, read them back as a stream, and list them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import BinaryIO


class ArtifactStore(ABC):
    """Implement this for a new place to keep artifacts."""

    flavor: str = ""

    @abstractmethod
    def put(self, key: str, source: BinaryIO | bytes) -> None:
        """Store ``source`` under ``key`` so that a reader sees all of it or nothing.

        ``source`` may be a binary stream, which must be copied in chunks, never read
        whole. Writing a key that exists may be skipped: keys are content hashes.
        """

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary stream of the stored bytes; ``FileNotFoundError`` if there are none."""

    def read(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Every stored key starting with ``prefix``."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where a person or another tool finds the bytes (``file://``, ``s3://``, ...)."""
