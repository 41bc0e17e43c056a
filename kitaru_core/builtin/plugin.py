"""The built-in flavors, registered through the same hooks as any plugin."""

from __future__ import annotations

from kitaru_core.flavors import Flavor
from kitaru_core.hookspecs import Register
from kitaru_core.pluginapi import hookimpl

KITARU_PLUGIN_API = 1
_CONFIGS = "kitaru_core.builtin.configs"


@hookimpl
def kitaru_register_artifact_stores(register: Register) -> None:
    register(
        Flavor(
            "artifact_store",
            "local",
            implementation="kitaru_core.builtin.local_artifact_store:LocalArtifactStore",
            config=f"{_CONFIGS}:LocalArtifactStoreConfig",
            description="files in a directory on this machine",
            machine_local=True,
        )
    )


@hookimpl
def kitaru_register_secret_providers(register: Register) -> None:
    register(
        Flavor(
            "secret_provider",
            "local",
            implementation="kitaru_core.builtin.local_secrets:LocalSecretProvider",
            config=f"{_CONFIGS}:LocalSecretProviderConfig",
            description="a JSON file only its owner can read",
            machine_local=True,
        )
    )
    register(
        Flavor(
            "secret_provider",
            "env",
            implementation="kitaru_core.builtin.local_secrets:EnvSecretProvider",
            config=f"{_CONFIGS}:EnvSecretProviderConfig",
            description="environment variables",
        )
    )


@hookimpl
def kitaru_register_orchestrators(register: Register) -> None:
    register(
        Flavor(
            "orchestrator",
            "local",
            implementation="kitaru_core.builtin.local_orchestrator:LocalOrchestrator",
            config=f"{_CONFIGS}:LocalOrchestratorConfig",
            description="in this process, or a detached process on this machine",
        )
    )


@hookimpl
def kitaru_register_llm_gateways(register: Register) -> None:
    register(
        Flavor(
            "llm_gateway",
            "litellm",
            implementation="kitaru_core.builtin.litellm_gateway:LiteLLMGateway",
            config=f"{_CONFIGS}:LiteLLMGatewayConfig",
            description="every provider litellm supports; model aliases in the stack",
            resolve_when_used=("models",),
        )
    )
