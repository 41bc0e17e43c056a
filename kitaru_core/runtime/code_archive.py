"""Code shipped with the execution (stack setting ``code: archive``).

When an execution starts, the flow's source tree is stored in the stack's artifact
store as a gzipped tar, and every run of it, wherever it runs (a Kubernetes Job, a
resume after a deploy), imports exactly that tree: changing code needs no image
rebuild, and a waiting execution resumes on the code it started with.

- The tree is the flow's package (every file under its outermost package directory),
  or, for a module or script that is in no package, its directory; ``.gitignore``
  files in it and above it (up to its git work tree's top) are honoured, ``.git`` and
  ``__pycache__`` never go, and at most ``ARCHIVE_LIMIT`` bytes.
- The execution records the tree's digest (``code_archive``: sha256 over each file's
  path and content) in its signed reference; the archive is an artifact of the
  execution (role ``code``), content-addressed like the others, so an unchanged tree
  is uploaded once and kept while an execution refers to it.
- A run downloads it (bytes checked against their hash), unpacks it under the home's
  ``code/`` directory, and checks the unpacked files against the recorded digest before
  importing anything: a corrupted or missing archive fails the run, never runs other code.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitaru_core.artifacts import new_row_id
from kitaru_core.errors import KitaruBackendError, KitaruUsageError
from kitaru_core.runtime.code_version import package_root, tree_digest
from kitaru_core.runtime.flow_ref import FlowDefinition, is_script, registry, resolve_flow
from kitaru_core.settings import load_settings
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import ArtifactRecord

if TYPE_CHECKING:
    from kitaru_core.stack import Stack
    from kitaru_core.store.records import ExecutionRecord

ARCHIVE_LIMIT = 50 * 1024 * 1024
ROLE = "code"
NEVER_SHIPPED = {".git", "__pycache__", ".hg", ".svn"}
SERIALIZER = "code-archive"
IGNORE_FILE = ".gitignore"


@dataclass(frozen=True)
class SourceTree:
    """The files a flow's archive holds."""

    root: Path
    """The directory the archive's paths are relative to: unpacked, it takes this
    directory's place (on ``sys.path``, or as the script's directory)."""
    files: tuple[str, ...]
    """Relative POSIX paths, sorted."""
    digest: str
    """sha256 over every file's path and content: what ``code_archive`` records."""


_stored: set[tuple[str, str]] = set()
"""(store URI, tree digest) known to have their archive stored."""


def ships(flow: FlowDefinition[Any, Any]) -> bool:
    """Whether ``flow``'s code can travel as an archive: not when it is part of what
    runs it (Kitaru and its plugins, already imported by every runner), nor when it is
    installed into the environment (site-packages), which is the image's to provide."""
    module = flow.func.__module__
    top = module.split(".")[0]
    if not is_script(module) and (top == "kitaru" or top.startswith("kitaru_")):
        return False
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path:
        return True  # refused with the reason by ``source_tree``
    return not Path(path).resolve().is_relative_to(_installed())


@functools.cache
def _installed() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"]).resolve()


def source_tree(flow: FlowDefinition[Any, Any]) -> SourceTree:
    """The tree ``flow`` is imported from, read now."""
    module = sys.modules.get(flow.func.__module__)
    path = getattr(module, "__file__", None)
    if not path:
        raise KitaruUsageError(
            f"flow {flow.name!r} has no source file to archive (it was defined in an "
            "interactive session); define it in a file, or use `code: path`"
        )
    return _cached_tree(*package_root(Path(path)))


def _cached_tree(root: Path, start: Path) -> SourceTree:
    """The tree, from the home's record of it when nothing in it changed since (the
    sizes and modification times of its files, as ``make`` and git's index judge): a
    start then neither reads the files nor the ignore rules."""
    record = load_settings().home / "code" / "trees" / (_short(str(root)) + ".json")
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = {}
    pruned = set(known.get("pruned", ()))
    signature = _stat_signature(root, start, pruned)
    if known.get("signature") == signature:
        return SourceTree(root, tuple(known["files"]), known["digest"])
    files, pruned = _listed(root, start)
    tree = SourceTree(root, tuple(files), tree_digest(root, files))
    with contextlib.suppress(OSError):  # a read-only home: the next start reads it all again
        record.parent.mkdir(parents=True, exist_ok=True)
        staged = record.with_suffix(f".{os.getpid()}.tmp")
        staged.write_text(
            json.dumps(
                {
                    "signature": _stat_signature(root, start, pruned),
                    "files": files,
                    "digest": tree.digest,
                    "pruned": sorted(pruned),
                }
            )
        )
        staged.replace(record)
    return tree


