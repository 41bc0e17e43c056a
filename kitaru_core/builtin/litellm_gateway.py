"""The ``litellm`` LLM gateway: one API for every provider litellm knows.

litellm takes ~3.5 s to import here, so it is imported on the first real call, never
by a mocked one. Its network fetch of the model price map is switched off first.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from kitaru_core.components.llm_gateway import LLMGateway, LLMRequest, LLMResponse
from kitaru_core.errors import KitaruBackendError

_TRANSIENT = (
    "RateLimitError",
    "APIConnectionError",
    "Timeout",
    "InternalServerError",
    "ServiceUnavailableError",
    "BadGatewayError",
)


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


class LiteLLMGateway(LLMGateway):
    flavor = "litellm"

    def __init__(self, config: Any) -> None:
        self.retries = config.retries
        self.backoff = config.backoff
        self.timeout = config.timeout

    def complete(self, request: LLMRequest) -> LLMResponse:
        litellm = _litellm()
        params = {"timeout": self.timeout, **request.params}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        attempt = 0
        while True:
            attempt += 1
            try:
                response = litellm.completion(
                    model=request.model, messages=request.messages, num_retries=0, **params
                )
                break
            except Exception as exc:
                if type(exc).__name__ in _TRANSIENT and attempt <= self.retries:
                    # Exponential backoff with jitter, so clients do not retry in step.
                    time.sleep(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
                    continue
                raise KitaruBackendError(
                    f"LLM call to {request.model} failed after {attempt} attempt(s): "
                    f"{type(exc).__name__}: {exc}"
                ) from None
        usage = getattr(response, "usage", None)
        try:
            cost = float(litellm.completion_cost(completion_response=response))
        except Exception:
            cost = None  # litellm knows no price for this model
        return LLMResponse(
            text=response.choices[0].message.content or "",
            model=getattr(response, "model", None) or request.model,
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
            cost_usd=cost,
            attempts=attempt,
        )
