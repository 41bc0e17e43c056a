"""The time Kitaru reads: timers, wait deadlines, schedules and the worker ask this clock.

Production uses the system clock. Tests (and users testing their own flows) swap in a
``ManualClock`` to move time by hours without sleeping: ``with use_clock(clock): ...``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when told: ``advance`` (or a ``sleep``, which returns at once)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            self._now = when


_clock: Clock = SystemClock()


def clock() -> Clock:
    """The clock in use in this process."""
    return _clock


def now() -> float:
    return _clock.now()


@contextmanager
def use_clock(replacement: Clock) -> Iterator[Clock]:
    """Read time from ``replacement`` in this process until the block ends."""
    global _clock
    previous, _clock = _clock, replacement
    try:
        yield replacement
    finally:
        _clock = previous
