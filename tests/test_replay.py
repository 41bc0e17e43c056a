"""Replay: reuse the record before a checkpoint, run the rest live; refuse bad requests."""

from __future__ import annotations

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow

ran: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


@checkpoint
def load(source: str) -> list[int]:
    ran.append("load")
    return [len(source), 2, 3]


@checkpoint
def scale(values: list[int], factor: int) -> list[int]:
    ran.append("scale")
    return [v * factor for v in values]


@checkpoint
def total(values: list[int]) -> int:
    ran.append("total")
    return sum(values)


@flow
def pipeline(source: str, factor: int = 2) -> int:
    values = scale(load(source), factor)
    return total(values) + total([1])


def test_replay_reuses_checkpoints_before_from_and_runs_the_rest() -> None:
    first = pipeline.run("abc")
    assert first.wait() == 17
    ran.clear()
    second = pipeline.replay(first.exec_id, from_="scale", factor=10)
    assert second.wait() == 81  # (3 + 2 + 3) * 10 + 1, with load's recorded output
    assert ran == ["scale", "total", "total"]
    replay = KitaruClient().executions.get(second.exec_id)
    assert replay.original_exec_id == first.exec_id


def test_an_override_replaces_a_recorded_output() -> None:
    first = pipeline.run("abc")
    ran.clear()
    second = pipeline.replay(first.exec_id, from_="scale", overrides={"checkpoint.load": [100]})
    assert second.wait() == 201
    assert ran == ["scale", "total", "total"]
    comparison = kitaru.diff(first.exec_id, second.exec_id)
    assert [(c.name, c.status) for c in comparison.checkpoints] == [
        ("load", "changed"),
        ("scale", "changed"),
        ("total", "changed"),
        ("total", "same"),
    ]
    assert comparison.result is not None and comparison.result.status == "changed"


def test_the_client_replays_too_and_a_replay_can_be_replayed() -> None:
    first = pipeline.run("abc")
    second = KitaruClient().executions.replay(first.exec_id, from_=1)
    third = KitaruClient().executions.replay(second.exec_id, from_="load", source="abcdef")
    assert (second.wait(), third.wait()) == (17, 23)


def test_an_ambiguous_from_names_the_positions() -> None:
    first = pipeline.run("abc")
    with pytest.raises(kitaru.KitaruUsageError, match=r"ran 2 times .*positions 2, 3"):
        pipeline.replay(first.exec_id, from_="total")
    assert pipeline.replay(first.exec_id, from_=3).wait() == 17


def test_bad_replays_create_nothing() -> None:
    first = pipeline.run("abc")
    with pytest.raises(kitaru.KitaruUsageError, match="no completed checkpoint named 'nope'"):
        pipeline.replay(first.exec_id, from_="nope")
    with pytest.raises(kitaru.KitaruUsageError, match=r"'checkpoint\.NAME'"):
        pipeline.replay(first.exec_id, from_="scale", overrides={"load": 1})
    with pytest.raises(kitaru.KitaruUsageError, match="no journal position 9"):
        pipeline.replay(first.exec_id, from_=9)
    with pytest.raises(kitaru.KitaruUsageError, match="cannot take these inputs"):
        pipeline.replay(first.exec_id, from_="scale", nope=1)
    assert len(KitaruClient().executions.list()) == 1


def test_diff_of_identical_runs_is_all_same() -> None:
    a, b = pipeline.run("abc"), pipeline.run("abc")
    comparison = kitaru.diff(a.exec_id, b.exec_id)
    assert {c.status for c in comparison.checkpoints} == {"same"}
    assert all(c.diff == "" for c in comparison.checkpoints)
    assert "same" in str(comparison)


def test_diff_shows_checkpoints_only_in_one_run() -> None:
    a = pipeline.run("abc")
    b = pipeline.replay(a.exec_id, from_="scale", overrides={"checkpoint.load": [1]})
    b.wait()
    short = KitaruClient().executions.get(a.exec_id).checkpoints
    assert len(short) == 4
    comparison = kitaru.diff(a.exec_id, b.exec_id)
    assert len(comparison.checkpoints) == 4
