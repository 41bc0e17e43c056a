"""Values come back with the type they went in with; the pickle fallback is recorded."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from kitaru_core.errors import KitaruUsageError
from kitaru_core.serialization import deserialize, serialize


class Order(BaseModel):
    id: int
    items: list[str]


@dataclass
class Point:
    x: float
    y: float


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value


@pytest.mark.parametrize(
    ("value", "serializer"),
    [
        ("text ✓", "str"),
        (b"\x00\x01bytes", "bytes"),
        (42, "json"),
        (1.5, "json"),
        (True, "json"),
        (None, "json"),
        ({"a": [1, 2, {"b": None}]}, "json"),
        ([1, "two", 3.0], "json"),
        ((1, 2, 3), "json"),
        (Order(id=1, items=["tea"]), "pydantic"),
        (Point(1.0, 2.5), "dataclass"),
        ({1: "int keys would become strings in JSON"}, "pickle"),
        ([(1, 2)], "pickle"),
        ({1, 2, 3}, "pickle"),
        (Opaque(7), "pickle"),
    ],
)
def test_roundtrip_keeps_value_and_type(value: Any, serializer: str) -> None:
    serialized = serialize(value)
    assert serialized.serializer == serializer
    loaded = deserialize(serialized.data, serialized.serializer, serialized.type_ref)
    assert loaded == value
    assert type(loaded) is type(value)


def test_readable_formats_are_really_readable() -> None:
    assert serialize({"a": 1}).data == b'{"a":1}'
    assert serialize(Order(id=1, items=[])).data == b'{"id":1,"items":[]}'
    assert serialize(Point(1.0, 2.0)).type_ref == f"{__name__}:Point"


def test_a_value_nothing_can_serialize_names_what_it_was() -> None:
    with pytest.raises(KitaruUsageError, match=r"the output of X of type _thread\.lock"):
        serialize(threading.Lock(), what="the output of X")


def test_a_type_that_cannot_be_imported_is_a_clear_error() -> None:
    with pytest.raises(KitaruUsageError, match="cannot import type 'nowhere:Thing'"):
        deserialize(b"{}", "pydantic", "nowhere:Thing")
