"""What comes from outside a flow's own code: names, and values given as data.

Wait input, ``memory set`` from the CLI or the client, ``--arg`` and ``--override``
values (and, later, HTTP bodies) are written by someone other than the code that reads
them. They are accepted only as plain JSON data, within size and nesting limits, and
stored with the JSON serializer, so no reader ever builds an object from them.
Names of stacks, secrets, memory keys and scopes, waits and checkpoints all follow one
pattern, checked here.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from kitaru_core.errors import KitaruUsageError

NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.:@/-]{0,254}"
"""Every name Kitaru stores: 1 to 255 characters of letters, digits and ``_ . : @ / -``,
not starting with punctuation other than ``_``."""
_NAME = re.compile(NAME_PATTERN)
EXEC_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@-]{1,128}")

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 200
"""The deepest a value from outside may nest (lists and dicts alike). Whatever is
accepted must be readable back, and a value is sent inside a response a few levels deep,
whose serializer stops at 255 levels: so this is the default and the ceiling."""


def validate_name(kind: str, name: Any) -> str:
    """``name`` if it fits :data:`NAME_PATTERN`, else a ``KitaruUsageError`` naming ``kind``."""
    return _fitting(
        _NAME,
        kind,
        name,
        "use 1 to 255 characters of letters, digits and _ . : @ / -, starting with a "
        "letter, digit or _",
    )


def validate_exec_id(exec_id: Any) -> str:
    """An execution id chosen by a caller (an idempotency key)."""
    return _fitting(
        EXEC_ID_PATTERN,
        "execution id",
        exec_id,
        "use 1 to 128 characters of letters, digits and . _ : @ -",
    )


def _fitting(pattern: re.Pattern[str], kind: str, value: Any, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise KitaruUsageError(f"{kind} {shown} is not valid: {rule}")
    return value


def limits() -> tuple[int, int]:
    """(bytes, nesting depth) allowed for one value from outside; read from
    ``KITARU_MAX_INPUT_BYTES`` and ``KITARU_MAX_INPUT_DEPTH``."""
    depth = _positive_int("KITARU_MAX_INPUT_DEPTH", MAX_DEPTH)
    if depth > MAX_DEPTH:
        raise KitaruUsageError(
            f"KITARU_MAX_INPUT_DEPTH={depth} is over {MAX_DEPTH}: deeper values could not be "
            f"sent back as JSON; use {MAX_DEPTH} or less"
        )
    return _positive_int("KITARU_MAX_INPUT_BYTES", DEFAULT_MAX_BYTES), depth


def _positive_int(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise KitaruUsageError(f"{variable}={raw!r} is not a positive whole number")
    return int(raw)


def parse_json(text: str | bytes, *, what: str) -> Any:
    """Parse JSON from outside, within the limits; errors name ``what``."""
    max_bytes, max_depth = limits()
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise KitaruUsageError(
            f"{what} is {size:,} bytes, over the limit of {max_bytes:,}; send a smaller value "
            "or raise KITARU_MAX_INPUT_BYTES"
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise NotJSONError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise _too_deep(what, max_depth) from None
    except ValueError as exc:  # NaN or Infinity
        raise KitaruUsageError(f"{what}: {exc}") from None
    return plain_data(value, what=what)


class NotJSONError(KitaruUsageError):
    """Text that does not parse as JSON."""


def parse_json_or_text(text: str, *, what: str) -> Any:
    """JSON when ``text`` parses as JSON, else the text itself (so a plain string needs
    no quotes on a command line); plain data either way, within the limits."""
    try:
        return parse_json(text, what=what)
    except NotJSONError:
        return plain_data(text, what=what)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number or null")


def _too_deep(what: str, max_depth: int) -> KitaruUsageError:
    return KitaruUsageError(
        f"{what} is nested more than {max_depth} levels deep (lists and objects alike); flatten it"
    )


def _encodable(text: str, what: str, path: str) -> str:
    """``text`` if UTF-8 can hold it: a lone surrogate (``"\\ud800"`` in JSON) cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise KitaruUsageError(
            f"{what}{_at(path)} holds the lone surrogate \\u{ord(bad):04x}, which is not "
            "text; send valid Unicode"
        ) from None
    return text


def plain_data(value: Any, *, what: str) -> Any:
    """``value`` as plain JSON data (dicts with string keys, lists, strings, finite
    numbers, booleans, None), or a ``KitaruUsageError`` saying what is not.

    Exact types only: a ``dict`` subclass, a set or any other object is refused, since
    its behaviour is code the reader did not write. Tuples become lists, as in JSON.
    """
    max_bytes, max_depth = limits()
    try:
        converted = _plain(value, what, "", 0, max_depth)
    except RecursionError:
        raise _too_deep(what, max_depth) from None
    encoded = json.dumps(converted, separators=(",", ":"), ensure_ascii=False)
    if len(encoded.encode()) > max_bytes:
        raise KitaruUsageError(
            f"{what} is {len(encoded.encode()):,} bytes as JSON, over the limit of "
            f"{max_bytes:,}; send a smaller value or raise KITARU_MAX_INPUT_BYTES"
        )
    return converted


def _plain(value: Any, what: str, path: str, depth: int, max_depth: int) -> Any:
    tp = type(value)
    if tp is str:
        return _encodable(value, what, path)
    if value is None or tp in (bool, int):
        return value
    if tp is float:
        if not math.isfinite(value):
            raise KitaruUsageError(
                f"{what}{_at(path)} is {value!r}, which JSON cannot hold; send a finite "
                "number or null"
            )
        return value
    if depth >= max_depth:
        raise _too_deep(what, max_depth)
    if tp is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise KitaruUsageError(
                    f"{what}{_at(path)} has the key {key!r} of type {type(key).__name__}; "
                    "JSON objects take string keys only"
                )
            _encodable(key, what, path)
            out[key] = _plain(item, what, f"{path}.{key}", depth + 1, max_depth)
        return out
    if tp in (list, tuple):
        return [
            _plain(item, what, f"{path}[{i}]", depth + 1, max_depth) for i, item in enumerate(value)
        ]
    raise KitaruUsageError(
        f"{what}{_at(path)} is a {tp.__module__}.{tp.__qualname__}, not plain data; values "
        "from outside a flow must be JSON (dict, list, str, int, float, bool, None), "
        "never objects. Nothing was stored"
    )


def _at(path: str) -> str:
    return f" at {path.lstrip('.')}" if path else ""
