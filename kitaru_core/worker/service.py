"""``kitaru worker``: the loop that makes a stack run by itself.

Each pass asks the metadata store one question (``due_work``) and acts on the answer,
in this order: (1) recovery: running executions whose process died (same host: the
process is gone; another host: its heartbeat is stale), resumed with backoff; a
runner that dies alone at the same step more than ``max_recoveries`` times in a row is
failed with the reason (what counts: ``kitaru_core/store/deaths.py``); (2) due timers,
expired waits, and answered waits that nobody resumed (``executions input --no-resume``,
or the process that answered died before it resumed); (3) due schedule slots; (4) queued executions, within their flow's
limits; (5) retention, when the stack sets ``retention_days``.

Every item is claimed in the store by compare-and-set before anything runs it, so any
number of workers on any hosts may share one store. On a stack whose orchestrator runs
executions on this machine, the worker runs what it claims in its own threads
(``--concurrency``); otherwise it hands each to the orchestrator (a Kubernetes Job).
Between passes it sleeps until the next poll, or until the earliest timer it knows of;
a runner on its host that dies wakes it at once (``wakeups.py``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kitaru_core import clock as clocks
from kitaru_core.errors import KitaruBackendError, KitaruError, KitaruStateError
from kitaru_core.runtime import lease, trust
from kitaru_core.runtime.dispatch import admit_and_hand_off, continue_later, run_in_background
from kitaru_core.runtime.engine import run_execution
from kitaru_core.runtime.logs import log_event
from kitaru_core.runtime.orchestration import fail_execution
from kitaru_core.stack_registry import get_stack
from kitaru_core.store.deaths import Death
from kitaru_core.store.metadata_store import get_store
from kitaru_core.store.records import ExecutionRecord, Status
from kitaru_core.worker import retention, schedules
from kitaru_core.worker.liveness import IDLE_BEAT_SECONDS
from kitaru_core.worker.versions import CodeVersions
from kitaru_core.worker.wakeups import Wakeups

DEFAULT_POLL = 1.0
DEFAULT_CONCURRENCY = 8
ORPHAN_SECONDS = lease.LEASE_TTL
"""A running execution nobody took the lease of this long after it was claimed (its
runner never started) is recovered."""
BEAT_SECONDS = 1.0
"""How soon what a busy worker did shows in ``kitaru worker status`` (one write at most
a second, and only when its counts changed)."""
PRUNE_SECONDS = 3600.0
RECONCILE_SECONDS = 30.0
"""How often the orchestrator is asked to put right what runs that should not (a Job of
a cancelled execution): one listing of the cluster, not one per pass."""
_WOKEN_BECAUSE = {
    "timer": ("its timer fired", "timers"),
    "expired": ("its wait expired", "expired_waits"),
    "answered": ("its wait was answered and nobody resumed it", "answered_waits"),
}
"""What ``MetadataStore.wake`` says happened: the log's words and the count it adds to."""
FORGET_WORKERS_SECONDS = 7 * 86400.0


def recovery_backoff(recoveries: int) -> float:
    """Seconds to let pass since the last sign of life before recovering again."""
    return 0.0 if recoveries == 0 else min(60.0, 2.0 ** (recoveries - 1))


