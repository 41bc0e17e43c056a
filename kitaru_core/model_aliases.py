"""Model aliases: ``fast`` -> ``openai/gpt-4o-mini`` with its key's secret reference.

User-level aliases (``kitaru model register``) live in the Kitaru home; a stack's
``llm_gateway.models`` override them, so the same ``model="fast"`` resolves to another
provider on another stack.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import KitaruUsageError
from kitaru_core.private_files import write_private
from kitaru_core.settings import load_settings
from kitaru_core.untrusted import validate_name

if TYPE_CHECKING:
    from kitaru_core.stack import Stack


@dataclass
class ModelAlias:
    alias: str
    config: dict[str, Any]
    """``model`` and litellm parameters, references unresolved."""
    source: str
    """``user`` or ``stack NAME``."""

    @property
    def model(self) -> str:
        return str(self.config.get("model", ""))


def _user_file() -> Any:
    return load_settings().home / "models.json"


def user_aliases() -> dict[str, dict[str, Any]]:
    path = _user_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise KitaruUsageError(
            f"cannot read the model aliases in {path} ({exc}); fix or delete the file, then "
            "register the aliases again with `kitaru model register`"
        ) from None
    if not isinstance(data, dict):
        raise KitaruUsageError(
            f"{path} should hold a JSON object of model aliases; fix or delete the file"
        )
    return data


def register_alias(
    alias: str, model: str, *, secret: str | None = None, **params: Any
) -> ModelAlias:
    validate_name("model alias", alias)
    if "/" not in model:
        raise KitaruUsageError(
            f"model {model!r} should name its provider, e.g. openai/gpt-4o-mini or "
            "anthropic/claude-3-5-haiku-latest"
        )
    config: dict[str, Any] = {"model": model, **params}
    if secret:
        config["api_key"] = f"{{{{ secret.{secret} }}}}"
    aliases = user_aliases()
    aliases[alias] = config
    write_private(_user_file(), json.dumps(aliases, indent=2, sort_keys=True))
    return ModelAlias(alias, config, "user")


def delete_alias(alias: str) -> None:
    aliases = user_aliases()
    if alias not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise KitaruUsageError(
            f"no user-level model alias {alias!r} (user aliases: {known}); a stack's own "
            "aliases are changed in its stack file"
        )
    del aliases[alias]
    write_private(_user_file(), json.dumps(aliases, indent=2, sort_keys=True))


def alias_table(stack: Stack) -> dict[str, ModelAlias]:
    """Every alias the stack sees: the user's, then the stack's own (which win)."""
    table = {name: ModelAlias(name, config, "user") for name, config in user_aliases().items()}
    spec = stack.definition.components["llm_gateway"]
    for name, config in (spec.config.get("models") or {}).items():
        table[name] = ModelAlias(name, dict(config), f"stack {stack.name}")
    return table


def choose(
    stack: Stack, model: str | None, *, strict: bool = True
) -> tuple[str | None, str, dict[str, Any]]:
    """(alias, provider model, unresolved parameters) for a ``model=`` argument.

    Not ``strict`` (a mocked call needs no provider): an unknown name is kept as it is.
    """
    table = alias_table(stack)
    if model is None:
        spec = stack.definition.components["llm_gateway"]
        model = os.environ.get("KITARU_DEFAULT_MODEL") or spec.config.get("default_model")
        if model is None and table:
            # The stack's own first alias, else the user's first.
            model = next(iter(spec.config.get("models") or table))
        if model is None and not strict:
            model = "mock"
        if model is None:
            raise KitaruUsageError(
                "kitaru.llm() was called without model= and no default exists: pass "
                "model='provider/name', set KITARU_DEFAULT_MODEL, or add an alias with "
                "`kitaru model register ALIAS --model provider/name`"
            )
    if model in table:
        params = dict(table[model].config)
        # The model may come from the environment (``model: ${MODEL}``); the other
        # parameters are resolved when the call is made, secrets included.
        provider_model = str(
            stack.resolve(params.pop("model", ""), "llm_gateway", f"models.{model}.model")
        )
        if not provider_model:
            raise KitaruUsageError(f"model alias {model!r} ({table[model].source}) has no 'model'")
        return model, provider_model, params
    if "/" not in model and strict:
        known = ", ".join(table) or "none"
        raise KitaruUsageError(
            f"model {model!r} is neither an alias (known: {known}) nor a provider model "
            f"such as openai/gpt-4o-mini. Register it: `kitaru model register {model} "
            "--model openai/gpt-4o-mini --secret openai_api_key`; or, to try a flow without "
            "a model, set KITARU_LLM_MOCK_RESPONSE=text to answer every call with that text"
        )
    return None, model, {}
