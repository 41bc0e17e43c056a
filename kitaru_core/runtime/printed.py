"""What a flow prints and logs while it runs in a process that runs other things too (a
script, a notebook, ``kitaru serve``'s worker threads), kept in its execution's output
in the store beside where it went: ``kitaru executions logs`` and the web UI's log show
it.

A runner process of its own (a pod, a detached runner) keeps its output by other means
(``output.py`` ships its descriptors; the local orchestrator's runners write to the
log file), and turns this off. Here ``sys.stdout`` and ``sys.stderr`` are wrapped once;
what is written while an execution runs in the writing thread or task (a context
variable, so parallel runs in one process are told apart) goes to that run's output
too. ``logging`` records emitted inside a run are kept the same way, each with its time
and zone. Kept text is shipped about once a second, and when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TextIO

from kitaru_core.errors import KitaruError
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.run_output import MAX_BYTES_PER_RUN

SHIP_SECONDS = 1.0
_Run = tuple[MetadataStore, str, int]
_running: ContextVar[_Run | None] = ContextVar("kitaru_printing_run", default=None)
kept_elsewhere = False
"""True in a runner process, whose whole output is kept by other means."""


class _Kept:
    """Text waiting to be shipped, per run, and the thread that ships it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, int], list[str]] = {}
        self.stores: dict[tuple[str, int], MetadataStore] = {}
        self.shipped: dict[tuple[str, int], int] = {}
        self.thread: threading.Thread | None = None

    def add(self, run: _Run, text: str) -> None:
        store, exec_id, number = run
        key = (exec_id, number)
        with self.lock:
            self.pending.setdefault(key, []).append(text)
            self.stores[key] = store
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._ship_forever, name="kitaru-printed", daemon=True
                )
                self.thread.start()

    def _ship_forever(self) -> None:
        while True:
            time.sleep(SHIP_SECONDS)
            with self.lock:
                keys = list(self.pending)
            for key in keys:
                self.ship(key)

    def ship(self, key: tuple[str, int], *, last: bool = False) -> None:
        with self.lock:
            text = "".join(self.pending.pop(key, []))
            store = self.stores.get(key)
            if last:
                self.stores.pop(key, None)
            shipped = self.shipped.pop(key, 0) if last else self.shipped.get(key, 0)
        room = MAX_BYTES_PER_RUN - shipped
        if not text or store is None or room <= 0:
            return
        if len(text) > room:
            text = text[:room] + f"\n(output past {MAX_BYTES_PER_RUN:,} bytes is not kept)\n"
        try:
            store.output.append(key[0], key[1], text)
        except KitaruError:  # the store is away: the text is lost, the run goes on
            return
        if not last:
            with self.lock:
                self.shipped[key] = shipped + len(text)


_kept = _Kept()


class _Tee:
    """A text stream that also keeps what a running flow writes to it."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        run = _running.get()
        if run is not None and text and not _logging_writes():
            _kept.add(run, text)
        return self._inner.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _logging_writes() -> bool:
    """Whether this write comes from a logging handler (Kitaru's own log lines, or a
    record a handler prints): records are kept by ``_RunLogs``, once, in one form."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__") == "logging":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class _RunLogs(logging.Handler):
    """``logging`` records of a running flow, with their time and zone; Kitaru's own
    records are in the execution's log already."""

    def emit(self, record: logging.LogRecord) -> None:
        run = _running.get()
        if run is None or record.name == "kitaru" or record.name.startswith("kitaru."):
            return
        at = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.created))
        try:
            line = f"{at} {record.levelname} {record.name}: {record.getMessage()}\n"
        except Exception:  # a record whose arguments do not fit its message
            line = f"{at} {record.levelname} {record.name}: {record.msg!r}\n"
        _kept.add(run, line)
        # This handler on the root must not silence what Python prints by itself when a
        # program configured no logging (warnings and errors to stderr).
        last_resort = logging.lastResort
        loud = last_resort is not None and record.levelno >= last_resort.level
        if loud and last_resort is not None and not _handled_elsewhere(record):
            last_resort.handle(record)


def _handled_elsewhere(record: logging.LogRecord) -> bool:
    """Whether a handler besides this one takes ``record`` (as logging looks them up)."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not _handler for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


_handler = _RunLogs()
_install_lock = threading.Lock()


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Tee):
            sys.stdout = _Tee(sys.stdout)
        if not isinstance(sys.stderr, _Tee):
            sys.stderr = _Tee(sys.stderr)
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)


@contextlib.contextmanager
def kept(store: MetadataStore, exec_id: str, run: int) -> Iterator[None]:
    """Within it, what this thread or task prints and logs goes to the run's output."""
    if kept_elsewhere:
        yield
        return
    _install()
    token = _running.set((store, exec_id, run))
    try:
        yield
    finally:
        _running.reset(token)
        _kept.ship((exec_id, run), last=True)