class Worker:
    def __init__(
        self,
        *,
        stack: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        poll: float = DEFAULT_POLL,
        clock: clocks.Clock | None = None,
        log: Callable[[str], None] | None = None,
        orphan_seconds: float = ORPHAN_SECONDS,
        heartbeat_file: Path | None = None,
        code_versions: list[str] | None = None,
        any_version: bool = False,
    ) -> None:
        if concurrency < 1:
            raise KitaruError(f"worker concurrency must be 1 or more, not {concurrency}")
        if not poll > 0:
            raise KitaruError(f"worker poll interval must be above 0 seconds, not {poll}")
        self.store = get_store()
        self.stack = get_stack(stack)
        self.concurrency = concurrency
        self.poll = poll
        self.clock = clock or clocks.clock()
        self.orphan_seconds = orphan_seconds
        self.heartbeat_file = heartbeat_file
        self.id = lease.new_owner()
        self.started_at = time.time()
        self.counts: Counter[str] = Counter()
        self.lag = 0.0
        """How late the last due item was acted on, in seconds."""
        self._log = log or _print_line
        self._pool = (
            ThreadPoolExecutor(concurrency, thread_name_prefix="kitaru-worker")
            if self.stack.orchestrator.runs_in_worker
            else None
        )
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wakeups = Wakeups(self.store, self.stack.name)
        self._last_beat = 0.0
        self._beaten_news: dict[str, int] = {}
        self._last_prune = 0.0
        self._last_reconcile = -RECONCILE_SECONDS
        self._schedule_errors: dict[str, str] = {}
        self.versions = CodeVersions(
            code_versions or (),
            any_version=any_version,
            imports=self.stack.orchestrator.runs_in_worker,
        )
        self._left_versions: set[str] = set()
        self._not_signed_here: set[str] = set()

    # -- the loop --------------------------------------------------------------------

    def run_forever(self) -> None:
        """Pass after pass until SIGTERM or Ctrl-C; in-flight runs are let finish."""
        self._install_signal_handlers()
        self.store.workers.forget_older_than(time.time() - FORGET_WORKERS_SECONDS)
        self._log(
            f"worker {lease.describe_owner(self.id)} on stack {self.stack.name!r}: polling "
            f"every {self.poll:g} s, {self.concurrency} at a time"
        )
        try:
            while not self._stop.is_set():
                self._touch_heartbeat_file()  # a pass that fails is not a stuck worker
                try:
                    earliest = self.run_pass()
                    timeout = self.poll
                    if earliest is not None:
                        timeout = min(timeout, max(0.0, earliest - self.clock.now()))
                    self._wakeups.wait(timeout)  # it may look at the store too
                except KitaruBackendError as exc:  # the database restarting: try again
                    self.counts["errors"] += 1
                    self._log(f"pass failed, trying again in {self.poll:g} s: {exc}")
                    self._stop.wait(self.poll)
        finally:
            self.close()

    def _touch_heartbeat_file(self) -> None:
        if self.heartbeat_file is not None:
            with contextlib.suppress(OSError):
                self.heartbeat_file.touch()

    def run_once(self) -> Counter[str]:
        """One pass, then wait for what it started in this process to end or stop."""
        try:
            self.run_pass()
        finally:
            self.close()
        return self.counts

    def stop(self) -> None:
        self._stop.set()
        self._wakeups.nudge()

    def close(self) -> None:
        if self._pool is not None:
            if self._running:
                self._log(f"letting {len(self._running)} running execution(s) finish")
            self._pool.shutdown(wait=True)
        self._wakeups.close()
        self._beat(state="stopped")

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def run_pass(self) -> float | None:
        """Act on everything due now; returns the earliest due time still ahead that
        the store reported (so the loop can wake for it), if any."""
        now = self.clock.now()
        rows = self.store.due_work(self.stack.name, now + self.poll)
        self.counts["passes"] += 1
        earliest: float | None = None
        running, due, firing, queues = [], [], [], set()
        for row in rows:
            kind, _id, status, _owner, _beat, due_at, *_rest = row
            if status == Status.RUNNING:
                running.append(row)
            elif status == Status.QUEUED:
                queues.add(row[8])
            elif due_at is not None and due_at > now:
                earliest = due_at if earliest is None else min(earliest, due_at)
            elif kind == "schedule":
                firing.append(row)
            else:
                due.append(row)
        for row in running:
            self._guarded(row[1], self._recover_if_dead, row)
        self._wakeups.watch(row[3] for row in running if row[3] is not None)
        for row in due:
            self._guarded(row[1], self._wake, row, now)
        for row in firing:
            self._guarded(row[1], self._fire, row[1], now)
        for queue in sorted(queues):
            if self._free() > 0:
                self._guarded(queue, self._admit, queue)
        self._retain()
        self._reconcile()
        since_beat = time.time() - self._last_beat
        busy = self._news() != self._beaten_news
        if since_beat >= (BEAT_SECONDS if busy else IDLE_BEAT_SECONDS):
            self._beat()
        return earliest

    def _guarded(self, what: str, action: Callable[..., Any], *args: Any) -> None:
        """One item's failure (a database hiccup, a flow that will not import) must not
        stop the worker: log it and go on; the item is still due next pass."""
        try:
            action(*args)
        except Exception as exc:
            self.counts["errors"] += 1
            self._log(f"error on {what}: {type(exc).__name__}: {exc}")

    # -- the five kinds of work ------------------------------------------------------

    def _recover_if_dead(self, row: tuple[Any, ...]) -> None:
        _kind, exec_id, _status, owner, beat, _due, created, recoveries, _queue, _runs = row
        real_now = time.time()
        last_sign = beat if beat is not None else created
        if owner is not None:
            if lease.owner_is_alive(owner, beat, real_now):
                return
            why = f"{lease.describe_owner(owner)} died"
        else:
            if real_now - last_sign < self.orphan_seconds:
                return
            why = f"no process took it within {self.orphan_seconds:g} s"
        if real_now - last_sign < recovery_backoff(recoveries):
            return
        if owner is None and self.stack.orchestrator.starting(exec_id):
            return  # handed over, and its pod is still being scheduled or pulled
        # Where it ran may know why it died (a pod that never started, an OOM kill):
        # then it fails with that reason rather than being started again.
        reason = self.stack.orchestrator.diagnose(exec_id)
        if reason is not None:
            if fail_execution(exec_id, reason):
                self.counts["failed"] += 1
                self._log(f"failed {exec_id}: {reason}")
            return
        stopped = self.stack.orchestrator.interruption(exec_id)
        if stopped is not None:
            why = f"{why}: {stopped}"
        # What the death counts against: see kitaru_core/store/deaths.py.
        death = self.store.deaths.record(exec_id, owner) if owner is not None else None
        limit = self.stack.definition.settings.max_recoveries
        if death is not None and death.count > limit:
            self._fail_poisoned(exec_id, owner, death, why, limit)
            return
        if self._free() <= 0:
            return
        record = self.store.get_execution(exec_id)
        if record is None or not self._has_code(record):
            return

        def claim(to_status: str) -> bool:
            return self.store.dispatch(
                exec_id,
                from_status=Status.RUNNING,
                to_status=to_status,
                observed_owner=owner,
                observed_heartbeat=beat,
                recovery=True,
                death=death,
            )

        if continue_later(self.store, record, claim, self.hand_off):
            self.counts["recovered"] += 1
            if death is None:
                counted = "not counted against it"
            elif death.shared_with:
                counted = (
                    f"not counted against it: the process was running {death.shared_with} "
                    "other execution(s)"
                )
            else:
                counted = f"death {death.count} of {limit + 1} at step {death.step}"
            log_event(exec_id, f"recovered by the worker: {why} ({counted})")
            self._log(f"recovered {exec_id} ({why}; {counted})")

    def _fail_poisoned(
        self, exec_id: str, owner: str | None, death: Death, why: str, limit: int
    ) -> None:
        """Its own runner died at the same step more often than the stack allows."""
        error = {
            "type": "kitaru.ProcessDied",
            "message": f"execution {exec_id}: the process running it died {death.count} "
            f"times in a row at step {death.step} with nothing else running in it (last: "
            f"{why}); the stack allows {limit} recoveries. Find the cause in `kitaru "
            f"executions logs {exec_id}`, then `kitaru executions retry {exec_id}`",
        }
        if self.store.fail_run(exec_id, owner, error, statuses=(Status.RUNNING,)):
            self.counts["failed"] += 1
            log_event(exec_id, f"failed: {error['message']}")
            self._log(f"failed {exec_id}: {why}, {death.count} times at step {death.step}")

    def _wake(self, row: tuple[Any, ...], now: float) -> None:
        _kind, exec_id, status, _owner, _beat, due_at, *_rest = row
        if self._free() <= 0:
            return
        record = self.store.get_execution(exec_id)
        if record is None or not self._has_code(record):
            return

        why: list[str] = []

        def claim(to_status: str) -> bool:
            reason = self.store.wake(exec_id, status=status, due_by=now, to_status=to_status)
            why.extend([reason] if reason else [])
            return reason is not None

        if continue_later(self.store, record, claim, self.hand_off):
            what, count = _WOKEN_BECAUSE[why[0]]
            self.counts[count] += 1
            self.lag = max(0.0, now - due_at)
            self._log(f"woke {exec_id}: {what} ({self.lag:.3f} s after it was due)")

    def _fire(self, name: str, now: float) -> None:
        record = self.store.schedules.get(name)
        if record is None or record.paused or record.next_at > now:
            return
        try:
            started = schedules.fire(self.store, record, now, self.hand_off)
        except KitaruError as exc:
            message = str(exc)
            if self._schedule_errors.get(name) != message:  # once, not every poll
                self._schedule_errors[name] = message
                raise
            return
        self._schedule_errors.pop(name, None)
        for exec_id in started:
            self.counts["fired"] += 1
            self._log(f"fired schedule {name}: started {exec_id}")

    def _admit(self, queue: str) -> None:
        free = self._free()
        for record in admit_and_hand_off(
            self.store,
            queue,
            self.hand_off,
            at_most=None if free == sys.maxsize else free,
            accepts=self._has_code,
        ):
            self.counts["dispatched"] += 1
            self._log(f"dispatched {record.id} from queue {queue}")

    def _retain(self) -> None:
        """A page of executions older than the stack's ``retention_days`` a pass, until
        none is left: a worker with a year of history to prune still acts on due work."""
        days = self.stack.definition.settings.retention_days
        if days is None or time.time() - self._last_prune < PRUNE_SECONDS:
            return
        deleted = retention.prune(
            self.store, older_than=days * 86400, stack=self.stack.name, pages=1
        )
        if len(deleted.executions) < retention.PAGE:
            self._last_prune = time.time()  # all done: look again later
        if deleted.executions:
            self.counts["pruned"] += len(deleted.executions)
            self._log(
                f"pruned {len(deleted.executions)} execution(s) older than {days:g} days "
                f"and {len(deleted.blobs)} blob(s)"
            )

    def _has_code(self, record: ExecutionRecord) -> bool:
        """Whether this worker runs the code ``record`` started with (else it is left,
        said once per version, for a worker that does)."""
        elsewhere = record.options.get(trust.SIGNED_ELSEWHERE)
        if elsewhere and not trust.is_trusted(record, self.stack):
            # Recorded through a server by a machine whose signing key this worker does
            # not hold: that machine resumes it, or a worker given the team's key
            # (``kitaru_signing_key``). Never run, and never failed, here.
            if record.id not in self._not_signed_here:
                self._not_signed_here.add(record.id)
                self._log(
                    f"leaving {record.id} (started by token {record.started_by}) to the "
                    "machine that signed it: its flow reference is not signed with this "
                    "worker's key; give the stack the secret kitaru_signing_key to share one"
                )
            return False
        if self.versions.has(record):
            return True
        version = record.code_version or "-"
        if version not in self._left_versions:
            self._left_versions.add(version)
            self._log(
                f"leaving executions of code version {version} (such as {record.id}) to a "
                "worker that runs it; `kitaru executions upgrade --all-waiting --dry-run` "
                "says whether they would run on this code"
            )
        self.counts["other_code"] += 1
        return False

    def _reconcile(self) -> None:
        if time.monotonic() - self._last_reconcile < RECONCILE_SECONDS:
            return
        self._last_reconcile = time.monotonic()
        self._guarded("code versions", self.versions.look_at, self.store, self.stack.name)
        try:
            done = self.stack.orchestrator.reconcile()
        except KitaruError as exc:  # the cluster is away: next time
            self._log(f"could not reconcile with the orchestrator: {exc}")
            return
        for line in done:
            self.counts["reconciled"] += 1
            self._log(line)

    # -- running what was claimed ----------------------------------------------------

    def _free(self) -> int:
        if self._pool is None:
            return sys.maxsize
        with self._lock:
            return self.concurrency - len(self._running)

    def hand_off(self, record: ExecutionRecord) -> None:
        """Run a claimed execution in this worker's threads (or its stack's orchestrator).
        One that carries its code runs in a process of its own: one interpreter holds one
        version of a module."""
        if self._pool is None or record.code_archive is not None:
            run_in_background(record)
            return
        with self._lock:
            self._running.add(record.id)
        self._pool.submit(self._run, record.id)

    def _run(self, exec_id: str) -> None:
        try:
            final = run_execution(exec_id, mode="resume", unattended=True)
            self._log(f"ran {exec_id}: {final.status}")
        except KitaruStateError as exc:  # another process runs it, or it ended
            self._log(f"skipped {exec_id}: {exc}")
        except BaseException as exc:  # recorded on the execution; the worker goes on
            self._log(f"ran {exec_id}: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.discard(exec_id)
            self._wakeups.nudge()  # a place is free: look at the queues now

    def _news(self) -> dict[str, int]:
        """What the worker did, less its passes: an idle worker has no news to record
        more often than every ``IDLE_BEAT_SECONDS``."""
        return {k: v for k, v in self.counts.items() if k != "passes" and v}

    def _beat(self, state: str = "running") -> None:
        self._last_beat = time.time()
        self._beaten_news = self._news()
        with contextlib.suppress(KitaruError):
            self.store.workers.beat(
                self.id,
                self.stack.name,
                self.started_at,
                {
                    **self.counts,
                    "state": state,
                    "lag_seconds": round(self.lag, 3),
                    "code_versions": self.versions.published(),
                },
            )


def _print_line(message: str) -> None:
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    print(f"{stamp} {message}", file=sys.stderr, flush=True)
