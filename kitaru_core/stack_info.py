"""What a stack and the installed plugins are made of, as data (for ``kitaru stack
describe``, ``kitaru plugins list`` and the server)."""

from __future__ import annotations

from typing import Any

from kitaru_core.plugins import get_plugins
from kitaru_core.stack import mask_config
from kitaru_core.stack_registry import active_stack_name, get_stack, stack_names


def describe_stack(name: str | None = None) -> dict[str, Any]:
    """A stack as ``kitaru stack describe --output json`` shows it: each component's
    flavor, the plugin that provides it, and its config with secrets masked."""
    stack = get_stack(name)
    registry = get_plugins().registry
    components = []
    for spec in stack.definition.components.values():
        flavor = registry.get(spec.component_type, spec.flavor)
        components.append(
            {
                "component": spec.component_type,
                "flavor": spec.flavor,
                "plugin": flavor.plugin if flavor else None,
                "plugin_version": flavor.plugin_version if flavor else None,
                "installed": flavor is not None,
                "default": not spec.explicit,
                "config": mask_config(spec.config),
            }
        )
    return {
        "name": stack.name,
        "active": stack.name == active_stack_name(),
        "source": stack.definition.source,
        "components": components,
    }


def describe_stacks() -> list[dict[str, Any]]:
    return [describe_stack(name) for name in stack_names()]


def describe_plugins() -> list[dict[str, Any]]:
    """Every plugin, its version and flavors, and why one failed to load."""
    return [
        {
            "name": i.name,
            "distribution": i.distribution,
            "version": i.version,
            "module": i.module,
            "flavors": i.flavors,
            "loaded": i.loaded,
            "error": i.error,
        }
        for i in get_plugins().infos.values()
    ]
