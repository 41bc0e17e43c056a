"""The flows a server may start: those of the modules or scripts named by ``--flows``
or by ``[tool.kitaru] flows = [...]`` in the project's ``pyproject.toml``.

Only these can be started over HTTP, so a caller never makes the server import code
by naming it. Each flow's arguments are checked against its signature's types before
anything is recorded.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitaru_core.errors import KitaruNotFoundError, KitaruUsageError
from kitaru_core.runtime.checkpoint import Checkpoint
from kitaru_core.runtime.flow import Flow
from kitaru_core.runtime.flow_ref import import_script, note_imported
from kitaru_core.untrusted import plain_data


def configured_sources(project: Path | None = None) -> list[str]:
    """``[tool.kitaru] flows`` of the ``pyproject.toml`` in ``project`` (the current
    directory by default), or nothing."""
    path = (project or Path.cwd()) / "pyproject.toml"
    if not path.exists():
        return []
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise KitaruUsageError(f"{path} is not valid TOML: {exc}") from None
    flows = config.get("tool", {}).get("kitaru", {}).get("flows", [])
    if not isinstance(flows, list) or not all(isinstance(f, str) for f in flows):
        raise KitaruUsageError(
            f"{path}: [tool.kitaru] flows must be a list of module names or script paths"
        )
    return flows


def _load(source: str) -> Any:
    if source.endswith(".py") or os.sep in source:
        if not os.path.exists(source):
            raise KitaruUsageError(f"--flows {source}: no such file")
        return import_script(os.path.abspath(source))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(source)
    except ImportError as exc:
        raise KitaruUsageError(
            f"--flows {source}: cannot import it ({exc}); run from the project directory "
            "or put it on PYTHONPATH"
        ) from None
    note_imported(module)
    return module


@dataclass
class ServedFlow:
    flow: Flow[Any, Any]
    source: str
    hints: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.flow.name

    def parameters(self) -> list[dict[str, Any]]:
        from pydantic import TypeAdapter

        described = []
        for name, parameter in self.flow.signature.parameters.items():
            annotation = self.hints.get(name, inspect.Parameter.empty)
            try:
                schema = (
                    {}
                    if annotation is inspect.Parameter.empty
                    else (TypeAdapter(annotation).json_schema())
                )
            except Exception:  # a type pydantic cannot describe: any JSON
                schema = {}
            entry: dict[str, Any] = {
                "name": name,
                "required": parameter.default is inspect.Parameter.empty,
                "schema": schema,
            }
            if parameter.default is not inspect.Parameter.empty:
                entry["default"] = plain_default(parameter.default)
            described.append(entry)
        return described

    @functools.cached_property
    def description(self) -> dict[str, Any]:
        """Name, source and parameters (computed once: a flow's signature is fixed)."""
        return {"name": self.name, "source": self.source, "parameters": self.parameters()}

    @functools.cached_property
    def checkpoint_types(self) -> dict[str, Any]:
        """The return annotation of each checkpoint in the flow's module, by name."""
        module = sys.modules.get(self.flow.func.__module__)
        found: dict[str, Any] = {}
        for value in vars(module).values() if module else ():
            if isinstance(value, Checkpoint):
                try:
                    hint = typing.get_type_hints(value.func).get("return")
                except Exception:  # an annotation that does not resolve: unchecked
                    hint = None
                if hint is not None:
                    found[value.name] = hint
        return found

    def override(self, key: str, value: Any) -> Any:
        """A replay override, ``checkpoint.NAME`` to a value, checked against that
        checkpoint's return annotation where the flow's module declares one."""
        from pydantic import TypeAdapter, ValidationError

        value = plain_data(value, what=f"replay override {key!r}")
        annotation = self.checkpoint_types.get(key.removeprefix("checkpoint."))
        if annotation is None:
            return value
        try:
            TypeAdapter(annotation).validate_python(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise KitaruUsageError(f"replay override {key!r}: {problem['msg']}") from None
        return value

    def arguments(self, args: Any, *, partial: bool = False) -> dict[str, Any]:
        """``args`` (JSON from a caller) checked against the flow's parameters;
        ``partial``: only those given (a replay's replaced inputs)."""
        from pydantic import TypeAdapter, ValidationError

        if not isinstance(args, dict):
            raise KitaruUsageError(f"flow {self.name!r}: args must be a JSON object")
        args = plain_data(args, what=f"the arguments of flow {self.name!r}")
        parameters = self.flow.signature.parameters
        unknown = sorted(set(args) - set(parameters))
        if unknown:
            raise KitaruUsageError(
                f"flow {self.name!r} has no parameter {unknown[0]!r} (its parameters: "
                f"{', '.join(parameters) or 'none'})"
            )
        checked: dict[str, Any] = {}
        for name, parameter in parameters.items():
            if name not in args:
                if parameter.default is inspect.Parameter.empty and not partial:
                    raise KitaruUsageError(f"flow {self.name!r} needs the argument {name!r}")
                continue
            annotation = self.hints.get(name, inspect.Parameter.empty)
            if annotation is inspect.Parameter.empty:
                checked[name] = args[name]
                continue
            try:
                checked[name] = TypeAdapter(annotation).validate_python(args[name])
            except ValidationError as exc:
                problem = exc.errors()[0]
                raise KitaruUsageError(
                    f"argument {name!r} of flow {self.name!r}: {problem['msg']}"
                ) from None
        return checked


def plain_default(value: Any) -> Any:
    try:
        return plain_data(value, what="a default")
    except KitaruUsageError:
        return repr(value)


class FlowCatalog:
    def __init__(self, sources: list[str]) -> None:
        self.sources = list(dict.fromkeys(sources))
        self._flows: dict[str, ServedFlow] = {}
        for source in self.sources:
            module = _load(source)
            for value in vars(module).values():
                if isinstance(value, Flow) and value.name not in self._flows:
                    try:
                        hints = typing.get_type_hints(value.func)
                    except Exception:  # an annotation that does not resolve: unchecked
                        hints = {}
                    hints.pop("return", None)
                    self._flows[value.name] = ServedFlow(value, source, hints)

    def __iter__(self) -> typing.Iterator[ServedFlow]:
        return iter(sorted(self._flows.values(), key=lambda f: f.name))

    def __len__(self) -> int:
        return len(self._flows)

    def serving(self, name: str, flow_ref: str) -> ServedFlow | None:
        """The served flow that runs executions recorded as ``name`` at ``flow_ref``."""
        found = self._flows.get(name)
        return found if found is not None and found.flow.ref == flow_ref else None

    def get(self, name: str) -> ServedFlow:
        found = self._flows.get(name)
        if found is None:
            served = ", ".join(sorted(self._flows)) or "none: start the server with --flows"
            raise KitaruNotFoundError(f"no flow named {name!r} is served here (served: {served})")
        return found
