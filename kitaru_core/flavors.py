"""Flavors: named implementations of a component type, declared as data.

A flavor says what it is (component type, name), how it is configured (a pydantic
model, or the import path of one) and where its implementation lives (an import path).
Nothing is imported until a stack uses the flavor, so listing plugins and describing
stacks never imports a cloud SDK.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitaru_core.errors import KitaruStackError

COMPONENT_TYPES = ("artifact_store", "secret_provider", "orchestrator", "llm_gateway")

# The extra (and so the plugin package kitaru-EXTRA) that provides each first-party
# flavor, for the one install command that fixes a stack naming flavors not installed.
# Only plugins that exist are named: a hint must be a command that works.
FIRST_PARTY_EXTRAS = {
    "s3": "aws",
    "aws-secrets-manager": "aws",
    "gcs": "gcp",
    "gcp-secret-manager": "gcp",
    "azure-blob": "azure",
    "azure-key-vault": "azure",
    "kubernetes": "kubernetes",
    "kubernetes-secrets": "kubernetes",
}


PLUGIN_COMMANDS = {"kubernetes": "kubernetes"}
"""Commands that first-party plugins add (``kitaru kubernetes``), with their extra."""


def install_command(extras: list[str]) -> str:
    """The command that installs the first-party plugins for ``extras``.

    From a source checkout, the plugins' own folders (editable). Otherwise the wheels
    that ``nox -s dist`` builds of the core and every plugin: the public index holds an
    unrelated project named ``kitaru``, so a bare ``pip install "kitaru[aws]"`` would
    install the wrong thing.
    """
    checkout = Path(__file__).resolve().parent.parent
    folders = [checkout / "plugins" / f"kitaru-{extra}" for extra in extras]
    if all((folder / "pyproject.toml").exists() for folder in folders):
        shown = []
        for folder in folders:
            try:
                shown.append(os.path.relpath(folder))
            except ValueError:  # another drive
                shown.append(str(folder))
        return "pip install " + " ".join(f"-e {path}" for path in shown)
    return (
        f'pip install --no-index --find-links DIST "kitaru[{",".join(extras)}]" '
        "(DIST: the folder of wheels `nox -s dist` builds from a Kitaru checkout)"
    )


def import_object(path: str) -> Any:
    """``package.module:Name`` to the object it names."""
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Flavor:
    component_type: str
    """One of ``artifact_store``, ``secret_provider``, ``orchestrator``, ``llm_gateway``."""
    name: str
    implementation: str
    """``module:Class`` of the component; the class takes the validated config model."""
    config: type[Any] | str
    """The pydantic config model (or its ``module:Class`` path, to keep imports lazy)."""
    description: str = ""
    resolve_when_used: tuple[str, ...] = ()
    """Config fields whose ``{{ secret.X }}`` references the core resolves each time it
    uses them (an LLM alias's key), instead of once when the component is built."""
    machine_local: bool = False
    """Its data lives on this machine only (a directory, a file): another machine, such
    as a pod, cannot reach it."""
    runs_elsewhere: bool = False
    """An orchestrator that runs executions on other machines (a Kubernetes Job): its
    stack needs a shared metadata store and components those machines can reach."""
    plugin: str = field(default="", compare=False)
    """The plugin that registered it (set by the registry)."""
    plugin_version: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.component_type not in COMPONENT_TYPES:
            raise ValueError(
                f"flavor {self.name!r} has component type {self.component_type!r}; "
                f"use one of {', '.join(COMPONENT_TYPES)}"
            )

    def config_model(self) -> type[Any]:
        if isinstance(self.config, str):
            return import_object(self.config)
        return self.config

    def implementation_class(self) -> type[Any]:
        try:
            return import_object(self.implementation)
        except ImportError as exc:
            raise KitaruStackError(
                f"flavor {self.name!r} ({self.component_type}) from plugin {self.plugin!r} "
                f"cannot import its implementation {self.implementation}: {exc}; "
                "reinstall the plugin with its dependencies"
            ) from exc


class FlavorRegistry:
    """Every flavor the loaded plugins registered, by (component type, name)."""

    def __init__(self) -> None:
        self._flavors: dict[tuple[str, str], Flavor] = {}

    def add(self, flavor: Flavor) -> None:
        key = (flavor.component_type, flavor.name)
        existing = self._flavors.get(key)
        if existing is not None and existing.plugin != flavor.plugin:
            raise KitaruStackError(
                f"flavor {flavor.name!r} ({flavor.component_type}) is registered by both "
                f"{existing.plugin!r} and {flavor.plugin!r}; uninstall or disable one "
                "(KITARU_DISABLE_PLUGINS)"
            )
        self._flavors[key] = flavor

    def get(self, component_type: str, name: str) -> Flavor | None:
        return self._flavors.get((component_type, name))

    def all(self) -> list[Flavor]:
        return sorted(self._flavors.values(), key=lambda f: (f.component_type, f.name))

    def names(self, component_type: str) -> list[str]:
        return sorted(n for (t, n) in self._flavors if t == component_type)
