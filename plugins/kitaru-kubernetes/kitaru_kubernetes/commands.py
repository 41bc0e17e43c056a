"""``kitaru kubernetes manifests``: the worker's Deployment (or CronJob) and its RBAC."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run Kitaru's worker in a Kubernetes cluster.", no_args_is_help=True)


@app.command()
def manifests(
    stack: str = typer.Option(None, "--stack", help="a stack with the kubernetes orchestrator"),
    cronjob: bool = typer.Option(
        False, "--cronjob", help="a CronJob running `kitaru worker --once` instead"
    ),
    schedule: str = typer.Option("* * * * *", "--schedule", help="the CronJob's schedule"),
    replicas: int = typer.Option(1, "--replicas", min=1, help="workers in the Deployment"),
) -> None:
    """Print YAML for `kubectl apply -f -`: ServiceAccount, Role, RoleBinding and the
    worker (its pods read KITARU_DATABASE_URL from the stack's database_url_secret)."""
    import yaml

    from kitaru.plugin import KitaruStackError, get_stack
    from kitaru_kubernetes.manifests import worker_manifests
    from kitaru_kubernetes.orchestrator import KubernetesOrchestrator

    target = get_stack(stack)
    orchestrator = target.orchestrator
    if not isinstance(orchestrator, KubernetesOrchestrator):
        raise KitaruStackError(
            f"stack {target.name!r} runs executions on the {orchestrator.flavor!r} "
            "orchestrator; name a stack with the kubernetes orchestrator (--stack NAME)"
        )
    documents = worker_manifests(
        orchestrator.config, target.name, cronjob=cronjob, schedule=schedule, replicas=replicas
    )
    typer.echo(yaml.safe_dump_all(documents, sort_keys=False), nl=False)
