"""The ``kitaru`` command, run as a user would run it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import kitaru_cli


def test_run_with_arguments_then_list_and_get_as_json(tmp_path: Path) -> None:
    ran = kitaru_cli("run", "flows:research", "--arg", "topic=durable agents", "-o", "json")
    assert ran.returncode == 0, ran.stderr
    started = json.loads(ran.stdout)
    assert started["status"] == "completed"
    assert started["result"] == "NOTES ON DURABLE AGENTS"

    listed = json.loads(kitaru_cli("executions", "list", "--output", "json").stdout)
    assert [(e["exec_id"], e["flow_name"], e["status"]) for e in listed] == [
        (started["exec_id"], "research", "completed")
    ]
    got = json.loads(kitaru_cli("executions", "get", started["exec_id"], "-o", "json").stdout)
    assert [c["name"] for c in got["checkpoints"]] == ["fetch", "summarize"]
    assert all(c["duration"] >= 0 for c in got["checkpoints"])


def test_tables_for_people() -> None:
    kitaru_cli("run", "flows:research", "--arg", "topic=x")
    table = kitaru_cli("executions", "list", COLUMNS="200")
    assert "research" in table.stdout and "completed" in table.stdout
    exec_id = json.loads(kitaru_cli("executions", "list", "-o", "json").stdout)[0]["exec_id"]
    detail = kitaru_cli("executions", "get", exec_id, COLUMNS="200")
    assert "fetch" in detail.stdout and "summarize" in detail.stdout
    assert "NOTES ON X" in detail.stdout


def test_json_arguments_are_parsed_and_text_needs_no_quotes() -> None:
    ran = kitaru_cli("run", "flows:logs_metadata", "--arg", "x=41", "-o", "json")
    assert json.loads(ran.stdout)["result"] == 41
    assert json.loads(ran.stdout)["metadata"] == {"stage": "body", "x": 41}


def test_logs_show_the_runs_of_an_execution(tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    failed = kitaru_cli("run", "flows:fragile", "--arg", f"marker={marker}")
    assert failed.returncode == 1
    assert "RuntimeError: the service is down" in failed.stdout
    exec_id = json.loads(kitaru_cli("executions", "list", "-o", "json").stdout)[0]["exec_id"]
    marker.touch()
    assert kitaru_cli("executions", "retry", exec_id).returncode == 0
    log = kitaru_cli("executions", "logs", exec_id).stdout
    assert "started flow fragile" in log
    assert "checkpoint flaky_once failed after 1 attempt(s)" in log
    assert "retried flow fragile" in log
    assert log.rstrip().endswith("completed")
    tail = kitaru_cli("executions", "logs", exec_id, "--tail", "2").stdout
    assert tail.splitlines() == log.splitlines()[-2:]


def test_errors_are_one_clear_line_and_exit_non_zero() -> None:
    missing = kitaru_cli("executions", "get", "doesnotexist")
    assert missing.returncode == 1
    assert "no execution with id 'doesnotexist'" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_target = kitaru_cli("run", "flows")
    assert bad_target.returncode == 1
    assert "MODULE:FLOW" in bad_target.stderr
    not_a_flow = kitaru_cli("run", "flows:effect")
    assert not_a_flow.returncode == 1 and "is a function, not a @flow" in not_a_flow.stderr


def test_help_lists_the_commands() -> None:
    helped = kitaru_cli("--help")
    assert helped.returncode == 0
    for command in ("run", "executions"):
        assert command in helped.stdout
    sub = kitaru_cli("executions", "--help")
    for command in ("list", "get", "resume", "retry", "cancel", "logs"):
        assert command in sub.stdout


def test_memory_commands_and_the_client_see_the_same_versions() -> None:
    from kitaru import KitaruClient

    assert kitaru_cli("memory", "set", "plan", '{"steps": 3}', "--scope", "team").returncode == 0
    assert kitaru_cli("memory", "set", "plan", "plain text", "--scope", "team").returncode == 0
    stale = kitaru_cli("memory", "set", "plan", "x", "--scope", "team", "--expected-version", "1")
    assert stale.returncode == 1 and "expected at version 1" in stale.stderr
    assert kitaru_cli("memory", "get", "plan", "--scope", "team").stdout.strip() == "plain text"
    old = kitaru_cli("memory", "get", "plan", "--scope", "team", "--version", "1", "-o", "json")
    assert json.loads(old.stdout)["value"] == {"steps": 3}
    assert kitaru_cli("memory", "delete", "plan", "--scope", "team").returncode == 0
    history = json.loads(kitaru_cli("memory", "history", "plan", "-s", "team", "-o", "json").stdout)
    assert [(h["version"], h["deleted"]) for h in history] == [(3, True), (2, False), (1, False)]
    assert json.loads(kitaru_cli("memory", "list", "-s", "team", "-o", "json").stdout) == []
    memories = KitaruClient().memories
    assert memories.get("plan", scope="team", version=2) == "plain text"
    assert memories.set("plan", "back", scope="team", expected_version=3) == 4
    missing = kitaru_cli("memory", "get", "nothing", "--scope", "team")
    assert missing.returncode == 1 and "has no key 'nothing'" in missing.stderr


def test_input_command_options() -> None:
    waiting = json.loads(kitaru_cli("run", "flows:needs_approval", "-o", "json").stdout)
    assert waiting["status"] == "waiting"
    exec_id = waiting["exec_id"]
    pending = json.loads(kitaru_cli("executions", "waits", "-o", "json").stdout)
    assert [(w["exec_id"], w["name"]) for w in pending] == [(exec_id, "approve")]
    no_value = kitaru_cli("executions", "input", exec_id)
    assert no_value.returncode == 2 and "--value" in no_value.stderr
    recorded = kitaru_cli("executions", "input", exec_id, "--value", "true", "--no-resume")
    assert recorded.stdout.strip() == (
        "input recorded; a running `kitaru worker` continues it, or resume it with: "
        f"kitaru executions resume {exec_id}"
    )
    resumed = json.loads(kitaru_cli("executions", "resume", exec_id, "-o", "json").stdout)
    assert resumed["status"] == "completed" and resumed["result"] is True

    second = json.loads(kitaru_cli("run", "flows:needs_approval", "-o", "json").stdout)["exec_id"]
    aborted = kitaru_cli("executions", "input", second, "--abort")
    assert aborted.stdout.split() == [second, "cancelled"]
