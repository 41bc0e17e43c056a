"""Config models of the built-in flavors (imported only when a stack is validated)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StrictConfig(BaseModel):
    """Base for flavor configs: unknown fields are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid")


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
