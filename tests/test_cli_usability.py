"""What a new user meets at the command line: the next command to type, tables that
fit a terminal, values checked against the types they are for, small refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flows
from conftest import error_line, kitaru_cli
from kitaru import KitaruClient

# -- the next command --------------------------------------------------------------------


def test_run_that_reaches_a_wait_prints_the_command_that_answers_it() -> None:
    proc = kitaru_cli("run", "flows:needs_approval")
    exec_id = proc.stdout.split()[0]
    assert proc.stdout.splitlines() == [
        f"{exec_id} waiting",
        "waiting for approve (bool): Go ahead?",
        f"answer with: kitaru executions input {exec_id} --wait approve --value JSON",
    ]

    given = kitaru_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true")
    assert given.stdout.strip() == (
        f"input recorded; resuming in the background. Follow with: kitaru executions logs {exec_id}"
    )
    assert KitaruClient().executions.get(exec_id).status in ("waiting", "running", "completed")
    assert flows_result(exec_id) is True


def flows_result(exec_id: str) -> object:
    from kitaru import FlowHandle

    return FlowHandle(exec_id).wait(timeout=30)


# -- tables at 80 columns ----------------------------------------------------------------


def test_tables_fit_80_columns_without_breaking_ids_statuses_or_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "fine")
    long_question = "Is this draft about durable agents good enough to publish today? " * 3
    exec_id = flows.asks.run(long_question).exec_id  # type: ignore[attr-defined]
    flows.llm_twice.run()  # type: ignore[attr-defined]

    for args in (["executions", "list"], ["executions", "waits"], ["executions", "get", exec_id]):
        out = kitaru_cli(*args, COLUMNS="80").stdout
        table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
        assert table and all(len(line) <= 80 for line in table), out
    waits = kitaru_cli("executions", "waits", COLUMNS="80").stdout
    assert exec_id[:12] in waits and "…" in waits
    get = kitaru_cli("executions", "get", exec_id, COLUMNS="80").stdout
    assert f"kitaru executions input {exec_id} --wait wait_1 --value JSON" in get

    llm = KitaruClient().executions.latest(flow="llm_twice")
    assert llm is not None
    table = kitaru_cli("executions", "get", llm.exec_id, COLUMNS="80").stdout
    assert all(len(line) <= 80 for line in table.splitlines() if line[:1] in "┏┃┡│└"), table
    assert "completed" in table and "$0.000000" in table


# -- values checked against their types --------------------------------------------------


def test_arg_values_are_parsed_by_the_parameter_type() -> None:
    as_text = kitaru_cli("run", "flows:research", "--arg", "topic=42")
    assert as_text.returncode == 0 and "result: NOTES ON 42" in as_text.stdout

    wrong = kitaru_cli("run", "flows:steps", "--arg", "n=two")
    assert "--arg n must be int written as JSON; 'two' is not JSON" in error_line(wrong)
    unknown = kitaru_cli("run", "flows:steps", "--arg", "count=2")
    assert "flow 'steps' has no parameter 'count' (its parameters: n)" in error_line(unknown)
    assert KitaruClient().executions.list(flow="steps") == []


def test_override_values_are_checked_against_the_recorded_output_type() -> None:
    source = flows.steps.run(1).exec_id
    refused = kitaru_cli(
        "executions", "replay", source, "--from", "0", "--override", "checkpoint.numbered=oops"
    )
    assert "--override checkpoint.numbered must be dict written as JSON" in error_line(refused)

    replayed = kitaru_cli(
        "executions",
        "replay",
        source,
        "--from",
        "0",
        "--override",
        'checkpoint.numbered={"i": 1, "square": 10, "pad": ""}',
        "-o",
        "json",
    )
    assert json.loads(replayed.stdout)["result"] == [10]


def test_value_file_and_standard_input(tmp_path: Path) -> None:
    exec_id = flows.needs_approval.run().exec_id
    value = tmp_path / "value.json"
    value.write_text("true\n")
    assert (
        kitaru_cli(
            "executions", "input", exec_id, "--value-file", str(value), "--no-resume"
        ).returncode
        == 0
    )
    assert KitaruClient().executions.resume(exec_id).wait(timeout=30) is True

    assert (
        kitaru_cli("memory", "set", "notes", "--value-file", "-", stdin='{"a": [1, 2]}').returncode
        == 0
    )
    assert KitaruClient().memories.get("notes") == {"a": [1, 2]}
    wrong = kitaru_cli("executions", "input", flows.needs_approval.run().exec_id, "--value", "yes")
    assert "--value must be bool written as JSON; 'yes' is not JSON" in error_line(wrong)


# -- smaller things ------------------------------------------------------------------------


def test_any_unique_id_prefix_names_an_execution() -> None:
    exec_id = flows.research.run("a").exec_id
    others = [e.exec_id for e in KitaruClient().executions.list()]
    prefix = next(
        exec_id[:n] for n in range(1, 33) if sum(o.startswith(exec_id[:n]) for o in others) == 1
    )
    assert kitaru_cli("executions", "get", prefix).returncode == 0
    flows.research.run("b")
    flows.research.run("c")
    ids = [e.exec_id for e in KitaruClient().executions.list()]
    shared = next((a[:1] for a in ids if sum(b.startswith(a[:1]) for b in ids) > 1), None)
    if shared is not None:
        assert "matches several executions" in error_line(kitaru_cli("executions", "get", shared))


def test_memory_refusals_say_what_happened() -> None:
    empty = kitaru_cli("memory", "list")
    assert "no memory has been written yet" in empty.stdout
    flows.remembers.run()  # type: ignore[attr-defined]
    hint = kitaru_cli("memory", "list")
    assert "flow:remembers" in hint.stdout and "--scope-type flow --scope FLOW_NAME" in hint.stdout

    KitaruClient().memories.set("gone", 1)
    KitaruClient().memories.delete("gone")
    deleted = kitaru_cli("memory", "get", "gone")
    assert "was deleted at version 2" in error_line(deleted)

    cas = kitaru_cli("memory", "set", "fresh", "1", "--expected-version", "3")
    assert "has never been written" in error_line(cas)


def test_help_version_and_status_filter() -> None:
    for args in (["--help"], ["executions", "get", "--help"], ["executions", "input", "--help"]):
        out = kitaru_cli(*args, COLUMNS="120").stdout
        assert "<bool>" not in out and "<list[str]>" not in out and "{exec_id}" not in out
    assert kitaru_cli("--version").stdout.strip() == kitaru_cli("version").stdout.strip() != ""
    bad = kitaru_cli("executions", "list", "--status", "done")
    assert bad.returncode == 2 and "'done' is not a status" in bad.stderr


def test_model_delete_and_stack_rules(tmp_path: Path) -> None:
    assert kitaru_cli("model", "register", "fast", "--model", "openai/x").returncode == 0
    assert kitaru_cli("model", "delete", "fast").returncode == 0
    assert "no user-level model alias 'fast'" in error_line(kitaru_cli("model", "delete", "fast"))

    stack = tmp_path / "other.yaml"
    stack.write_text("name: other\n")
    assert kitaru_cli("stack", "register", str(stack)).returncode == 0
    flows.needs_approval.run(stack="other")
    refused = kitaru_cli("stack", "delete", "other")
    assert "1 execution(s) still running or waiting" in error_line(refused)
    assert kitaru_cli("stack", "delete", "other", "--force").returncode == 0

    missing = kitaru_cli("executions", "list", KITARU_STACK="prod")
    assert missing.returncode == 0  # listing needs no stack
    run = kitaru_cli("run", "flows:research", "--arg", "topic=a", KITARU_STACK="prod")
    assert "from the environment variable KITARU_STACK" in error_line(run)


def test_the_example_local_stack_file_stays_in_kitaru_home(kitaru_home: Path) -> None:
    local = Path(__file__).parent.parent / "stacks" / "local.yaml"
    assert kitaru_cli("stack", "register", str(local), "--activate").returncode == 0
    KitaruClient().memories.set("big", "b" * 10_000)
    assert any((kitaru_home / "artifacts").rglob("*"))


@pytest.mark.parametrize("prefix", ["0", "x"])
def test_prefix_that_matches_nothing(prefix: str) -> None:
    assert "no execution with id" in error_line(kitaru_cli("executions", "get", prefix * 3))
