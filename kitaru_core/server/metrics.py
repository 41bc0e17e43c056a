"""``GET /metrics``: Prometheus text, computed from the store (so every process's work
counts, not only the server's): executions by status, step durations, LLM calls, tokens
and cost, and how late the workers are.

Step and LLM counters are kept incrementally. Rows older than ``SETTLE_SECONDS`` are
folded into running totals once; each scrape reads only the rows recorded since (an index
on their time), so a scrape costs the same with a journal of ten rows or ten million, and
the counters never go down when retention deletes old executions."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kitaru_core.store.metadata_store import RUNNER_PATIENCE, MetadataStore
from kitaru_core.store.records import STATUSES

BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LIVE_WORKER_SECONDS = 600.0
SETTLE_SECONDS = 2 * RUNNER_PATIENCE
"""A row is stamped just before its transaction commits, and a run waits at most
``RUNNER_PATIENCE`` for its database: a row older than this has committed or never will,
so it can be folded into the totals for good."""


def _label(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float, **labels: Any) -> None:
        inner = ",".join(f"{k}={_label(v)}" for k, v in labels.items())
        self.lines.append(f"{name}{{{inner}}} {value:g}" if inner else f"{name} {value:g}")


@dataclass
class _Durations:
    """A histogram of one step kind: cumulative bucket counts, as Prometheus has them."""

    count: int = 0
    total: float = 0.0
    below: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))

    def add(self, count: int, total: float, below: list[int]) -> None:
        self.count += count
        self.total += total
        self.below = [a + b for a, b in zip(self.below, below, strict=True)]


@dataclass
class _Calls:
    """LLM use of one model."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    errors: int = 0

    def add(self, calls: int, tokens_in: int, tokens_out: int, cost: float, errors: int) -> None:
        self.calls += calls
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost += cost
        self.errors += errors


@dataclass
class _Totals:
    steps: dict[str, _Durations] = field(default_factory=dict)
    llm: dict[str, _Calls] = field(default_factory=dict)

    def copy(self) -> _Totals:
        return _Totals(
            {k: _Durations(v.count, v.total, list(v.below)) for k, v in self.steps.items()},
            {k: _Calls(**vars(v)) for k, v in self.llm.items()},
        )


_CASES = ", ".join(
    f"SUM(CASE WHEN ended_at - started_at <= {b} THEN 1 ELSE 0 END)" for b in BUCKETS
)
_STEPS_BETWEEN = (
    f"SELECT kind, COUNT(*), SUM(ended_at - started_at), {_CASES} FROM journal "
    "WHERE ended_at > :after AND ended_at <= :until AND status IN ('completed', 'failed') "
    "GROUP BY kind"
)
_LLM_BETWEEN = (
    "SELECT model, COUNT(*), SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)), "
    "SUM(COALESCE(cost_usd, 0)), SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) "
    "FROM llm_calls WHERE created_at > :after AND created_at <= :until GROUP BY model"
)


class Metrics:
    """The server's metrics: one per process, shared by concurrent scrapes."""

    def __init__(self, store: MetadataStore, *, settle: float = SETTLE_SECONDS) -> None:
        self.store = store
        self.settle = settle
        self._lock = threading.Lock()
        self._settled = _Totals()
        self._settled_until = 0.0

    def _add(self, totals: _Totals, after: float, until: float) -> None:
        window = {"after": after, "until": until}
        for kind, count, total, *below in self.store.db.fetchall(_STEPS_BETWEEN, window):
            durations = totals.steps.setdefault(kind, _Durations())
            durations.add(int(count), float(total or 0.0), [int(b or 0) for b in below])
        for model, calls, tokens_in, tokens_out, cost, errors in self.store.db.fetchall(
            _LLM_BETWEEN, window
        ):
            totals.llm.setdefault(model, _Calls()).add(
                int(calls),
                int(tokens_in or 0),
                int(tokens_out or 0),
                float(cost or 0.0),
                int(errors or 0),
            )

    def totals(self, now: float) -> _Totals:
        """Everything recorded until ``now``: the settled totals plus the recent window."""
        with self._lock:
            settle_until = now - self.settle
            if settle_until > self._settled_until:
                self._add(self._settled, self._settled_until, settle_until)
                self._settled_until = settle_until
            totals = self._settled.copy()
            self._add(totals, self._settled_until, math.inf)
        return totals

    def render(self) -> str:
        return render(self.store, self.totals(time.time()))


def render(store: MetadataStore, totals: _Totals) -> str:
    out = _Text()
    db = store.db
    counts = dict.fromkeys(STATUSES, 0)
    counts.update(
        {
            r[0]: int(r[1])
            for r in db.fetchall("SELECT status, COUNT(*) FROM executions GROUP BY status")
        }
    )
    out.family("kitaru_executions", "gauge", "Executions by status.")
    for status, count in counts.items():
        out.sample("kitaru_executions", count, status=status)

    name = "kitaru_step_duration_seconds"
    out.family(name, "histogram", "How long steps (checkpoints, LLM calls, ...) ran.")
    for kind, steps in sorted(totals.steps.items()):
        for bound, below in zip(BUCKETS, steps.below, strict=True):
            out.sample(f"{name}_bucket", below, kind=kind, le=bound)
        out.sample(f"{name}_bucket", steps.count, kind=kind, le="+Inf")
        out.sample(f"{name}_sum", steps.total, kind=kind)
        out.sample(f"{name}_count", steps.count, kind=kind)

    llm = sorted(totals.llm.items())
    out.family("kitaru_llm_calls_total", "counter", "LLM calls through the gateway.")
    for model, use in llm:
        out.sample("kitaru_llm_calls_total", use.calls, model=model)
    out.family("kitaru_llm_errors_total", "counter", "LLM calls that failed.")
    for model, use in llm:
        out.sample("kitaru_llm_errors_total", use.errors, model=model)
    out.family("kitaru_llm_tokens_total", "counter", "LLM tokens, by direction.")
    for model, use in llm:
        out.sample("kitaru_llm_tokens_total", use.tokens_in, model=model, direction="input")
        out.sample("kitaru_llm_tokens_total", use.tokens_out, model=model, direction="output")
    out.family("kitaru_llm_cost_usd_total", "counter", "LLM cost in US dollars.")
    for model, use in llm:
        out.sample("kitaru_llm_cost_usd_total", use.cost, model=model)

    now = time.time()
    live = [w for w in store.workers.list() if now - w.heartbeat_at < _LIVE_WORKER_SECONDS]
    live = [w for w in live if w.counts.get("state") != "stopped"]
    out.family("kitaru_workers", "gauge", "Workers that beat in the last ten minutes.")
    out.sample("kitaru_workers", len(live))
    out.family(
        "kitaru_worker_lag_seconds", "gauge", "How late a worker acted on its last due item."
    )
    for worker in live:
        out.sample(
            "kitaru_worker_lag_seconds",
            float(worker.counts.get("lag_seconds", 0.0)),
            worker=worker.id,
            stack=worker.stack,
        )
    overdue = db.fetchone(
        "SELECT MIN(wake_at) FROM executions WHERE status IN ('sleeping', 'waiting') "
        "AND wake_at IS NOT NULL AND wake_at <= :now",
        {"now": now},
    )
    out.family(
        "kitaru_overdue_seconds",
        "gauge",
        "How long the oldest due timer or wait deadline has waited for a worker.",
    )
    out.sample("kitaru_overdue_seconds", now - overdue[0] if overdue and overdue[0] else 0.0)
    return "\n".join(out.lines) + "\n"
