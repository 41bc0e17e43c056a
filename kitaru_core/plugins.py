"""Finding and loading plugins, one entry point at a time.

Entry points of the group ``kitaru`` are imported one by one: a plugin that fails to
import (or declares an incompatible plugin API, or misspells a hook) is recorded with
its reason and left out, and every other plugin and the CLI keep working.
``KITARU_PLUGINS_STRICT=1`` turns such a failure into an error, for plugin authors.

``KITARU_LOAD_PLUGINS=a,b`` loads only the named plugins (empty: none);
``KITARU_DISABLE_PLUGINS=a,b`` leaves those out. The built-in flavors are registered
through the same hooks, as the plugin ``builtin``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from kitaru_core import __version__, hookspecs
from kitaru_core.builtin import plugin as builtin
from kitaru_core.errors import KitaruStackError
from kitaru_core.events import Observers
from kitaru_core.flavors import Flavor, FlavorRegistry
from kitaru_core.pluginapi import PLUGIN_API

PLUGIN_API_VERSION = PLUGIN_API
"""Plugins set ``KITARU_PLUGIN_API`` in their module: the API they were written for."""
SUPPORTED_PLUGIN_APIS = frozenset({2, PLUGIN_API_VERSION})
"""API 1 handed observer hooks keyword arguments and a store row; API 2 one event; API
3 changed only orchestrators, so an API 2 plugin loads unless it registers one."""
ENTRY_POINT_GROUP = "kitaru"
_REGISTRATION_HOOKS = {
    "artifact_store": "kitaru_register_artifact_stores",
    "secret_provider": "kitaru_register_secret_providers",
    "orchestrator": "kitaru_register_orchestrators",
    "llm_gateway": "kitaru_register_llm_gateways",
}


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str
    flavors: list[str] = field(default_factory=list)
    error: str | None = None
    api: int = PLUGIN_API
    """The plugin API it was written for (``KITARU_PLUGIN_API``)."""

    @property
    def loaded(self) -> bool:
        return self.error is None


class Plugins:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("kitaru")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.registry = FlavorRegistry()
        self.strict = os.environ.get("KITARU_PLUGINS_STRICT", "") not in ("", "0", "false")
        self._load()

    # -- loading ---------------------------------------------------------------------

    def _load(self) -> None:
        self.pm.register(builtin, name="builtin")
        self.infos["builtin"] = PluginInfo("builtin", builtin.__name__, "kitaru", __version__)
        for entry_point in self._selected_entry_points():
            self._load_entry_point(entry_point)
        self._register_flavors()
        self.observers = Observers(self.pm.hook, strict=self.strict)

    def _selected_entry_points(self) -> list[Any]:
        from importlib.metadata import entry_points

        only = os.environ.get("KITARU_LOAD_PLUGINS")
        allowed = None if only is None else {n.strip() for n in only.split(",") if n.strip()}
        disabled = {
            n.strip() for n in os.environ.get("KITARU_DISABLE_PLUGINS", "").split(",") if n.strip()
        }
        return [
            ep
            for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
            if ep.name not in disabled and (allowed is None or ep.name in allowed)
        ]

    def _load_entry_point(self, entry_point: Any) -> None:
        dist = getattr(entry_point, "dist", None)
        info = PluginInfo(
            name=entry_point.name,
            module=entry_point.value,
            distribution=dist.name if dist else "?",
            version=dist.version if dist else "?",
        )
        self.infos[info.name] = info
        try:
            module = entry_point.load()
            self._check_api(info, module)
            self.pm.register(module, name=info.name)
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError as exc:
                self.pm.unregister(name=info.name)
                raise KitaruStackError(f"{exc}; hook names are listed in docs/plugins.md") from exc
        except Exception as exc:
            self._failed(info, exc)

    def _check_api(self, info: PluginInfo, module: Any) -> None:
        declared = getattr(module, "KITARU_PLUGIN_API", None)
        if declared is None:
            raise KitaruStackError(
                f"plugin {info.name!r} does not say which plugin API it was written for; "
                f"its module should set KITARU_PLUGIN_API = {PLUGIN_API_VERSION}"
            )
        if declared not in SUPPORTED_PLUGIN_APIS:
            raise KitaruStackError(
                f"plugin {info.name!r} ({info.distribution} {info.version}) was written for "
                f"plugin API {declared}, and this Kitaru ({__version__}) supports "
                f"{', '.join(map(str, sorted(SUPPORTED_PLUGIN_APIS)))}: install a version of "
                f"{info.distribution} made for it, or upgrade kitaru"
            )
        info.api = declared

    def _failed(self, info: PluginInfo, exc: BaseException) -> None:
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = (
            f" ({last[0].filename}:{last[0].lineno})"
            if last and not isinstance(exc, KitaruStackError)
            else ""
        )
        info.error = f"{type(exc).__name__}: {exc}{where}"
        if self.strict:
            raise KitaruStackError(
                f"plugin {info.name!r} failed to load: {info.error} (KITARU_PLUGINS_STRICT=1)"
            ) from exc

    def _register_flavors(self) -> None:
        for component_type, hook_name in _REGISTRATION_HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                info = self.infos[impl.plugin_name]
                if not info.loaded:
                    continue
                try:
                    impl.function(register=self._register_callback(info, component_type))
                except Exception as exc:
                    self._failed(info, exc)

    def _register_callback(self, info: PluginInfo, component_type: str) -> Any:
        def register(flavor: Flavor) -> None:
            if flavor.component_type != component_type:
                raise KitaruStackError(
                    f"plugin {info.name!r} registered {flavor.component_type} flavor "
                    f"{flavor.name!r} from the {component_type} hook"
                )
            if component_type == "orchestrator" and info.api < 3:
                raise KitaruStackError(
                    f"plugin {info.name!r} registers orchestrator {flavor.name!r} for plugin "
                    f"API {info.api}; orchestrators need API {PLUGIN_API_VERSION} (start() "
                    "takes background=): install a version of "
                    f"{info.distribution} made for it"
                )
            stamped = dataclasses.replace(flavor, plugin=info.name, plugin_version=info.version)
            self.registry.add(stamped)
            info.flavors.append(f"{component_type}:{flavor.name}")

        return register

    # -- use -------------------------------------------------------------------------

    def failed(self) -> list[PluginInfo]:
        return [i for i in self.infos.values() if not i.loaded]


_plugins: Plugins | None = None
_lock = threading.Lock()


def get_plugins() -> Plugins:
    global _plugins
    if _plugins is None:
        with _lock:
            if _plugins is None:
                _plugins = Plugins()
    return _plugins


def reset_plugins() -> None:
    global _plugins
    with _lock:
        _plugins = None
