"""Which code an execution runs: its *code version*.

``@flow(version="...")`` when given, else ``KITARU_CODE_VERSION`` (set by a deploy),
else a digest of the flow's source files: its module, and every module of the package
it belongs to when it is in one. An execution records the version it started with; a
worker continues only executions whose version it has (``worker/versions.py``).

The digest is of the files as this process first read them for the module it imported,
so a long-running process reports the code it runs, not what a deploy has written
since (a module it imports again gets a digest again).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitaru_core.runtime.flow_ref import FlowDefinition

VERSION_VARIABLE = "KITARU_CODE_VERSION"
DIGEST_LENGTH = 12
"""Hex digits kept of the sha256: a version is shown beside ids, and 48 bits tell a
project's versions apart."""

_digests: dict[int, str] = {}
"""Digests by ``id()`` of the module object they describe (a reimport is a new one)."""


def code_version_of(flow: FlowDefinition[Any, Any]) -> str:
    """The code version an execution of ``flow`` started now records."""
    if flow.version is not None:
        return flow.version
    declared = os.environ.get(VERSION_VARIABLE, "").strip()
    if declared:
        return declared
    return source_digest(flow.func.__module__)


def source_digest(module_name: str) -> str:
    """The digest of a module's source files (its package's, when it is in one)."""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return "unknown"
    known = _digests.get(id(module))
    if known is None:
        root, start = package_root(Path(path))
        files = [Path(path).resolve().name]  # a module in no package: its own file
        if start != root:  # in a package: every module of it
            files = []
            for folder, dirs, names in os.walk(start):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
                here = Path(folder).relative_to(root)
                files += [(here / n).as_posix() for n in sorted(names) if n.endswith(".py")]
        known = _digests[id(module)] = tree_digest(root, files)[:DIGEST_LENGTH]
    return known


def package_root(module_file: Path) -> tuple[Path, Path]:
    """(root, start): for a module in a package, the outermost package's parent and
    that package's directory; for one in no package, its directory twice."""
    folder = module_file.resolve().parent
    if not (folder / "__init__.py").is_file():
        return folder, folder
    while (folder.parent / "__init__.py").is_file():
        folder = folder.parent
    return folder.parent, folder


def tree_digest(root: Path, files: Iterable[str]) -> str:
    """sha256 over each file's path (relative to ``root``) and content."""
    digest = hashlib.sha256()
    for relative in files:
        digest.update(relative.encode() + b"\0" + file_hash(root / relative))
    return digest.hexdigest()


_hashes: dict[tuple[str, int, int], bytes] = {}
"""File digests by (path, size, mtime): a process that starts many executions reads an
unchanged file once."""


def file_hash(path: Path) -> bytes:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    found = _hashes.get(key)
    if found is None:
        found = _hashes[key] = hashlib.sha256(path.read_bytes()).digest()
    return found
