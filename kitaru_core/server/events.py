"""Server-Sent Events from the event log.

One task per server watches the log's newest id (one cheap query per
``POLL_SECONDS``); each open stream sleeps until there is news past what it sent, then
reads the new events from the log itself. A client that reconnects with
``Last-Event-ID`` continues after that id, from the log, so it loses nothing the log
still holds.

On PostgreSQL ids are taken when a transaction inserts its event, not when it commits,
so an event with a lower id may become visible after one with a higher id. A stream
therefore stops at a gap in the ids and waits up to ``GAP_PATIENCE`` seconds for it to
fill (an id a rolled-back transaction took never will).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

from kitaru_core.errors import KitaruBackendError
from kitaru_core.server.views import event_json
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import EventRecord

POLL_SECONDS = 0.1

log = logging.getLogger("kitaru.server")
KEEPALIVE_SECONDS = 15.0
GAP_PATIENCE = 2.0
PAGE = 500


class EventHub:
    def __init__(self, store: MetadataStore, poll: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll = poll
        self.latest = 0
        self._news = asyncio.Event()

    async def watch(self) -> None:
        """Run for the server's lifetime: wake streams when the log grows."""
        while True:
            try:
                latest = await anyio.to_thread.run_sync(self.store.events.latest_id)
            except KitaruBackendError as exc:  # the database restarting: streams wait
                log.warning("reading the event log failed (tried again shortly): %s", exc)
                await asyncio.sleep(max(self.poll, 1.0))
                continue
            if latest != self.latest:
                self.latest = latest
                self._news.set()
                self._news = asyncio.Event()
            await asyncio.sleep(self.poll)

    async def news_after(self, last_id: int, timeout: float) -> bool:
        """Whether the log came to hold an id above ``last_id`` within ``timeout``."""
        if self.latest > last_id:
            return True
        news = self._news
        with anyio.move_on_after(timeout):
            await news.wait()
        return self.latest > last_id

    async def stream(self, last_id: int, *, exec_id: str | None = None) -> AsyncIterator[str]:
        """SSE text: every event after ``last_id`` (of one execution, or all), then
        each new one as it comes; a comment line keeps idle connections open."""
        yield "retry: 1000\n\n"
        gap_since: float | None = None
        while True:
            horizon = self.latest  # read first: anything above it wakes this stream
            events = await anyio.to_thread.run_sync(self._read, last_id, exec_id)
            ready = events if exec_id is not None else _contiguous(last_id, events)
            if len(ready) < len(events):
                now = time.monotonic()
                gap_since = gap_since or now
                if now - gap_since >= GAP_PATIENCE:  # an id a rollback took: move on
                    ready, gap_since = events, None
            else:
                gap_since = None
            for event in ready:
                last_id = event.id
                yield format_event(event)
            if len(ready) < len(events):
                await asyncio.sleep(self.poll)
            elif len(events) < PAGE and not await self.news_after(
                max(last_id, horizon), KEEPALIVE_SECONDS
            ):
                yield ": keepalive\n\n"

    def _read(self, last_id: int, exec_id: str | None) -> list[EventRecord]:
        return self.store.events.after(last_id, exec_id=exec_id, limit=PAGE)


def _contiguous(last_id: int, events: list[EventRecord]) -> list[EventRecord]:
    """The events that follow ``last_id`` with no id missing between them (from the
    start of the log, the first one there is)."""
    out: list[EventRecord] = []
    expected = last_id + 1 if last_id else None
    for event in events:
        if expected is not None and event.id != expected:
            break
        out.append(event)
        expected = event.id + 1
    return out


def format_event(event: EventRecord) -> str:
    data: dict[str, Any] = event_json(event)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(data)}\n\n"


def parse_last_event_id(header: str | None, query: int | None) -> int:
    if query is not None:
        return max(0, query)
    try:
        return max(0, int(header)) if header else 0
    except ValueError:
        return 0
