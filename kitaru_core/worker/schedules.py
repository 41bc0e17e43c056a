"""Cron schedules: when each fires, and creating, pausing and firing them.

Slots are computed in the schedule's timezone on local wall-clock time (croniter) and
turned into instants with ``zoneinfo``, so ``0 9 * * *`` in Europe/Berlin is 09:00 in
winter and in summer. A wall time skipped by a spring-forward change fires at the
instant the clocks jump over it; a wall time repeated in the autumn fires once.

Each firing is an execution with the id ``NAME@<slot in UTC, ISO>``: an idempotent
start, so no slot runs twice whatever number of workers fire it.
"""

from __future__ import annotations

import builtins
import datetime as dt
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kitaru_core import clock
from kitaru_core.errors import KitaruUsageError
from kitaru_core.runtime.dispatch import HandOff, admit_and_hand_off, run_in_background
from kitaru_core.runtime.engine import create_execution
from kitaru_core.runtime.flow_ref import FlowDefinition, resolve_flow
from kitaru_core.stack_registry import active_stack_name, get_stack
from kitaru_core.store.metadata_store import MetadataStore, get_store
from kitaru_core.store.records import ScheduleRecord, Status
from kitaru_core.untrusted import plain_data

CATCHUP_POLICIES = ("skip", "latest", "all")
ON_TIME_SECONDS = 60.0
"""Under ``skip``, a slot still fires when found at most this late."""
MAX_CATCHUP_SLOTS = 1000
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")


if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


