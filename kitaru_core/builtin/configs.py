"""Config models of the built-in flavors (imported only when a stack is validated)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kitaru_core.components.config import StrictConfig


class LocalArtifactStoreConfig(StrictConfig):
    path: str | None = Field(
        default=None, description="directory for artifacts; default: KITARU_HOME/artifacts"
    )


class LocalSecretProviderConfig(StrictConfig):
    path: str | None = Field(
        default=None, description="the secrets file (mode 0600); default: KITARU_HOME/secrets.json"
    )


class EnvSecretProviderConfig(StrictConfig):
    prefix: str = Field(
        default="", description="read secret NAME from the variable PREFIX + NAME in upper case"
    )


class LocalOrchestratorConfig(StrictConfig):
    pass


class LiteLLMGatewayConfig(StrictConfig):
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="aliases: {fast: {model: openai/gpt-4o-mini, api_key: '{{ secret.x }}', ...}}",
    )
    default_model: str | None = Field(default=None, description="the alias used without model=")
    retries: int = Field(default=3, ge=0, description="retries of transient provider errors")
    backoff: float = Field(default=1.0, ge=0, description="first retry delay in seconds")
    timeout: float = Field(
        default=120.0, gt=0, description="seconds per request (per alias: timeout)"
    )