def _stat_signature(root: Path, start: Path, pruned: set[str]) -> str:
    """A digest of every file's path, size and mtime under ``start`` (and of the ignore
    files above it), skipping directories the ignore rules dropped last time."""
    digest = hashlib.sha256()
    enclosing = [folder / IGNORE_FILE for folder in _enclosing(root, start)]
    for folder, dirs, names in os.walk(start):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in NEVER_SHIPPED and (here / d).relative_to(root).as_posix() not in pruned
        )
        for path in [*(here / name for name in sorted(names)), *enclosing]:
            with contextlib.suppress(OSError):
                stat = path.stat()
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _enclosing(root: Path, start: Path) -> list[Path]:
    """The directories above ``start`` whose ignore rules apply to it, outermost first:
    up to the top of its git work tree, else the tree's own root (a package's parent)."""
    above = []
    for folder in start.parents:
        above.append(folder)
        if (folder / ".git").exists():
            return above[::-1]
    return [root] if root != start else []


class _IgnoreRules:
    """The ``.gitignore`` files that apply to a tree, each to the paths below its own
    directory, as git reads them (a deeper file cannot re-include what a higher one
    excluded: git reads no further into an excluded directory either)."""

    def __init__(self) -> None:
        self._specs: list[tuple[Path, Any]] = []

    def read(self, folder: Path) -> None:
        import pathspec

        rules = folder / IGNORE_FILE
        if rules.is_file():
            lines = rules.read_text(errors="replace").splitlines()
            self._specs.append((folder, pathspec.GitIgnoreSpec.from_lines(lines)))

    def ignores(self, path: Path, *, directory: bool = False) -> bool:
        for folder, spec in self._specs:
            if path.is_relative_to(folder):
                relative = path.relative_to(folder).as_posix() + ("/" if directory else "")
                if spec.match_file(relative):
                    return True
        return False


def _listed(root: Path, start: Path) -> tuple[list[str], set[str]]:
    """(the files that ship, the directories the ignore rules dropped)."""
    rules = _IgnoreRules()
    for above in _enclosing(root, start):
        rules.read(above)
    files: list[str] = []
    pruned: set[str] = set()
    total = 0
    for folder, dirs, names in os.walk(start):
        here = Path(folder)
        rules.read(here)
        kept = []
        for d in sorted(d for d in dirs if d not in NEVER_SHIPPED):
            if rules.ignores(here / d, directory=True):
                pruned.add((here / d).relative_to(root).as_posix())
            else:
                kept.append(d)
        dirs[:] = kept
        for name in sorted(names):
            relative = (here / name).relative_to(root).as_posix()
            if name.endswith(".pyc") or rules.ignores(here / name):
                continue
            total += (here / name).stat().st_size
            if total > ARCHIVE_LIMIT:
                raise KitaruUsageError(
                    f"the source tree at {root} holds more than {ARCHIVE_LIMIT // 2**20} MB "
                    f"(reached at {relative}); list what the flow need not run with in "
                    f"{root / IGNORE_FILE}, or use `code: path` and ship the code in the image"
                )
            files.append(relative)
    return sorted(files), pruned


