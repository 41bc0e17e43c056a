"""Kitaru on Kubernetes. The ``kubernetes`` package is imported when a component is
first used or a command runs, never here: ``kitaru plugins list`` stays cheap."""

from __future__ import annotations

from typing import Any

from kitaru.plugin import PLUGIN_API, Flavor, Register, hookimpl

KITARU_PLUGIN_API = PLUGIN_API


@hookimpl
def kitaru_register_orchestrators(register: Register) -> None:
    register(
        Flavor(
            "orchestrator",
            "kubernetes",
            implementation="kitaru_kubernetes.orchestrator:KubernetesOrchestrator",
            config="kitaru_kubernetes.config:KubernetesOrchestratorConfig",
            description="one Kubernetes Job per run; no pod while an execution waits",
            runs_elsewhere=True,
        )
    )


@hookimpl
def kitaru_register_secret_providers(register: Register) -> None:
    register(
        Flavor(
            "secret_provider",
            "kubernetes-secrets",
            implementation="kitaru_kubernetes.secrets:KubernetesSecretProvider",
            config="kitaru_kubernetes.config:KubernetesSecretsConfig",
            description="Opaque Secrets in a namespace, one per name",
        )
    )


@hookimpl
def kitaru_register_commands(app: Any) -> None:
    from kitaru_kubernetes.commands import app as kubernetes_app

    app.add_typer(kubernetes_app, name="kubernetes")
