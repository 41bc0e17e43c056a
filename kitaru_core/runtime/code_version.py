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
    if module is None:
        return "unknown"
    known = _digests.get(id(module))
    if known is None:
        path = getattr(module, "__file__", None)
        known = _digests[id(module)] = digest_files(source_files(Path(path))) if path else "unknown"
    return known


def source_files(module_file: Path) -> tuple[Path, list[Path]]:
    """(root, files): the module's own file, or, when it is in a package, the outermost
    package's directory and every ``.py`` file under it."""
    module_file = module_file.resolve()
    root = module_file.parent
    if not (root / "__init__.py").is_file():
        return root, [module_file]
    while (root.parent / "__init__.py").is_file():
        root = root.parent
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        files += [Path(folder) / name for name in sorted(names) if name.endswith(".py")]
    return root, files


def digest_files(found: tuple[Path, list[Path]]) -> str:
    root, files = found
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:DIGEST_LENGTH]
