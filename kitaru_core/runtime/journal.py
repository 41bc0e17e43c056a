"""The journal as a running flow body walks it: read a page at a time, so the memory a
run holds stays flat however many checkpoints its execution has."""

from __future__ import annotations

import threading

from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import ArtifactRecord, JournalEntry

Recorded = tuple[JournalEntry, ArtifactRecord | None]


class JournalReader:
    PAGE_SIZE = 256

    def __init__(self, store: MetadataStore, exec_id: str) -> None:
        self._store = store
        self._exec_id = exec_id
        self.last_position = store.last_position(exec_id)
        """The highest position recorded before this run (-1 for none)."""
        self._pages: dict[int, dict[int, Recorded]] = {}
        self._lock = threading.Lock()

    def get(self, position: int) -> Recorded | None:
        """The entry (with its output's record) recorded at ``position`` by an earlier run."""
        if position > self.last_position:
            return None
        page = position // self.PAGE_SIZE
        with self._lock:
            entries = self._pages.get(page)
            if entries is None:
                low = page * self.PAGE_SIZE
                rows = self._store.journal_page(self._exec_id, low, low + self.PAGE_SIZE)
                entries = {entry.position: (entry, output) for entry, output in rows}
                self._pages[page] = entries
                # Calls move forward; keep the page before for submits still in flight.
                for old in [p for p in self._pages if p < page - 1]:
                    del self._pages[old]
        return entries.get(position)
