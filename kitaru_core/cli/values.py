"""Values typed on a command line, parsed by what they are for.

``--arg topic=42`` for a ``str`` parameter is the text ``"42"``; for an ``int`` one it
is the number; for a ``list[str]`` it must be JSON. Text that is not JSON is taken as
a string only where a string is expected, so a typo in a JSON value is refused with
the field and the type it needed, never stored as text by mistake. Every value stays
within the input limits of ``untrusted.py``.
"""

from __future__ import annotations

import inspect
import sys
import typing
from pathlib import Path
from typing import Any

from kitaru_core.errors import KitaruUsageError
from kitaru_core.untrusted import NotJSONError, parse_json, parse_json_or_text, plain_data


def read_value_file(path: str) -> str:
    """``--value-file PATH`` (``-``: standard input)."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KitaruUsageError(f"cannot read --value-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KitaruUsageError(f"--value-file {path} is not UTF-8 text") from None


def parse_value(raw: str, what: str) -> Any:
    """A value that has no type to go by (memory): JSON when it parses, else the text."""
    return parse_json_or_text(raw, what=what)


def _json_or_text(raw: str, what: str, *, text_ok: bool, expected: str) -> Any:
    """JSON; or, where a string is expected, the text itself."""
    if text_ok and not raw.lstrip().startswith('"'):
        return plain_data(raw, what=what)
    try:
        return parse_json(raw, what=what)
    except NotJSONError:
        if text_ok:
            return plain_data(raw, what=what)
        raise KitaruUsageError(
            f"{what} must be {expected} written as JSON; {raw[:60]!r} is not JSON"
        ) from None


def parse_for_annotation(raw: str, annotation: Any, what: str) -> Any:
    """A value for a flow parameter: checked against its type hint with pydantic."""
    if annotation in (inspect.Parameter.empty, Any):
        try:
            return parse_json(raw, what=what)
        except NotJSONError:
            return plain_data(raw, what=what)
    from pydantic import TypeAdapter, ValidationError

    adapter: Any = TypeAdapter(annotation)
    expected = _type_name(annotation)
    schema = adapter.json_schema()
    value = _json_or_text(raw, what, text_ok=_accepts_string(schema), expected=expected)
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise KitaruUsageError(f"{what} must be {expected}: {problem} (got {raw[:60]!r})") from None
    return value


def parse_for_schema(raw: str, schema: dict[str, Any], expected: str, what: str) -> Any:
    """A value for a wait: text where its JSON schema takes a string, else JSON (the
    schema itself is checked when the input is given)."""
    return _json_or_text(raw, what, text_ok=_accepts_string(schema), expected=expected)


def _accepts_string(schema: dict[str, Any]) -> bool:
    """Whether a JSON schema takes a plain string (type string, an enum of strings, or
    a union with one)."""
    if schema.get("type") == "string":
        return True
    if "enum" in schema:
        return all(isinstance(v, str) for v in schema["enum"])
    if "const" in schema:
        return isinstance(schema["const"], str)
    return any(_accepts_string(s) for s in schema.get("anyOf", []) if isinstance(s, dict))


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def split_pair(text: str, option: str) -> tuple[str, str]:
    """``key=value`` (the value may itself hold ``=``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise KitaruUsageError(f"{option} {text!r} is not key=value")
    return key, raw


def flow_arguments(flow: Any, pairs: list[str], option: str = "--arg") -> dict[str, Any]:
    """``--arg key=value`` pairs for ``flow``, each checked against its parameter."""
    parameters = flow.signature.parameters
    try:
        hints = typing.get_type_hints(flow.func)
    except Exception:  # an annotation that does not resolve: check what can be checked
        hints = {}
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, raw = split_pair(pair, option)
        if key not in parameters:
            known = ", ".join(parameters) or "none"
            raise KitaruUsageError(
                f"{option} {key}: flow {flow.name!r} has no parameter {key!r} (its parameters: "
                f"{known})"
            )
        annotation = hints.get(key, parameters[key].annotation)
        if isinstance(annotation, str):
            annotation = inspect.Parameter.empty
        arguments[key] = parse_for_annotation(raw, annotation, f"{option} {key}")
    return arguments


def type_of_record(type_ref: str) -> Any:
    """The Python type a recorded output had, for checking an override against it."""
    from kitaru_core.serialization import resolve_type

    if type_ref == "builtins:NoneType":
        return type(None)
    return resolve_type(type_ref)
