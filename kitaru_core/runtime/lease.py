"""Leases: at most one process runs an execution at a time.

The lease is a row field (owner, heartbeat), taken by compare-and-swap, so it lives in
whatever database the executions share. It outlives its owner's death safely: an owner
on this host is dead when its process is gone (checked by pid and start time, so a
reused pid does not count), and an owner elsewhere when its heartbeat is older than
``LEASE_TTL``.

"This host" means the same machine *and* the same PID namespace: containers often share
a hostname while each numbers its processes from 1, so a pid means nothing outside its
namespace. The owner id's host part is the hostname plus a digest of the boot id and the
PID namespace; anything else is judged by its heartbeat.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid

from kitaru_core.errors import KitaruStateError
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import Status

LEASE_TTL = 30.0
HEARTBEAT_INTERVAL = 5.0
RETRY_FIRST = 0.25
"""Seconds before the first retry of a failed renewal (then doubling, up to the interval)."""

log = logging.getLogger("kitaru.lease")


def _host_id() -> str:
    """``hostname/digest``: processes whose pids can be checked from here share it."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # no /proc (not Linux): the hostname is all there is
        boot = namespace = ""
    digest = hashlib.sha256(f"{boot}|{namespace}".encode()).hexdigest()[:10]
    return f"{socket.gethostname()}/{digest}"


HOST_ID = _host_id()


def _process_stat(pid: int) -> tuple[str, str]:
    """(state, start time in clock ticks since boot) of a process; ('', '') where /proc
    is absent or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "", ""
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = stat.rsplit(b")", 1)[1].split()
    return fields[0].decode(), fields[19].decode()


def _process_start_ticks(pid: int) -> str:
    return _process_stat(pid)[1]


_SELF = f"{HOST_ID}:{os.getpid()}:{_process_start_ticks(os.getpid())}"


def new_owner() -> str:
    """A lease owner id: host (and PID namespace), pid, process start time, and a random
    nonce for this run."""
    return f"{_SELF}:{uuid.uuid4().hex[:8]}"


def owner_is_alive(owner: str, heartbeat: float | None, now: float | None = None) -> bool:
    host, pid_text, start, _nonce = owner.rsplit(":", 3)
    if host == HOST_ID:
        pid = int(pid_text)
        if pid == os.getpid():
            return True  # a run in this very process (another thread) is alive
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        state, ticks = _process_stat(pid)
        if state in ("Z", "X"):
            return False  # exited, and not yet reaped by its parent: it runs nothing
        return not start or ticks in (start, "")
    return heartbeat is not None and (now or time.time()) - heartbeat < LEASE_TTL


def on_this_host(owner: str) -> bool:
    return owner.rsplit(":", 3)[0] == HOST_ID


def pid_of(owner: str) -> int:
    return int(owner.rsplit(":", 3)[1])


def describe_owner(owner: str) -> str:
    host, pid, _start, _nonce = owner.rsplit(":", 3)
    return f"process {pid} on {host.split('/')[0]}"


def claim(store: MetadataStore, exec_id: str) -> str:
    """Take the execution's lease or raise ``KitaruStateError`` if a live process holds it."""
    owner = new_owner()
    for _ in range(5):
        record = store.get_execution(exec_id)
        if record is None:
            raise KitaruStateError(f"execution {exec_id} disappeared while being claimed")
        held_by = record.lease_owner
        if held_by is not None and owner_is_alive(held_by, record.lease_heartbeat):
            raise KitaruStateError(
                f"execution {exec_id} is already being run by {describe_owner(held_by)}; "
                "wait for it to finish, or cancel it with `kitaru executions cancel "
                f"{exec_id}`"
            )
        if store.claim_lease(exec_id, owner, observed_owner=held_by):
            return owner
    raise KitaruStateError(f"execution {exec_id} is being claimed by another process; try again")


class Heartbeat:
    """Keeps a lease fresh from a daemon thread and notices cancellation.

    It writes only the heartbeat: journal entries are never written in the background.
    A renewal that fails (the database restarting, a dropped connection) is tried again
    sooner, with backoff, for as long as the run goes on: a heartbeat that stopped would
    let another process take over an execution that still runs. Should the lease be
    lost anyway, the run's next journal write is refused (``record_entry``'s fence).
    """

    def __init__(self, store: MetadataStore, exec_id: str, owner: str) -> None:
        self._store = store
        self._exec_id = exec_id
        self._owner = owner
        self._stop = threading.Event()
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.failures = 0
        """Renewals that failed in a row (0 once one succeeds)."""
        self._thread = threading.Thread(
            target=self._run, name=f"kitaru-heartbeat-{exec_id[:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        delay = HEARTBEAT_INTERVAL
        while not self._stop.wait(delay):
            try:
                status = self._store.renew_lease(self._exec_id, self._owner)
            except Exception as exc:
                self.failures += 1
                delay = min(HEARTBEAT_INTERVAL, RETRY_FIRST * 2 ** (self.failures - 1))
                log.warning(
                    "renewing the lease of execution %s failed (%d in a row; next try in "
                    "%.1f s): %s",
                    self._exec_id,
                    self.failures,
                    delay,
                    exc,
                )
                continue
            self.failures, delay = 0, HEARTBEAT_INTERVAL
            if status is None:
                self.lost.set()
                self.cancelled.set()
                return
            if status == Status.CANCELLED:
                self.cancelled.set()
