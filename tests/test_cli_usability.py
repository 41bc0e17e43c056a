"""What a new user meets at the command line: the next command to type, tables that
fit a terminal, values checked against the types they are for, small refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import flows
from conftest import subprocess_env
from kitaru import KitaruClient


def kitaru(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        env=subprocess_env(**env),
    )


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# -- the next command --------------------------------------------------------------------


def test_run_that_reaches_a_wait_prints_the_command_that_answers_it() -> None:
    proc = kitaru("run", "flows:needs_approval")
    exec_id = proc.stdout.split()[0]
    assert proc.stdout.splitlines() == [
        f"{exec_id} waiting",
        "waiting for approve (bool): Go ahead?",
        f"answer with: kitaru executions input {exec_id} --wait approve --value JSON",
    ]

    given = kitaru("executions", "input", exec_id, "--wait", "approve", "--value", "true")
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
        out = kitaru(*args, COLUMNS="80").stdout
        table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
        assert table and all(len(line) <= 80 for line in table), out
    waits = kitaru("executions", "waits", COLUMNS="80").stdout
    assert exec_id[:12] in waits and "…" in waits
    get = kitaru("executions", "get", exec_id, COLUMNS="80").stdout
    assert f"kitaru executions input {exec_id} --wait wait_1 --value JSON" in get

    llm = KitaruClient().executions.latest(flow="llm_twice")
    assert llm is not None
    table = kitaru("executions", "get", llm.exec_id, COLUMNS="80").stdout
    assert all(len(line) <= 80 for line in table.splitlines() if line[:1] in "┏┃┡│└"), table
    assert "completed" in table and "$0.000000" in table


# -- values checked against their types --------------------------------------------------


def test_arg_values_are_parsed_by_the_parameter_type() -> None:
    as_text = kitaru("run", "flows:research", "--arg", "topic=42")
    assert as_text.returncode == 0 and "result: NOTES ON 42" in as_text.stdout

    wrong = kitaru("run", "flows:steps", "--arg", "n=two")
    assert "--arg n must be int written as JSON; 'two' is not JSON" in error_line(wrong)
    unknown = kitaru("run", "flows:steps", "--arg", "count=2")
    assert "flow 'steps' has no parameter 'count' (its parameters: n)" in error_line(unknown)
    assert KitaruClient().executions.list(flow="steps") == []


def test_override_values_are_checked_against_the_recorded_output_type() -> None:
    source = flows.steps.run(1).exec_id
    refused = kitaru(
        "executions", "replay", source, "--from", "0", "--override", "checkpoint.numbered=oops"
    )
    assert "--override checkpoint.numbered must be dict written as JSON" in error_line(refused)

    replayed = kitaru(
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
        kitaru("executions", "input", exec_id, "--value-file", str(value), "--no-resume").returncode
        == 0
    )
    assert KitaruClient().executions.resume(exec_id).wait(timeout=30) is True

    assert (
        kitaru("memory", "set", "notes", "--value-file", "-", stdin='{"a": [1, 2]}').returncode == 0
    )
    assert KitaruClient().memories.get("notes") == {"a": [1, 2]}
    wrong = kitaru("executions", "input", flows.needs_approval.run().exec_id, "--value", "yes")
    assert "--value must be bool written as JSON; 'yes' is not JSON" in error_line(wrong)


# -- smaller things ------------------------------------------------------------------------


def test_any_unique_id_prefix_names_an_execution() -> None:
    exec_id = flows.research.run("a").exec_id
    others = [e.exec_id for e in KitaruClient().executions.list()]
    prefix = next(
        exec_id[:n] for n in range(1, 33) if sum(o.startswith(exec_id[:n]) for o in others) == 1
    )
    assert kitaru("executions", "get", prefix).returncode == 0
    flows.research.run("b")
    flows.research.run("c")
    ids = [e.exec_id for e in KitaruClient().executions.list()]
    shared = next((a[:1] for a in ids if sum(b.startswith(a[:1]) for b in ids) > 1), None)
    if shared is not None:
        assert "matches several executions" in error_line(kitaru("executions", "get", shared))


def test_memory_refusals_say_what_happened() -> None:
    empty = kitaru("memory", "list")
    assert "no memory has been written yet" in empty.stdout
    flows.remembers.run()  # type: ignore[attr-defined]
    hint = kitaru("memory", "list")
    assert "flow:remembers" in hint.stdout and "--scope-type flow --scope FLOW_NAME" in hint.stdout

    KitaruClient().memories.set("gone", 1)
    KitaruClient().memories.delete("gone")
    deleted = kitaru("memory", "get", "gone")
    assert "was deleted at version 2" in error_line(deleted)

    cas = kitaru("memory", "set", "fresh", "1", "--expected-version", "3")
    assert "has never been written" in error_line(cas)


def test_help_version_and_status_filter() -> None:
    for args in (["--help"], ["executions", "get", "--help"], ["executions", "input", "--help"]):
        out = kitaru(*args, COLUMNS="120").stdout
        assert "<bool>" not in out and "<list[str]>" not in out and "{exec_id}" not in out
    assert kitaru("--version").stdout.strip() == kitaru("version").stdout.strip() != ""
    bad = kitaru("executions", "list", "--status", "done")
    assert bad.returncode == 2 and "'done' is not a status" in bad.stderr


def test_model_delete_and_stack_rules(tmp_path: Path) -> None:
    assert kitaru("model", "register", "fast", "--model", "openai/x").returncode == 0
    assert kitaru("model", "delete", "fast").returncode == 0
    assert "no user-level model alias 'fast'" in error_line(kitaru("model", "delete", "fast"))

    stack = tmp_path / "other.yaml"
    stack.write_text("name: other\n")
    assert kitaru("stack", "register", str(stack)).returncode == 0
    flows.needs_approval.run(stack="other")
    refused = kitaru("stack", "delete", "other")
    assert "1 execution(s) still running or waiting" in error_line(refused)
    assert kitaru("stack", "delete", "other", "--force").returncode == 0

    missing = kitaru("executions", "list", KITARU_STACK="prod")
    assert missing.returncode == 0  # listing needs no stack
    run = kitaru("run", "flows:research", "--arg", "topic=a", KITARU_STACK="prod")
    assert "from the environment variable KITARU_STACK" in error_line(run)


def test_the_example_local_stack_file_stays_in_kitaru_home(kitaru_home: Path) -> None:
    local = Path(__file__).parent.parent / "stacks" / "local.yaml"
    assert kitaru("stack", "register", str(local), "--activate").returncode == 0
    KitaruClient().memories.set("big", "b" * 10_000)
    assert any((kitaru_home / "artifacts").rglob("*"))


@pytest.mark.parametrize("prefix", ["0", "x"])
def test_prefix_that_matches_nothing(prefix: str) -> None:
    assert "no execution with id" in error_line(kitaru("executions", "get", prefix * 3))
