"""A runner's stdout and stderr, shipped to the metadata store as it runs.

A runner in a pod (or a detached process) prints where nobody keeps it for long: the
pod's log goes with its Job. So the runner points file descriptors 1 and 2 at a pipe;
a thread copies what comes through to where it went before (``kubectl logs`` still
shows it) and, about once a second, appends it to the execution's output in the store,
which ``kitaru executions logs`` reads. Descriptors, not ``sys.stdout``: what C
extensions and child processes print is kept too.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
import threading
from collections.abc import Iterator

from kitaru_core.errors import KitaruError
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.run_output import MAX_BYTES_PER_RUN

SHIP_OUTPUT_VARIABLE = "KITARU_SHIP_OUTPUT"
"""``0``: the runner's output stays where it goes (the local orchestrator's runners
write to the execution's log on this machine already)."""
SHIP_SECONDS = 1.0
SHIP_BYTES = 64 * 1024
"""Shipped at least this often, or as soon as this much is waiting."""


class _Shipper:
    def __init__(self, store: MetadataStore, exec_id: str, run: int, echo_fd: int) -> None:
        self.store, self.exec_id, self.run, self.echo_fd = store, exec_id, run, echo_fd
        self.pending: list[str] = []
        self.pending_bytes = 0
        self.shipped_bytes = 0
        self.lock = threading.Lock()
        self.more = threading.Event()
        self.done = threading.Event()

    def read_from(self, fd: int) -> None:
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        while chunk := os.read(fd, 65536):
            with contextlib.suppress(OSError):
                os.write(self.echo_fd, chunk)
            self.keep(decode(chunk))
        self.keep(decode(b"", final=True))
        os.close(fd)

    def keep(self, text: str) -> None:
        if not text:
            return
        with self.lock:
            self.pending.append(text)
            self.pending_bytes += len(text)
            if self.pending_bytes >= SHIP_BYTES:
                self.more.set()

    def ship_until_done(self) -> None:
        while not self.done.is_set():
            self.more.wait(SHIP_SECONDS)
            self.more.clear()
            self.ship()
        self.ship()

    def ship(self) -> None:
        with self.lock:
            text, self.pending, self.pending_bytes = "".join(self.pending), [], 0
        room = MAX_BYTES_PER_RUN - self.shipped_bytes
        if not text or room <= 0:
            return
        if len(text) > room:
            text = text[:room] + (
                f"\n(output past {MAX_BYTES_PER_RUN:,} bytes is not kept in the store; "
                "the log where the run ran has it)\n"
            )
        try:
            self.store.output.append(self.exec_id, self.run, text)
        except KitaruError:  # the store is away: keep it for the next try
            with self.lock:
                self.pending.insert(0, text)
                self.pending_bytes += len(text)
            return
        self.shipped_bytes += len(text)


@contextlib.contextmanager
def shipped_output(store: MetadataStore, exec_id: str, run: int) -> Iterator[None]:
    """Within it, all this process prints goes to the store too (see the module)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    echo_fd = os.dup(1)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    read_fd, write_fd = os.pipe()
    for fd in (1, 2):
        os.dup2(write_fd, fd)
    os.close(write_fd)
    # A pipe makes Python buffer stdout in blocks; lines keep a killed run's last words.
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    shipper = _Shipper(store, exec_id, run, echo_fd)
    reader = threading.Thread(target=shipper.read_from, args=(read_fd,), daemon=True)
    sender = threading.Thread(target=shipper.ship_until_done, daemon=True)
    reader.start()
    sender.start()
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
        for fd, original in saved.items():  # the pipe's last writer goes: the reader ends
            os.dup2(original, fd)
            os.close(original)
        reader.join(5)  # a child process that still holds the pipe: stop waiting
        shipper.done.set()
        shipper.more.set()
        sender.join(10)
        os.close(echo_fd)