def pack(tree: SourceTree) -> bytes:
    """The tree as a gzipped tar with nothing in it but paths, contents and the
    executable bit: the same tree always packs to the same bytes."""
    import gzip
    import tarfile

    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for relative in tree.files:
            path = tree.root / relative
            data = path.read_bytes()
            info = tarfile.TarInfo(relative)
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def archive_for(
    flow: FlowDefinition[Any, Any], stack: Stack, store: MetadataStore, exec_id: str
) -> tuple[SourceTree, ArtifactRecord]:
    """The flow's tree stored (once) in the stack's artifact store: the tree, and the
    artifact record that keeps it for execution ``exec_id`` (to commit with it)."""
    tree = source_tree(flow)
    place = (stack.artifacts.store.uri(""), tree.digest)
    found = store.code_archive_key(tree.digest)
    if found is not None and (place in _stored or stack.artifacts.store.exists(found[0])):
        key, size = found
    else:
        data = pack(tree)
        key, size = hashlib.sha256(data).hexdigest(), len(data)
        stack.artifacts.put_blob(key, data, "the code archive")
    _stored.add(place)
    record = ArtifactRecord(
        id=new_row_id(),
        exec_id=exec_id,
        name=ROLE,
        role=ROLE,
        key=key,
        serializer=SERIALIZER,
        type_ref="tar.gz",
        size=size,
        created_at=time.time(),
        artifact_type="code",
        tags=[tree.digest],
    )
    return tree, record


def archived_flow(record: ExecutionRecord, stack: Stack) -> FlowDefinition[Any, Any]:
    """The flow of ``record`` as its code archive has it (already verified and signed)."""
    if record.flow_ref in registry:  # this process defined it: the code it archived
        return registry[record.flow_ref]
    digest = record.code_archive
    assert digest is not None
    unpacked = _unpacked(record, stack, digest)
    source, _, qualname = record.flow_ref.rpartition(":")
    if record.options.get("source_root"):  # a module: the tree is its sys.path entry
        top = source.split(".")[0]
        loaded = getattr(sys.modules.get(top), "__file__", None)
        if loaded and not Path(loaded).resolve().is_relative_to(unpacked.resolve()):
            raise KitaruUsageError(
                f"execution {record.id} runs code archive {digest[:12]}, but this process "
                f"already imported {top!r} from {loaded}; run it in a process of its own "
                f"(`kitaru executions resume {record.id}`), or move it to that code with "
                "--code current"
            )
        if str(unpacked) not in sys.path:
            sys.path.insert(0, str(unpacked))  # before the image's own copy, if it has one
        return resolve_flow(record.flow_ref)
    original_root = record.options.get("code_root") or os.path.dirname(source)
    script = (unpacked / os.path.relpath(source, original_root)).resolve()
    if not script.is_relative_to(unpacked.resolve()) or not script.is_file():
        raise KitaruBackendError(
            f"execution {record.id}: its script {source} is not in its code archive "
            f"{digest[:12]}; nothing was run. Move it to today's code with "
            f"`kitaru executions retry {record.id} --code current`"
        )
    return resolve_flow(f"{script}:{qualname}")


def _unpacked(record: ExecutionRecord, stack: Stack, digest: str) -> Path:
    """The archive's tree on this machine, unpacked once and checked file by file."""
    target = load_settings().home / "code" / digest
    if target.is_dir():
        print(f"kitaru: running code archive {digest[:12]}", file=sys.stderr, flush=True)
        return target
    archives = get_store().list_artifacts(record.id, role=ROLE)
    if not archives:
        raise KitaruBackendError(
            f"execution {record.id} runs code archive {digest[:12]}, but the metadata "
            "store holds no archive for it; nothing was run. Move it to today's code with "
            f"`kitaru executions retry {record.id} --code current`"
        )
    import tarfile

    data = stack.artifacts.read_bytes(archives[-1])  # its bytes checked against their hash
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(staging, filter="data")
        files = sorted(
            (Path(folder) / name).relative_to(staging).as_posix()
            for folder, _dirs, names in os.walk(staging)
            for name in names
        )
        if tree_digest(staging, files) != digest:
            raise KitaruBackendError(
                f"the code archive of execution {record.id} does not hold the tree it "
                f"recorded ({digest[:12]}); nothing was run. Move it to today's code with "
                f"`kitaru executions retry {record.id} --code current`"
            )
        with contextlib.suppress(OSError):  # another run unpacked it meanwhile: the same
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(
        f"kitaru: running code archive {digest[:12]} (downloaded from "
        f"{stack.artifacts.store.uri(archives[-1].key)})",
        file=sys.stderr,
        flush=True,
    )
    return target
