"""Signatures on what makes a reader run code: artifacts, and flow references.

A pickle, and a pydantic model or dataclass named by its import path, make the reader
run code chosen by the writer. Such artifacts carry an HMAC-SHA256 over their
serializer, type and bytes, keyed by this deployment's signing key, and a reader loads
one only when the signature checks out. Anyone who can write the metadata store but
does not hold the key (another user of a shared database, a forged row) cannot make a
reader build an object. Likewise every execution's flow reference (the module or script
a runner imports, its source root and the flow's name) is signed when the execution is
created, and verified before anything is imported (``kitaru_core/runtime/trust.py``).

The key is the stack's secret ``kitaru_signing_key`` when its secret provider has one
(so every machine of a team signs and verifies alike), else a random key generated on
first use into ``KITARU_HOME/signing.key`` (mode 0600). A reader accepts either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from pathlib import Path

from kitaru_core.errors import KitaruBackendError, KitaruUsageError
from kitaru_core.private_files import private_dir, write_private_new

SHARED_KEY_SECRET = "kitaru_signing_key"
SIGNED_SERIALIZERS = frozenset({"pickle", "pydantic", "dataclass"})
"""Serializers whose loading imports or runs code named by the stored record."""
_DOMAIN = b"kitaru-artifact-v1\0"
_REFERENCE_DOMAIN = b"kitaru-flow-reference-v1\0"


def pickle_allowed() -> bool:
    """``KITARU_ALLOW_PICKLE=0`` refuses pickle entirely, on write and on read."""
    return os.environ.get("KITARU_ALLOW_PICKLE", "1").strip().lower() not in ("0", "false", "no")


class Signer:
    """Signs and verifies artifacts with a deployment's keys, loaded on first use."""

    def __init__(self, home: Path, shared_key: Callable[[], str | None] = lambda: None) -> None:
        self._home = home
        self._shared_key = shared_key
        self._keys: list[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def keys(self) -> list[bytes]:
        """The signing key first, then any other key this process trusts.

        A secret provider that cannot be reached now does not stop work on this machine:
        this home's key signs meanwhile (what it signs verifies here, and is refused
        elsewhere, never loaded), and the shared key is asked for again next time."""
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    local = home_key(self._home)
                    try:
                        shared = self._shared_key()
                    except KitaruBackendError:
                        return [local]
                    self._keys = [shared.encode(), local] if shared else [local]
        return self._keys

    def sign(self, serializer: str, type_ref: str, data: bytes) -> str:
        return _mac(self.keys[0], serializer, type_ref, data)

    def verify(self, serializer: str, type_ref: str, data: bytes, signature: str | None) -> bool:
        if not signature:
            return False
        return any(
            hmac.compare_digest(_mac(key, serializer, type_ref, data), signature)
            for key in self.keys
        )

    def sign_reference(
        self,
        flow_ref: str,
        source_root: str | None,
        flow_name: str,
        code_archive: str | None = None,
    ) -> str:
        """An execution's flow reference: what a runner will import to run it (from
        the source archive ``code_archive`` names, when it has one)."""
        return _reference_mac(self.keys[0], flow_ref, source_root, flow_name, code_archive)

    def verify_reference(
        self,
        flow_ref: str,
        source_root: str | None,
        flow_name: str,
        signature: str | None,
        code_archive: str | None = None,
    ) -> bool:
        if not signature:
            return False
        return any(
            hmac.compare_digest(
                _reference_mac(key, flow_ref, source_root, flow_name, code_archive), signature
            )
            for key in self.keys
        )


def _reference_mac(
    key: bytes, flow_ref: str, source_root: str | None, flow_name: str, code_archive: str | None
) -> str:
    mac = hmac.new(key, _REFERENCE_DOMAIN, hashlib.sha256)
    mac.update(f"{flow_ref}\0{source_root or ''}\0{flow_name}".encode())
    if code_archive is not None:  # (references signed before archives existed stay valid)
        mac.update(f"\0{code_archive}".encode())
    return mac.hexdigest()


def _mac(key: bytes, serializer: str, type_ref: str, data: bytes) -> str:
    mac = hmac.new(key, _DOMAIN, hashlib.sha256)
    mac.update(f"{serializer}\0{type_ref}\0".encode())
    mac.update(data)
    return mac.hexdigest()


def home_key(home: Path) -> bytes:
    """This home's key, generated on first use (mode 0600; a race keeps the first)."""
    path = home / "signing.key"
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        private_dir(home)
        write_private_new(path, os.urandom(32).hex().encode())
        key = path.read_bytes().strip()
    if len(key) < 32:
        raise KitaruUsageError(
            f"the signing key {path} is too short or damaged; delete it (artifacts signed "
            "with it will no longer load) or restore it from a backup"
        )
    return key
