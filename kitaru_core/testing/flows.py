"""Flows the orchestrator contract runs (importable by any worker process)."""

from __future__ import annotations

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def greet(name: str) -> str:
    return f"hello {name}"


@flow
def contract_flow(name: str) -> str:
    return greet(name)


@flow
def contract_waiting_flow(name: str) -> str:
    greeting = greet(name)
    approved = kitaru.wait(name="approve", schema=bool)
    return greeting if approved else "refused"


@checkpoint
def small_output() -> str:
    return "fits in the metadata store"


@checkpoint
def large_output() -> str:
    return "x" * 20000  # above the inline limit: goes to the artifact store


@flow
def small_then_large() -> int:
    return len(small_output()) + len(large_output())


@checkpoint
def research(topic: str) -> list[str]:
    answer = kitaru.llm(f"List the key facts about {topic}, one per line.", model="fast")
    return [line.strip("-* ").strip() for line in answer.splitlines() if line.strip()]


@checkpoint
def draft(notes: list[str]) -> str:
    intro = kitaru.llm("Introduce these notes in one sentence:\n" + "\n".join(notes), model="fast")
    return intro + "\n\n" + "\n".join(f"- {note}" for note in notes)


@checkpoint
def publish(text: str) -> dict[str, object]:
    return {"published": True, "text": text}


@flow
def reviewed(topic: str) -> dict[str, object]:
    """What ``end_to_end_on_stack`` runs: two LLM calls, memory, a wait, an output."""
    reviews = kitaru.memory.get("reviews", default=0)
    text = draft(research(topic))
    approved = kitaru.wait(name="approve_draft", question="Approve draft?", schema=bool)
    kitaru.memory.set("reviews", reviews + 1)
    return publish(text) if approved else {"published": False, "text": text}
