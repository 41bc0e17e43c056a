"""A research-and-review agent: it drafts with an LLM, then waits for a person.

    export KITARU_LLM_MOCK_RESPONSE="Durable agents never pay twice for a step."  # or a real `fast` alias
    kitaru run examples/review_flow.py:review --arg topic="durable agents"
    kitaru executions input EXEC_ID --wait approve_draft --value true

The run stops at `approve_draft` with the execution `waiting`; no process is kept for
it. The input resumes it in a worker process: `research` and `draft` answer from the
journal (their LLM calls are not paid for again), and `publish` runs. `fast` is a model
alias of the active stack (`llm_gateway.models`) or of `kitaru model register`.
"""

from __future__ import annotations

import os

import kitaru
from kitaru import checkpoint, flow


def _count(step: str) -> None:
    """Lets tests see how often each checkpoint body ran."""
    path = os.environ.get("REVIEW_FLOW_COUNTER")
    if path:
        with open(path, "a") as f:
            f.write(step + "\n")


@checkpoint
def research(topic: str) -> list[str]:
    _count("research")
    answer = kitaru.llm(f"List the key facts about {topic}, one per line.", model="fast")
    return [line.strip("-* ").strip() for line in answer.splitlines() if line.strip()]


@checkpoint
def draft(notes: list[str]) -> str:
    _count("draft")
    intro = kitaru.llm(
        "Write a one-sentence introduction for these notes:\n" + "\n".join(notes),
        model="fast",
        system="You write short, plain technical prose.",
    )
    bullets = "\n".join(f"- {note}" for note in notes)
    return f"{intro}\n\n{bullets}\n"


@checkpoint
def publish(text: str) -> dict[str, object]:
    _count("publish")
    return {"published": True, "words": len(text.split()), "text": text}


@flow
def review(topic: str) -> dict[str, object]:
    reviews = kitaru.memory.get("reviews", default=0)  # memory shared by every run of the flow
    text = draft(research(topic))
    approved = kitaru.wait(name="approve_draft", question="Approve draft?", schema=bool)
    kitaru.memory.set("reviews", reviews + 1)
    if not approved:
        return {"published": False, "text": text}
    return publish(text)
