"""The LLM gateway: sends one chat completion to a provider and reports its usage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LLMRequest:
    model: str
    """The provider model, e.g. ``openai/gpt-4o-mini`` (aliases are resolved before)."""
    messages: list[dict[str, str]]
    temperature: float | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    """Provider parameters from the alias and the call (``api_key``, ``api_base``,
    ``timeout``, ...). They may hold secrets: never log or store them."""
    response_format: Any = None
    """A pydantic model class the answer must be JSON of (structured output), or None."""


@dataclass
class LLMResponse:
    text: str
    model: str
    """The model that answered, as the provider names it."""
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None = None
    attempts: int = 1
    """How many requests it took (transient errors are retried)."""
    refusal: str | None = None
    """Why the model declined to answer in the requested format, if it did."""


class LLMGateway(ABC):
    flavor: str = ""

    @abstractmethod
    def complete(self, request: LLMRequest) -> LLMResponse:
        """One completion; transient provider errors are retried inside."""

    def knows_price(self, request: LLMRequest) -> bool:
        """Whether a response to ``request`` will carry its cost (``cost_usd``). A call
        under a flow's ``max_cost_usd`` is refused when it will not: an unpriced call
        would count as free, and the budget would never stop the flow. The default
        says yes: a gateway that prices every response need not override it."""
        return True

    def stream(self, request: LLMRequest) -> Iterator[str | LLMResponse]:
        """The answer's text in chunks as they come, then the whole ``LLMResponse`` (with
        its usage) as the last item. A gateway that cannot stream answers in one chunk."""
        response = self.complete(request)
        yield response.text
        yield response
