"""The ``litellm`` LLM gateway: one API for every provider litellm knows.

litellm takes ~3.5 s to import here, so it is imported on the first real call, never
by a mocked one. Its network fetch of the model price map is switched off first.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
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
        params, prices = self._params(request)
        response, attempt = self._send(litellm, request, params)
        return _response(litellm, response, request, prices, attempt)

    def stream(self, request: LLMRequest) -> Iterator[str | LLMResponse]:
        litellm = _litellm()
        params, prices = self._params(request)
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        stream, attempt = self._send(litellm, request, params)
        chunks = []
        try:
            for chunk in stream:
                chunks.append(chunk)
                choices = getattr(chunk, "choices", None) or []
                text = getattr(choices[0].delta, "content", None) if choices else None
                if text:
                    yield text
        except Exception as exc:
            raise KitaruBackendError(
                f"LLM stream from {request.model} broke off: {type(exc).__name__}: {exc}"
            ) from None
        whole = litellm.stream_chunk_builder(chunks, messages=request.messages)
        yield _response(litellm, whole, request, prices, attempt)

    def knows_price(self, request: LLMRequest) -> bool:
        """The alias sets prices, or litellm's local cost map has the model."""
        if any(request.params.get(k) is not None for k in _PRICE_PARAMS):
            return True
        litellm = _litellm()
        try:
            info = litellm.get_model_info(request.model)
        except Exception:  # litellm raises its own "not mapped" errors
            return False
        return info.get("input_cost_per_token") is not None

    def _params(self, request: LLMRequest) -> tuple[dict[str, Any], dict[str, float]]:
        """The call's parameters, and the prices an alias sets for a model litellm's cost
        map does not know (``input_cost_per_token``, ``output_cost_per_token``)."""
        params = {"timeout": self.timeout, **request.params}
        prices = {k: float(params.pop(k)) for k in _PRICE_PARAMS if params.get(k) is not None}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.response_format is not None:
            params["response_format"] = request.response_format
        return params, prices

    def _send(self, litellm: Any, request: LLMRequest, params: dict[str, Any]) -> tuple[Any, int]:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = litellm.completion(
                    model=request.model, messages=request.messages, num_retries=0, **params
                )
                return response, attempt
            except Exception as exc:
                if type(exc).__name__ in _TRANSIENT and attempt <= self.retries:
                    # Exponential backoff with jitter, so clients do not retry in step.
                    time.sleep(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
                    continue
                raise KitaruBackendError(
                    f"LLM call to {request.model} failed after {attempt} attempt(s): "
                    f"{type(exc).__name__}: {exc}"
                ) from None


_PRICE_PARAMS = ("input_cost_per_token", "output_cost_per_token")


def _response(
    litellm: Any, raw: Any, request: LLMRequest, prices: dict[str, float], attempts: int
) -> LLMResponse:
    """A litellm response (a whole one, or one built from a stream's chunks) as ours."""
    usage = getattr(raw, "usage", None)
    input_tokens = getattr(usage, "prompt_tokens", None)
    output_tokens = getattr(usage, "completion_tokens", None)
    message = raw.choices[0].message
    return LLMResponse(
        text=message.content or "",
        model=getattr(raw, "model", None) or request.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=_cost(litellm, raw, prices, input_tokens, output_tokens),
        attempts=attempts,
        refusal=getattr(message, "refusal", None) or None,
    )


def _cost(
    litellm: Any,
    response: Any,
    prices: dict[str, float],
    input_tokens: int | None,
    output_tokens: int | None,
) -> float | None:
    """The alias's own prices if it sets them, else litellm's local cost map (None when
    neither knows the model)."""
    if prices:
        return (input_tokens or 0) * prices.get("input_cost_per_token", 0.0) + (
            output_tokens or 0
        ) * prices.get("output_cost_per_token", 0.0)
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:
        return None
