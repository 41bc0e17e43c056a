"""OpenTelemetry spans, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from test_llm import writer

import kitaru
from conftest import SECRET_KEY
from kitaru import KitaruClient, checkpoint, flow

pytest.importorskip("opentelemetry.sdk")


@pytest.fixture(scope="module")
def exporter() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return memory


@pytest.fixture
def spans(exporter: Any) -> Iterator[Any]:
    exporter.clear()
    yield exporter
    exporter.clear()


@checkpoint
def summarize(text: str) -> str:
    return kitaru.llm(f"Summarize {text}", model="openai/gpt-4o-mini", temperature=0.2)


@flow
def traced(topic: str) -> str:
    idea = kitaru.llm(f"An idea about {topic}", model="openai/gpt-4o-mini", max_tokens=50)
    summary = summarize(idea)
    approved = kitaru.wait(name="ok", schema=bool)
    return summary if approved else "no"


def by_name(finished: list[Any]) -> dict[str, Any]:
    return {s.name: s for s in finished}


def test_spans_for_the_execution_checkpoints_llm_calls_and_waits(
    spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "four words of answer")
    handle = traced.run("tracing")
    first = by_name(spans.get_finished_spans())
    execution = first["kitaru.execution traced"]
    assert execution.parent is None
    assert execution.attributes["kitaru.exec_id"] == handle.exec_id
    assert execution.attributes["kitaru.status"] == "waiting"

    llm_checkpoint = first["kitaru.checkpoint llm_1"]
    assert llm_checkpoint.parent.span_id == execution.context.span_id
    chats = [s for s in spans.get_finished_spans() if s.name == "chat openai/gpt-4o-mini"]
    assert len(chats) == 2
    body_chat, inline_chat = chats
    assert body_chat.parent.span_id == llm_checkpoint.context.span_id
    assert inline_chat.parent.span_id == first["kitaru.checkpoint summarize"].context.span_id
    from opentelemetry.trace import SpanKind

    assert body_chat.kind is SpanKind.CLIENT
    assert body_chat.attributes["gen_ai.operation.name"] == "chat"
    assert body_chat.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert body_chat.attributes["gen_ai.request.max_tokens"] == 50
    assert body_chat.attributes["gen_ai.usage.input_tokens"] == 6
    assert body_chat.attributes["gen_ai.usage.output_tokens"] == 5
    assert inline_chat.attributes["gen_ai.request.temperature"] == 0.2
    assert first["kitaru.wait ok"].parent.span_id == execution.context.span_id

    spans.clear()
    KitaruClient().executions.input(handle.exec_id, wait="ok", value=True, resume=False)
    KitaruClient().executions.resume(handle.exec_id)
    second = by_name(spans.get_finished_spans())
    resumed = second["kitaru.execution traced"]
    assert resumed.attributes["kitaru.status"] == "completed"
    assert resumed.attributes["kitaru.mode"] == "resume"
    assert [link.context.span_id for link in resumed.links] == [execution.context.span_id]
    assert "kitaru.checkpoint summarize" not in second  # replayed from the journal: no new span
    assert second["kitaru.wait ok"].attributes["kitaru.wait.status"] == "answered"


def test_a_failed_checkpoint_marks_its_span(spans: Any) -> None:
    @checkpoint
    def breaks() -> None:
        raise ValueError("broken on purpose")

    @flow
    def failing() -> None:
        breaks()

    failing.run()
    found = by_name(spans.get_finished_spans())
    from opentelemetry.trace import StatusCode

    assert found["kitaru.checkpoint breaks"].status.status_code is StatusCode.ERROR
    assert found["kitaru.execution failing"].status.status_code is StatusCode.ERROR


def test_the_provider_key_is_in_no_span(spans: Any, llm_stack: Any) -> None:
    writer.run("secrets in spans")
    dump = json.dumps([s.to_json() for s in spans.get_finished_spans()])
    assert "chat openai/gpt-4o-mini" in dump
    assert SECRET_KEY not in dump
