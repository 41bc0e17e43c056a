"""What wakes an idle worker before its next poll.

A worker asks the store what is due once per poll (1 s by default). These should not
wait that long:

- **A runner on this host dies.** The worker keeps a pidfd (Linux) for each process on
  its host that holds a running execution's lease, and wakes the moment one ends; where
  pidfds are missing, it looks at those processes every ``TICK``. It learns of runners
  from each pass, and between passes from the store itself (below). So a runner killed
  a moment after it started is noticed at once.
- **The store says there is work.** PostgreSQL notifies listening workers (``LISTEN
  kitaru_work``, sent by a trigger: migration 0012) when a process takes a lease, an
  execution is queued, one of a queue ends, or a wait is answered; the worker makes a
  pass. SQLite cannot notify, so the worker watches the database's files (inotify) and,
  after a write, asks which processes run executions now. Either way at most once a
  ``TICK``, and an idle store wakes nobody.
- **Something in this worker says so** (``Wakeups.nudge``: a run ended and a place is
  free, or the worker is stopping). A pipe, so a wait on the descriptors wakes for it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Iterable
from typing import Any

from kitaru_core.runtime import lease
from kitaru_core.store.database import libpq_url, sqlite_path
from kitaru_core.store.metadata_store import MetadataStore

TICK = 0.05
"""Seconds between looks at the store while it is busy, and at runners without a pidfd."""
RELISTEN_SECONDS = 5.0
"""How soon a worker whose notification connection broke (a database restart) tries
again; meanwhile its polls still find everything."""
CHANNEL = "kitaru_work"

log = logging.getLogger("kitaru.worker")


class Wakeups:
    def __init__(self, store: MetadataStore, stack: str) -> None:
        self._store = store
        self._stack = stack
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._pidfds: dict[str, int | None] = {}
        """Lease owner -> pidfd of its process (None: none could be opened)."""
        self._dead: set[str] = set()
        self._next_look = 0.0
        self._writes = _store_writes(store)
        self._db_name = sqlite_path(store.db.url).name if self._writes is not None else ""
        self._listener: Any = None
        self._next_listen = 0.0

    def close(self) -> None:
        self.watch(())
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._read = self._write = -1  # a late nudge must not write into a reused fd
        if self._writes is not None:
            self._writes.close()
        self._stop_listening()

    def nudge(self) -> None:
        """Wake the waiting loop now; safe from any thread."""
        if self._write >= 0:
            with contextlib.suppress(OSError):  # the pipe is full: it wakes anyway
                os.write(self._write, b"\0")

    def watch(self, owners: Iterable[str]) -> None:
        """Watch exactly these lease owners' processes (those on this host, other than
        this one); owners elsewhere are judged by their heartbeats, in the pass. An owner
        already seen to die is not watched again: the pass that followed acted on it,
        or will in its own time (a recovery's backoff)."""
        owners = set(owners)
        wanted = {
            owner
            for owner in owners - self._dead
            if lease.on_this_host(owner) and lease.pid_of(owner) != os.getpid()
        }
        for owner in set(self._pidfds) - wanted:
            self._forget(owner)
        for owner in wanted - set(self._pidfds):
            self._pidfds[owner] = _pidfd(lease.pid_of(owner))
        self._dead &= owners  # an owner that holds nothing any more is forgotten

    def wait(self, timeout: float) -> None:
        """Until ``timeout`` seconds pass, a nudge, a watched runner dies, or the store
        says there is work."""
        deadline = time.monotonic() + timeout
        self._listen()
        told = False  # the store changed since the last look
        while (remaining := deadline - time.monotonic()) > 0:
            by_fd = {fd: owner for owner, fd in self._pidfds.items() if fd is not None}
            store_fd = self._store_fd()
            fds = [self._read, *by_fd]
            if told:  # look once a tick has passed since the last look
                remaining = min(remaining, max(0.0, self._next_look - time.monotonic()))
            elif store_fd is not None:
                fds.append(store_fd)
            if len(by_fd) < len(self._pidfds):
                remaining = min(remaining, TICK)
            ready, _, _ = select.select(fds, [], [], remaining)
            if self._read in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._read, 512):
                        pass
                return
            if store_fd is not None and store_fd in ready:
                told = self._store_told() or told
            died = [by_fd[fd] for fd in ready if fd in by_fd]
            if told and time.monotonic() >= self._next_look:
                told = False
                self._next_look = time.monotonic() + TICK
                if self._listener is not None:
                    return  # PostgreSQL named work: a pass acts on it
                self.watch(self._store.running_owners(self._stack))
            died += self._died_without_pidfd()
            if died:
                self._dead.update(died)
                for owner in died:
                    self._forget(owner)
                return

    def _forget(self, owner: str) -> None:
        fd = self._pidfds.pop(owner, None)
        if fd is not None:
            os.close(fd)

    def _died_without_pidfd(self) -> list[str]:
        """Watched runners without a pidfd that are gone (by pid and start time)."""
        return [
            owner
            for owner, fd in self._pidfds.items()
            if fd is None and not lease.owner_is_alive(owner, None)
        ]

    # -- what the store says ---------------------------------------------------------

    def _store_fd(self) -> int | None:
        if self._writes is not None:
            return int(self._writes.fileno())
        if self._listener is not None:
            return int(self._listener.fileno())
        return None

    def _store_told(self) -> bool:
        """Read what made the store's descriptor ready: True if it concerns this worker."""
        if self._writes is not None:
            events = self._writes.read(timeout=0)
            return any(e.name.startswith(self._db_name) for e in events)
        try:
            return any(n.payload == self._stack for n in self._listener.notifies(timeout=0))
        except Exception as exc:  # the connection broke: polls go on; listen again later
            log.warning("stopped listening for work (%s); polling until it is back", exc)
            self._stop_listening()
            return True  # a pass now says whether the database is back

    def _listen(self) -> None:
        """On PostgreSQL, hold a connection that listens for work (again, after a break)."""
        if (
            self._store.db.dialect != "postgresql"
            or self._listener is not None
            or time.monotonic() < self._next_listen
        ):
            return
        self._next_listen = time.monotonic() + RELISTEN_SECONDS
        import psycopg

        try:
            conn = psycopg.connect(
                libpq_url(self._store.db.url), autocommit=True, connect_timeout=5
            )
        except psycopg.Error:
            return  # the database is down: the passes say so; try again later
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error:
            conn.close()
            return
        self._listener = conn

    def _stop_listening(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.close()
            self._listener = None


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when process ``pid`` ends; None where the
    system has no pidfds, or the process is already gone (then it is looked at)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _store_writes(store: MetadataStore) -> Any:
    """An inotify watch on a SQLite store's directory (a commit writes the database or
    its write-ahead log there); None on PostgreSQL, or where inotify is missing."""
    if store.db.dialect != "sqlite":
        return None
    try:
        from inotify_simple import INotify, flags
    except ImportError:  # not Linux: passes alone find new runners
        return None
    watch = INotify(nonblocking=True)
    try:
        watch.add_watch(sqlite_path(store.db.url).parent, flags.MODIFY)
    except OSError:
        watch.close()
        return None
    return watch
