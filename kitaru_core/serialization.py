"""Typed values to bytes and back.

Each serialized value carries the name of its serializer and a reference to its type,
so ``load`` returns the same type that was stored. The order of preference is
readable formats first (str, bytes, JSON, pydantic, dataclasses); pickle is the
fallback and is recorded as such so a reader knows the bytes are not portable.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import pickle
import sys
from dataclasses import dataclass
from typing import Any

from kitaru_core.errors import KitaruUsageError

_JSON_SCALARS = (int, float, bool, type(None))
_JSON_CONTAINERS = (dict, list, tuple)


@dataclass(frozen=True)
class Serialized:
    data: bytes
    serializer: str
    """One of ``str``, ``bytes``, ``json``, ``pydantic``, ``dataclass``, ``pickle``."""
    type_ref: str
    """``module:qualname`` of the value's type."""


def type_ref_of(tp: type) -> str:
    return f"{tp.__module__}:{tp.__qualname__}"


def serialize(value: Any, *, what: str = "value") -> Serialized:
    """Serialize ``value``; ``what`` names it in the error when nothing can."""
    tp = type(value)
    if tp is str:
        return Serialized(value.encode(), "str", "builtins:str")
    if tp is bytes:
        return Serialized(value, "bytes", "builtins:bytes")
    if tp in _JSON_SCALARS:
        return Serialized(json.dumps(value).encode(), "json", type_ref_of(tp))
    if tp in _JSON_CONTAINERS:
        encoded = _json_roundtrip(value)
        if encoded is not None:
            return Serialized(encoded, "json", type_ref_of(tp))
    elif _is_pydantic_model(value):
        return Serialized(value.model_dump_json().encode(), "pydantic", type_ref_of(tp))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoded = _dataclass_json(value)
        if encoded is not None:
            return Serialized(encoded, "dataclass", type_ref_of(tp))
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise KitaruUsageError(
            f"{what} of type {tp.__module__}.{tp.__qualname__} cannot be serialized "
            f"({type(exc).__name__}: {exc}); pass or return plain data (str, bytes, "
            "JSON-able values, pydantic models, dataclasses) or a picklable object"
        ) from exc
    return Serialized(data, "pickle", type_ref_of(tp))


def deserialize(data: bytes, serializer: str, type_ref: str) -> Any:
    if serializer == "str":
        return data.decode()
    if serializer == "bytes":
        return data
    if serializer == "json":
        value = json.loads(data)
        return tuple(value) if type_ref == "builtins:tuple" else value
    if serializer == "pydantic":
        from pydantic import BaseModel

        return _resolve_kind(type_ref, BaseModel).model_validate_json(data)
    if serializer == "dataclass":
        from pydantic import TypeAdapter

        return TypeAdapter(_resolve_kind(type_ref, None)).validate_json(data)
    if serializer == "pickle":
        return _ScriptAwareUnpickler(io.BytesIO(data)).load()
    raise KitaruUsageError(f"unknown serializer {serializer!r}; is this Kitaru too old?")


# -- helpers ---------------------------------------------------------------------------


def _json_roundtrip(value: Any) -> bytes | None:
    """JSON bytes if they load back equal (no int dict keys, nested tuples or NaN)."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    loaded = json.loads(text)
    if type(value) is tuple:
        loaded = tuple(loaded)
    return text.encode() if loaded == value else None


def _is_pydantic_model(value: Any) -> bool:
    # Checked without importing pydantic: a model's class has pydantic in sys.modules.
    return "pydantic" in sys.modules and isinstance(value, sys.modules["pydantic"].BaseModel)


def _dataclass_json(value: Any) -> bytes | None:
    from pydantic import TypeAdapter

    try:
        adapter: Any = TypeAdapter(type(value))
        data: bytes = adapter.dump_json(value)
        if adapter.validate_json(data) != value:
            return None
    except Exception:
        return None
    return data


# Flows defined in a script run as ``__main__`` are re-imported under another module
# name in a fresh process; types recorded as ``__main__:X`` are looked up there too.
script_modules: list[str] = []


def resolve_type(type_ref: str) -> Any:
    module_name, _, qualname = type_ref.partition(":")
    candidates = [module_name] + (script_modules if module_name == "__main__" else [])
    for name in candidates:
        try:
            obj: Any = importlib.import_module(name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            return obj
        except (ImportError, AttributeError):
            continue
    raise KitaruUsageError(
        f"cannot import type {type_ref!r} to load a stored value; make sure the module "
        "that defines it is importable (installed or on PYTHONPATH)"
    )


def _resolve_kind(type_ref: str, base: type | None) -> Any:
    """The recorded type, if it is what its serializer says: a subclass of ``base``, or
    a dataclass when ``base`` is None; anything else is refused, never called."""
    tp = resolve_type(type_ref)
    ok = isinstance(tp, type) and (
        issubclass(tp, base) if base is not None else dataclasses.is_dataclass(tp)
    )
    if not ok:
        kind = base.__name__ if base is not None else "dataclass"
        raise KitaruUsageError(
            f"stored type {type_ref!r} is not a {kind}; the value was not loaded"
        )
    return tp


class _ScriptAwareUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__":
            return resolve_type(f"__main__:{name}")
        return super().find_class(module, name)
