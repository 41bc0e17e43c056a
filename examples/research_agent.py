"""An async PydanticAI agent with two tools, made durable by Kitaru: it researches,
drafts, and asks a person before it answers, within a budget.

    pip install -e ".[pydantic-ai]"                   # in a checkout of Kitaru
    python examples/research_agent.py                  # starts, then waits for you
    kitaru executions input EXEC_ID --wait approve --value true

Each model request and each tool call is a checkpoint: kill the process at any point
and `kitaru executions resume EXEC_ID` repeats none that completed. With
OPENAI_API_KEY set it uses `openai:gpt-4o-mini`; without, PydanticAI's FunctionModel
plays that model offline (and is priced as it). The flow's budget (`max_llm_calls`,
`max_cost_usd`) counts the agent's model requests; over it, the next request raises
KitaruBudgetExceededError in the flow.
"""

from __future__ import annotations

import os

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import kitaru
from kitaru import flow
from kitaru.adapters.pydantic_ai import KitaruAgent


def offline_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Plays a model: search, then read the best source, then answer."""
    results = [
        str(part.content)
        for message in messages
        for part in getattr(message, "parts", [])
        if part.part_kind == "tool-return"
    ]
    if not results:
        return ModelResponse(parts=[ToolCallPart("search", {"query": "durable execution"})])
    if len(results) == 1:
        return ModelResponse(parts=[ToolCallPart("read", {"url": results[0].split()[0]})])
    return ModelResponse(parts=[TextPart(f"Durable execution records each step. ({results[1]})")])


model = (
    "openai:gpt-4o-mini"
    if os.environ.get("OPENAI_API_KEY")
    else FunctionModel(offline_model, model_name="gpt-4o-mini")
)
agent = Agent(model, name="researcher", instructions="Research, then answer in two sentences.")


@agent.tool_plain
def search(query: str) -> str:
    """Search the web (here: a fixed index) and return the best URLs."""
    return "https://example.org/durable https://example.org/journals"


@agent.tool_plain
def read(url: str) -> str:
    """Read a page (here: a fixed summary)."""
    return f"{url} says: a journal makes every step happen once"


researcher = KitaruAgent(agent)


@flow(max_llm_calls=10, max_cost_usd=0.50)
async def research(question: str) -> dict[str, object]:
    draft = (await researcher.run(question)).output
    approved = kitaru.wait(schema=bool, name="approve", question=f"Publish this answer?\n\n{draft}")
    return {"question": question, "answer": draft, "published": approved}


if __name__ == "__main__":
    handle = research.run("What is durable execution?")
    print(handle.exec_id, handle.status)
    if handle.status == "waiting":
        print(f"approve with: kitaru executions input {handle.exec_id} --wait approve --value true")
