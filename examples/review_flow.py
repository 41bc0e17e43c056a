"""A research-and-review agent: it drafts, then waits for a person to approve.

    kitaru run examples/review_flow.py:review --arg topic="durable agents"
    kitaru executions input EXEC_ID --wait approve_draft --value true

The run stops at `approve_draft` with the execution `waiting`; no process is kept for
it. The input resumes it in a worker process: `research` and `draft` answer from the
journal, and `publish` runs.
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
    """Stands in for a search-and-read agent (the LLM gateway arrives later)."""
    _count("research")
    return [
        f"{topic}: completed steps are recorded and never run twice",
        f"{topic}: a person can approve hours later, with no process held",
    ]


@checkpoint
def draft(notes: list[str]) -> str:
    _count("draft")
    bullets = "\n".join(f"- {note}" for note in notes)
    return f"Why durable agents matter\n\n{bullets}\n"


@checkpoint
def publish(text: str) -> dict[str, object]:
    _count("publish")
    return {"published": True, "words": len(text.split()), "text": text}


@flow
def review(topic: str) -> dict[str, object]:
    text = draft(research(topic))
    approved = kitaru.wait(name="approve_draft", question="Approve draft?", schema=bool)
    if not approved:
        return {"published": False, "text": text}
    return publish(text)
