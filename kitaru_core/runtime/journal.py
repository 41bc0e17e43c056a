"""The journal as a running flow body walks it: read a page at a time, so the memory a
run holds stays flat however many checkpoints its execution has.

A step is found by its path (``scopes.py``). A step of the flow body's own task is
nearly always at the position its path names; a step of a concurrent task is near the
place it arrives at in this run, since a replay reaches steps in about the order they
were first recorded. Both are read from pages held here; the rare step that is
elsewhere is asked of the store by its path (an index covers only entries with one).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import ArtifactRecord, JournalEntry

Recorded = tuple[JournalEntry, ArtifactRecord | None]


class _Page(NamedTuple):
    by_position: dict[int, Recorded]
    by_path: dict[str, Recorded]
    """Entries whose path is not their position."""


class JournalReader:
    PAGE_SIZE = 256
    PAGES_HELD = 4

    def __init__(self, store: MetadataStore, exec_id: str) -> None:
        self._store = store
        self._exec_id = exec_id
        self.last_position, self._unmatched = store.journal_extent(exec_id)
        """The highest position recorded before this run (-1 for none); how many of
        the entries recorded before it no step of this run has found yet."""
        self._pages: OrderedDict[int, _Page] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, position: int) -> Recorded | None:
        """The entry (with its output's record) recorded at ``position`` by an earlier run."""
        with self._lock:
            return self._page(position).by_position.get(position)

    def find(self, path: str, arrival: int) -> Recorded | None:
        """The entry an earlier run recorded for the step at ``path``, called ``arrival``-th
        in this run (where a concurrent task's step most likely is)."""
        if self._unmatched <= 0:  # a first run, or every recorded step found already
            return None
        with self._lock:
            found = self._find(path, arrival)
            if found is not None:
                self._unmatched -= 1
        return found

    def peek(self, path: str, arrival: int) -> Recorded | None:
        """What ``find`` would answer, leaving it for the step that finds it."""
        if self._unmatched <= 0:
            return None
        with self._lock:
            return self._find(path, arrival)

    def _find(self, path: str, arrival: int) -> Recorded | None:
        if path.isdigit():  # a step of the flow body's own task
            at = self._page(int(path)).by_position.get(int(path))
            if at is not None and at[0].path is None:
                return at
        for page in self._pages.values():
            if (found := page.by_path.get(path)) is not None:
                return found
        if (found := self._page(arrival).by_path.get(path)) is not None:
            return found
        return self._store.journal_at_path(self._exec_id, path)

    def _page(self, position: int) -> _Page:
        """The page holding ``position`` (read now if it is not held; the least recently
        used page is let go)."""
        number = position // self.PAGE_SIZE
        page = self._pages.get(number)
        if page is not None:
            self._pages.move_to_end(number)
            return page
        if position > self.last_position or position < 0:
            return _EMPTY
        low = number * self.PAGE_SIZE
        rows = self._store.journal_page(self._exec_id, low, low + self.PAGE_SIZE)
        page = _Page(
            {entry.position: (entry, output) for entry, output in rows},
            {entry.path: (entry, output) for entry, output in rows if entry.path is not None},
        )
        self._pages[number] = page
        if len(self._pages) > self.PAGES_HELD:
            self._pages.popitem(last=False)
        return page


_EMPTY = _Page({}, {})
