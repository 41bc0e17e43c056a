"""Property tests of the parsers that take input from outside: any value, name, text or
stack file is either accepted and round-trips exactly, or refused with a KitaruError,
never another exception."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitaru_core.artifacts import Artifacts
from kitaru_core.errors import KitaruError
from kitaru_core.stack import StackDefinition
from kitaru_core.stack_registry import get_stack
from kitaru_core.untrusted import parse_json, parse_json_or_text, validate_name

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Subclassed(dict):  # type: ignore[type-arg]
    pass


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(max_size=8),
    st.sets(st.integers(), max_size=3),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), children, max_size=4),
        st.builds(Subclassed, st.dictionaries(st.text(max_size=3), children, max_size=2)),
    ),
    max_leaves=20,
)


def is_plain(value: Any) -> bool:
    tp = type(value)
    if value is None or tp in (bool, int, str):
        return True
    if tp is float:
        return math.isfinite(value)
    if tp in (list, tuple):
        return all(is_plain(v) for v in value)
    if tp is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    return False


def as_json(value: Any) -> Any:
    """What a plain value is once it has been JSON: tuples are lists."""
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


@pytest.fixture
def artifacts() -> Artifacts:
    return get_stack().artifacts


@SETTINGS
@given(json_like)
def test_a_value_from_outside_round_trips_as_json_or_is_refused(
    artifacts: Artifacts, value: Any
) -> None:
    try:
        record = artifacts.write(value, exec_id=None, name="v", role="memory", data_only=True)
    except KitaruError:
        assert not is_plain(value)
        return
    assert is_plain(value)
    assert record.serializer in ("json", "str") and record.signature is None
    assert artifacts.read(record) == as_json(value)


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_parses_to_plain_data_or_is_refused(text: str) -> None:
    try:
        value = parse_json(text, what="--value")
    except KitaruError:
        return
    assert is_plain(value)
    assert json.loads(json.dumps(value)) == value


@SETTINGS
@given(st.text(max_size=200))
def test_text_or_json_from_a_command_line_is_always_plain(text: str) -> None:
    try:
        value = parse_json_or_text(text, what="--value")
    except KitaruError:
        return
    assert is_plain(value)


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.integers(), st.none()))
def test_a_name_is_valid_exactly_when_it_fits_the_pattern(name: Any) -> None:
    try:
        assert validate_name("memory key", name) == name
    except KitaruError:
        return
    assert isinstance(name, str) and 1 <= len(name) <= 255


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))
yaml_values = st.recursive(
    yaml_scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)
    ),
    max_leaves=10,
)
stack_files = st.one_of(
    st.text(max_size=300),
    st.dictionaries(
        st.sampled_from(["name", "artifact_store", "llm_gateway", "orchestrator", "bogus"]),
        yaml_values,
        max_size=4,
    ).map(lambda d: json.dumps(d)),  # JSON is YAML
)


@SETTINGS
@given(stack_files)
def test_any_stack_file_is_read_or_refused_with_a_stack_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        definition = StackDefinition.from_file(path)
    except KitaruError:
        return
    assert StackDefinition.from_mapping(definition.to_mapping(), "again") == StackDefinition(
        definition.name, definition.components, "again"
    )