def zone(name: str) -> ZoneInfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # not on `import kitaru`'s path

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise KitaruUsageError(
            f"{name!r} is not a timezone; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def check_cron(expression: str) -> str:
    from croniter import croniter

    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise KitaruUsageError(
            f"{expression!r} is not a cron expression; use five fields, minute hour "
            "day-of-month month day-of-week, e.g. '0 9 * * 1-5' (09:00 on weekdays)"
        )
    return expression


def slots_after(expression: str, timezone: str, after: float) -> Iterator[float]:
    """The schedule's slots strictly after the instant ``after``, as epoch seconds."""
    from croniter import croniter

    tz = zone(timezone)
    local = dt.datetime.fromtimestamp(after, tz).replace(tzinfo=None)
    # Start a minute early: a wall time repeated in the autumn may map to an instant
    # before ``after``; those are filtered out below.
    cron = croniter(expression, local - dt.timedelta(minutes=1))
    last = after
    while True:
        wall: dt.datetime = cron.get_next(dt.datetime)
        instant = _instant(wall, tz)
        if instant > last:
            last = instant
            yield instant


def _instant(wall: dt.datetime, tz: ZoneInfo) -> float:
    """The first instant the clocks in ``tz`` show ``wall``; for a wall time skipped by
    a spring-forward change, the instant of the change."""
    first = wall.replace(tzinfo=tz, fold=0)
    if first.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return first.timestamp()
    # Skipped: fold=0 reads it with the offset before the change, which lands after it.
    # The change itself is at the wall time's hour boundary in the old offset.
    before = first.utcoffset() or dt.timedelta()
    after = wall.replace(tzinfo=tz, fold=1).utcoffset() or dt.timedelta()
    jump = wall.replace(minute=0, second=0) - min(before, after)
    return jump.replace(tzinfo=dt.UTC).timestamp()


def slot_exec_id(name: str, slot: float) -> str:
    return f"{name}@{dt.datetime.fromtimestamp(slot, dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


def slots_to_fire(record: ScheduleRecord, now: float) -> tuple[list[float], float]:
    """(the slots to fire now under the schedule's catch-up policy, its next slot after)."""
    due: list[float] = []
    upcoming = record.next_at
    if record.next_at <= now:
        due.append(record.next_at)
        for slot in slots_after(record.cron, record.timezone, record.next_at):
            if slot > now:
                upcoming = slot
                break
            due.append(slot)
            if len(due) > MAX_CATCHUP_SLOTS:
                due.pop(0)
    if record.catchup == "latest":
        due = due[-1:]
    elif record.catchup == "skip":
        due = [s for s in due if now - s <= ON_TIME_SECONDS][-1:]
    return due, upcoming


def fire(
    store: MetadataStore,
    record: ScheduleRecord,
    now: float,
    hand_off: HandOff = run_in_background,
) -> list[str]:
    """Start the executions of the due slots (each an idempotent start) and move the
    schedule past them; returns the ids of executions this call created."""
    due, upcoming = slots_to_fire(record, now)
    if not due and upcoming == record.next_at:
        return []
    flow = resolve_flow(record.flow_ref) if due else None
    stack = get_stack(record.stack)
    started = []
    for slot in due:
        assert isinstance(flow, FlowDefinition)
        created = create_execution(
            flow, (), dict(record.args), stack=stack, exec_id=slot_exec_id(record.name, slot)
        )
        if created.new:
            started.append(created.record.id)
            if created.record.status == Status.QUEUED:
                assert created.record.queue is not None
                admit_and_hand_off(store, created.record.queue, hand_off)
            else:
                hand_off(created.record)
    last = slot_exec_id(record.name, due[-1]) if due else None
    store.schedules.advance(
        record.name, observed_next=record.next_at, next_at=upcoming, last_exec_id=last
    )
    return started


class Schedules:
    """Create, list, describe, pause, resume and delete schedules (``KitaruClient().schedules``)."""

    def __init__(self, store: MetadataStore | None = None) -> None:
        self._store = store or get_store()

    def create(
        self,
        name: str,
        flow: str | FlowDefinition[Any, Any],
        *,
        cron: str,
        args: dict[str, Any] | None = None,
        timezone: str = "UTC",
        catchup: str = "skip",
        stack: str | None = None,
    ) -> ScheduleRecord:
        """Fire ``flow`` (a ``@flow`` or ``MODULE:FLOW``) at every slot of ``cron`` in
        ``timezone``, with keyword arguments ``args`` (plain JSON)."""
        if not (0 < len(name) <= 100) or not set(name) <= _NAME_CHARS:
            raise KitaruUsageError(
                f"schedule name {name!r} is not valid: use 1 to 100 letters, digits and . _ : -"
            )
        if catchup not in CATCHUP_POLICIES:
            raise KitaruUsageError(
                f"catch-up policy {catchup!r} is not one of {', '.join(CATCHUP_POLICIES)}"
            )
        check_cron(cron)
        zone(timezone)
        definition = resolve_flow(flow) if isinstance(flow, str) else flow
        if not isinstance(definition, FlowDefinition):
            raise KitaruUsageError(f"{flow!r} is not a @flow")
        arguments = plain_data(args or {}, what=f"the arguments of schedule {name!r}")
        try:
            definition.signature.bind(**arguments)
        except TypeError as exc:
            raise KitaruUsageError(
                f"flow {definition.name!r} cannot take the arguments of schedule {name!r}: {exc}"
            ) from None
        now = clock.now()
        record = ScheduleRecord(
            name=name,
            flow_ref=definition.ref,
            flow_name=definition.name,
            args=arguments,
            cron=cron,
            timezone=timezone,
            catchup=catchup,
            stack=active_stack_name(explicit=stack),
            paused=0,
            next_at=next(slots_after(cron, timezone, now)),
            created_at=time.time(),
            updated_at=time.time(),
        )
        get_stack(record.stack)  # it must exist
        if not self._store.schedules.create(record):
            raise KitaruUsageError(
                f"a schedule named {name!r} exists; delete it first or choose another name"
            )
        return record

    def get(self, name: str) -> ScheduleRecord:
        record = self._store.schedules.get(name)
        if record is None:
            known = ", ".join(s.name for s in self._store.schedules.list()) or "none"
            raise KitaruUsageError(f"no schedule named {name!r} (schedules: {known})")
        return record

    def list(self) -> list[ScheduleRecord]:
        return self._store.schedules.list()

    def next_firings(self, name: str, count: int = 5) -> builtins.list[float]:
        record = self.get(name)
        start = max(record.next_at, clock.now())
        firings = [record.next_at] if record.next_at >= start else []
        for slot in slots_after(record.cron, record.timezone, start):
            if len(firings) >= count:
                break
            firings.append(slot)
        return firings[:count]

    def pause(self, name: str) -> ScheduleRecord:
        self._store.schedules.update(self.get(name).name, paused=1)
        return self.get(name)

    def resume(self, name: str) -> ScheduleRecord:
        """Fire again from the next slot on (slots passed while paused are not fired)."""
        record = self.get(name)
        self._store.schedules.update(
            name, paused=0, next_at=next(slots_after(record.cron, record.timezone, clock.now()))
        )
        return self.get(name)

    def delete(self, name: str) -> None:
        if not self._store.schedules.delete(self.get(name).name):
            raise KitaruUsageError(f"no schedule named {name!r}")
