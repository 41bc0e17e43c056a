"""The LLM gateway: sends one chat completion to a provider and reports its usage."""

from __future__ import annotations

from abc import ABC, abstractmethod
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


class LLMGateway(ABC):
    flavor: str = ""

    @abstractmethod
    def complete(self, request: LLMRequest) -> LLMResponse:
        """One completion; transient provider errors are retried inside."""
