"""``GET /metrics``: Prometheus text, computed from the store when scraped (so every
process's work counts, not only the server's): executions by status, step durations,
LLM calls, tokens and cost, and how late the workers are."""

from __future__ import annotations

import time
from typing import Any

from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import STATUSES

BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LIVE_WORKER_SECONDS = 600.0


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


def render(store: MetadataStore) -> str:
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

    cases = ", ".join(
        f"SUM(CASE WHEN ended_at - started_at <= {b} THEN 1 ELSE 0 END)" for b in BUCKETS
    )
    rows = db.fetchall(
        f"SELECT kind, COUNT(*), SUM(ended_at - started_at), {cases} FROM journal "
        "WHERE status IN ('completed', 'failed') GROUP BY kind"
    )
    name = "kitaru_step_duration_seconds"
    out.family(name, "histogram", "How long steps (checkpoints, LLM calls, ...) ran.")
    for kind, count, total, *cumulative in rows:
        for bound, below in zip(BUCKETS, cumulative, strict=True):
            out.sample(f"{name}_bucket", int(below or 0), kind=kind, le=bound)
        out.sample(f"{name}_bucket", int(count), kind=kind, le="+Inf")
        out.sample(f"{name}_sum", float(total or 0.0), kind=kind)
        out.sample(f"{name}_count", int(count), kind=kind)

    llm = db.fetchall(
        "SELECT model, COUNT(*), SUM(COALESCE(input_tokens, 0)), "
        "SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0)), "
        "SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) FROM llm_calls GROUP BY model"
    )
    out.family("kitaru_llm_calls_total", "counter", "LLM calls through the gateway.")
    for model, calls, *_ in llm:
        out.sample("kitaru_llm_calls_total", int(calls), model=model)
    out.family("kitaru_llm_errors_total", "counter", "LLM calls that failed.")
    for model, *_, errors in llm:
        out.sample("kitaru_llm_errors_total", int(errors or 0), model=model)
    out.family("kitaru_llm_tokens_total", "counter", "LLM tokens, by direction.")
    for model, _, tokens_in, tokens_out, *_ in llm:
        out.sample("kitaru_llm_tokens_total", int(tokens_in or 0), model=model, direction="input")
        out.sample("kitaru_llm_tokens_total", int(tokens_out or 0), model=model, direction="output")
    out.family("kitaru_llm_cost_usd_total", "counter", "LLM cost in US dollars.")
    for model, _, _, _, cost, _ in llm:
        out.sample("kitaru_llm_cost_usd_total", float(cost or 0.0), model=model)

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
