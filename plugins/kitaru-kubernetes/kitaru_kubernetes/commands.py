"""``kitaru kubernetes manifests``: the worker, optionally the server, and their RBAC, as
YAML for ``kubectl apply -f -`` or as a kustomize base for a repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="Run Kitaru's worker and server in a Kubernetes cluster.", no_args_is_help=True
)


@app.command()
def manifests(
    stack: str = typer.Option(None, "--stack", help="a stack with the kubernetes orchestrator"),
    cronjob: bool = typer.Option(
        False, "--cronjob", help="a CronJob running `kitaru worker --once` instead"
    ),
    schedule: str = typer.Option("* * * * *", "--schedule", help="the CronJob's schedule"),
    replicas: int = typer.Option(1, "--replicas", min=1, help="workers in the Deployment"),
    server: bool = typer.Option(
        False, "--server", help="add `kitaru serve`: a Deployment, a Service, probes"
    ),
    server_replicas: int = typer.Option(1, "--server-replicas", min=1),
    ingress_host: str = typer.Option(
        None, "--ingress-host", help="with --server: an Ingress for this host name"
    ),
    flows: list[str] = typer.Option(
        None, "--flows", "-f", help="with --server: a module whose flows it may start"
    ),
    kustomize: Path = typer.Option(
        None,
        "--kustomize",
        help="write a kustomize base (one file per resource) into this directory instead",
    ),
) -> None:
    """Print YAML for `kubectl apply -f -`: ServiceAccounts, Roles and RoleBindings, the
    worker, and with --server the server. Pods read KITARU_DATABASE_URL from the stack's
    database_url_secret; with the stack's server_url, the runs and the worker get that
    URL and a token (server_token_secret) instead, and only the server's pod reads the
    database's. Flow code gets no Kubernetes API rights unless the stack keeps its
    secrets in Kubernetes, and then only on those Secrets."""
    from kitaru.plugin import KitaruUsageError
    from kitaru_kubernetes.manifests import Deployment
    from kitaru_kubernetes.manifests import manifests as build

    if ingress_host and not server:
        raise KitaruUsageError("--ingress-host needs --server (it routes to the server)")
    if cronjob:
        _check_schedule(schedule)
    config, name, secret_names = _read_stack(stack)
    documents = build(
        config,
        Deployment(
            stack=name,
            secret_names=secret_names,
            cronjob=cronjob,
            schedule=schedule,
            replicas=replicas,
            server=server,
            server_replicas=server_replicas,
            ingress_host=ingress_host,
            flows=flows or [],
        ),
    )
    if server and config.server_url is None:
        typer.echo(
            "note: the runs and the worker read the database's URL; to keep it in the "
            "server's pod alone, set server_url: http://kitaru-server:8765 and "
            "server_token_secret (a token of scope run) in the stack's orchestrator",
            err=True,
        )
    if kustomize is None:
        typer.echo(dump(documents), nl=False)
        return
    kustomize.mkdir(parents=True, exist_ok=True)
    for name, text in kustomize_base(documents).items():
        (kustomize / name).write_text(text)
    typer.echo(f"wrote a kustomize base of {len(documents)} resources to {kustomize}", err=True)


def _read_stack(stack: str | None) -> tuple[Any, str, list[str]]:
    """The stack's orchestrator config, its name, and the Kubernetes Secrets its pods
    read (none unless it keeps its secrets in Kubernetes)."""
    from kitaru.plugin import KitaruStackError, get_stack
    from kitaru_kubernetes.orchestrator import KubernetesOrchestrator
    from kitaru_kubernetes.secrets import KubernetesSecretProvider, secret_names

    target = get_stack(stack)
    orchestrator = target.orchestrator
    if not isinstance(orchestrator, KubernetesOrchestrator):
        raise KitaruStackError(
            f"stack {target.name!r} runs executions on the {orchestrator.flavor!r} "
            "orchestrator; name a stack with the kubernetes orchestrator (--stack NAME)"
        )
    provider = target.secret_provider
    names: list[str] = []
    if isinstance(provider, KubernetesSecretProvider):
        names = secret_names(provider, target.definition, orchestrator.config.pod_secrets)
    return orchestrator.config, target.name, names


def _check_schedule(schedule: str) -> None:
    from croniter import croniter

    from kitaru.plugin import KitaruUsageError

    if len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        raise KitaruUsageError(
            f"--schedule {schedule!r} is not a cron schedule Kubernetes takes: five fields, "
            "minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'"
        )


def dump(documents: list[dict[str, Any]]) -> str:
    """YAML with no anchors or aliases (``&id001``), which some tools refuse."""
    import yaml

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump_all(documents, Dumper=Plain, sort_keys=False)


def kustomize_base(documents: list[dict[str, Any]]) -> dict[str, str]:
    """One file per resource, and the kustomization.yaml that lists them."""
    files: dict[str, str] = {}
    for document in documents:
        name = f"{document['kind'].lower()}-{document['metadata']['name']}.yaml"
        files[name] = dump([document])
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(files),
    }
    return {"kustomization.yaml": dump([kustomization]), **files}
