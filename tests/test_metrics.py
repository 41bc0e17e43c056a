"""``/metrics`` counters: read from the rows recorded since the last scrape, folded into
totals that never go down, whatever retention deletes."""

from __future__ import annotations

import re

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.server.metrics import Metrics
from kitaru_core.store.metadata_store import get_store


@checkpoint
def step(n: int) -> int:
    return n + 1


@flow
def counted(n: int) -> str:
    step(n)
    step(n + 1)
    return kitaru.llm("count these four words", model="openai/gpt-4o-mini")


def sample(text: str, name: str, **labels: str) -> float:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(inner)}\}} (\S+)$", text, re.M)
    assert found, f"{name}{{{inner}}} not in\n{text}"
    return float(found.group(1))


def checkpoints_and_calls(text: str) -> tuple[float, float, float]:
    return (
        sample(text, "kitaru_step_duration_seconds_count", kind="checkpoint"),
        sample(text, "kitaru_llm_calls_total", model="openai/gpt-4o-mini"),
        sample(text, "kitaru_llm_tokens_total", model="openai/gpt-4o-mini", direction="input"),
    )


def test_counters_add_new_work_and_never_go_down_when_executions_are_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "mocked reply")
    first = [counted.run(n) for n in range(3)]
    assert checkpoints_and_calls(Metrics(get_store()).render()) == (6, 3, 18)

    # Rows settle into the totals (here at once, by default after SETTLE_SECONDS):
    # deleting their executions, as retention does, takes nothing back, since
    # Prometheus reads a counter that drops as a restart.
    settled = Metrics(get_store(), settle=0.0)
    assert checkpoints_and_calls(settled.render()) == (6, 3, 18)
    KitaruClient().executions.delete(*(h.exec_id for h in first))
    assert checkpoints_and_calls(settled.render()) == (6, 3, 18)

    # New work is counted on top; a server started now counts what the store holds.
    counted.run(10)
    assert checkpoints_and_calls(settled.render()) == (8, 4, 24)
    assert checkpoints_and_calls(Metrics(get_store()).render()) == (2, 1, 6)
