"""What an agent framework's model request cost, from genai-prices' price list (the one
PydanticAI prices its responses with), for the adapters' LLM call records and the
flow's ``max_cost_usd``.

genai-prices takes about 0.3 s to import and 0.1 ms to price a request, so it is imported
at the first request priced, and whether it prices a model is looked up once per model
(a model it does not price used to cost each request a raised and caught LookupError).
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=256)
def knows_price(model: str, provider: str | None = None, url: str | None = None) -> bool:
    """Whether genai-prices has a price for ``model`` (served by ``provider`` at ``url``,
    or by whichever provider it infers from the model's name)."""
    try:
        from genai_prices import Usage, calc_price
    except ImportError:
        return False
    named = [{"provider_id": provider, "provider_api_url": url}] if provider or url else []
    for where in [*named, {}]:
        try:
            calc_price(Usage(), model, **where)  # type: ignore[arg-type]
            return True
        except (LookupError, ValueError):
            continue
    return False


def cost_usd(model: str, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """What a request to ``model`` that used those tokens cost; None when unknown."""
    if not knows_price(model):
        return None
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0)
    return float(calc_price(usage, model).total_price)


def unpriced_refusal(model: str) -> str:
    """How to fix a refused request to a model with no known price."""
    return (
        f"model {model!r} has no price in genai-prices' list, so the flow's max_cost_usd "
        "could not stop its requests: use a model the list prices, set max_llm_calls "
        "instead, or drop max_cost_usd from the flow"
    )
