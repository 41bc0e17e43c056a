"""Which executions' code a worker has, so it continues only those it can run as they
started: a worker deployed with new code leaves executions of the old code to a worker
that still runs it (or to ``kitaru executions upgrade``), instead of failing them with a
divergence.

A worker has a version when it was told so (``--code-version``), or when the flow as
this worker imports it has that version (``runtime/code_version.py``). Executions that
carry their code (``code: archive``), or were recorded before versions, run anywhere;
``--any-version`` turns the check off. Where the worker does not run the code itself
(an orchestrator that runs it elsewhere) and was told no version, it cannot know what
the runs will import, and checks nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kitaru_core.errors import KitaruUntrustedError
from kitaru_core.runtime import trust
from kitaru_core.runtime.code_version import code_version_of
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import ExecutionRecord


class CodeVersions:
    def __init__(
        self, declared: Iterable[str] = (), *, any_version: bool = False, imports: bool = True
    ) -> None:
        self.declared = set(declared)
        self.any_version = any_version
        self.imports = imports
        """Whether this worker runs the code itself, so its own import tells its version."""
        self._own: dict[str, str | None] = {}
        """This worker's version of each flow reference it looked at (None: it cannot
        import that flow)."""

    @property
    def checks(self) -> bool:
        return not self.any_version and (self.imports or bool(self.declared))

    def has(self, record: ExecutionRecord) -> bool:
        """Whether this worker may continue ``record``."""
        if not self.checks or record.code_version is None or record.code_archive is not None:
            return True
        if record.code_version in self.declared:
            return True
        try:
            trust.check_trusted(record)
        except KitaruUntrustedError:
            return True  # its run refuses it, and fails it saying why
        return self.own(record) == record.code_version

    def own(self, record: ExecutionRecord) -> str | None:
        if not self.imports:
            return None
        if record.flow_ref not in self._own:
            try:
                self._own[record.flow_ref] = code_version_of(trust.current_flow(record))
            except Exception:  # not importable here: not this worker's code
                self._own[record.flow_ref] = None
        return self._own[record.flow_ref]

    def look_at(self, store: MetadataStore, stack: str) -> None:
        """Learn this worker's version of every flow with unfinished executions of its
        stack, so its heartbeat says what it runs before any of them is due."""
        if not self.imports or not self.checks:
            return
        for record in store.unfinished_flows(stack):
            self.own(record)

    def published(self) -> list[str] | None:
        """What the worker's heartbeat says it runs: None for any version."""
        if not self.checks:
            return None
        return sorted(self.declared | {v for v in self._own.values() if v is not None})


def unserved(store: MetadataStore, workers: list[Any]) -> list[dict[str, Any]]:
    """Unfinished executions whose code no live worker of their stack runs, by stack and
    version: what ``kitaru worker status`` warns of. ``workers``: the live ones."""
    rows = store.unfinished_code_versions()
    found = []
    for stack, version, count in rows:
        serving = [w for w in workers if w.stack == stack]
        if not serving:
            continue  # no worker at all: `worker status` says so otherwise
        runs = [w.counts.get("code_versions") for w in serving]
        if any(v is None or version in v for v in runs):
            continue
        found.append({"stack": stack, "code_version": version, "executions": int(count)})
    return found
