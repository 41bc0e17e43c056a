"""kitaru.llm() through litellm's real code path to a local OpenAI-compatible server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kitaru
from conftest import SECRET_KEY, subprocess_env
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.stack_registry import get_stack, register
from kitaru_core.store.metadata_store import get_store
from kitaru_core.testing.llm_server import FakeLLM


@checkpoint
def critique(text: str) -> str:
    return kitaru.llm(f"Critique: {text}", model="fast")


@flow
def writer(topic: str) -> str:
    draft = kitaru.llm(f"Write about {topic}", model="fast", system="Be brief.")
    return critique(draft)


def test_a_call_reaches_the_provider_with_the_key_from_the_secret_provider(
    llm_stack: FakeLLM,
) -> None:
    handle = writer.run("durable agents")
    assert handle.wait().startswith("a fine answer")
    assert llm_stack.authorizations() == [f"Bearer {SECRET_KEY}"] * 2
    first = llm_stack.requests[0]["body"]
    assert first["model"] == "gpt-4o-mini"
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}

    execution = KitaruClient().executions.get(handle.exec_id)
    assert [(c.name, c.kind) for c in execution.checkpoints] == [
        ("llm_1", "llm"),
        ("critique", "checkpoint"),
    ]
    calls = execution.llm_calls
    assert [(c.checkpoint, c.position, c.alias, c.model) for c in calls] == [
        ("llm_1", 0, "fast", "gpt-4o-mini"),
        ("critique", 1, "fast", "gpt-4o-mini"),
    ]
    assert calls[0].input_tokens == len(["Be", "brief.", "Write", "about", "durable", "agents"])
    assert all(c.output_tokens == 5 and c.latency > 0 and c.error is None for c in calls)
    assert all(c.cost_usd is not None and c.cost_usd > 0 for c in calls)  # litellm knows the price
    assert execution.llm_totals["calls"] == 2
    prompt = KitaruClient().artifacts.get(calls[0].prompt_artifact_id or "").load()
    assert prompt[-1] == {"role": "user", "content": "Write about durable agents"}


def test_a_rate_limit_is_retried_with_backoff_and_recorded_once(llm_stack: FakeLLM) -> None:
    llm_stack.failures = [429]
    handle = writer.run("retries")
    assert handle.status == "completed"
    assert len(llm_stack.requests) == 3  # 429, 200, then the checkpoint's call
    calls = KitaruClient().executions.get(handle.exec_id).llm_calls
    assert len(calls) == 2 and calls[0].attempts == 2 and calls[1].attempts == 1


@flow
def slow_flow() -> str:
    return kitaru.llm("hello", model="slow")


def test_the_alias_timeout_applies_and_a_failed_call_is_recorded(llm_stack: FakeLLM) -> None:
    llm_stack.delay = 2.0
    handle = slow_flow.run()
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "failed"
    [call] = execution.llm_calls
    assert call.error is not None and "Timeout" in call.error
    assert call.latency < 2.0 * 4  # gave up on time (three retries of a 0.5 s timeout)
    assert execution.checkpoints[0].status == "failed"


def test_the_key_is_written_nowhere(llm_stack: FakeLLM, kitaru_home: Path) -> None:
    llm_stack.failures = [429]
    writer.run("secrets")
    db = get_store().db
    for table in ("executions", "journal", "artifacts", "llm_calls", "stacks", "waits", "memory"):
        dump = json.dumps(db.fetchall(f"SELECT * FROM {table}"), default=repr)
        assert SECRET_KEY not in dump, table
    for path in kitaru_home.rglob("*"):
        if path.is_file() and path.name != "secrets.json":
            assert SECRET_KEY.encode() not in path.read_bytes(), path


def test_a_killed_flow_resumes_without_calling_the_provider_again(
    llm_stack: FakeLLM, tmp_path: Path
) -> None:
    script = tmp_path / "three_calls.py"
    script.write_text(
        textwrap.dedent("""
        import os, signal
        import kitaru
        from kitaru import flow

        @flow
        def three() -> list[str]:
            answers = [kitaru.llm("one", model="fast"), kitaru.llm("two", model="fast")]
            if os.environ.get("CRASH"):
                os.kill(os.getpid(), signal.SIGKILL)
            answers.append(kitaru.llm("three", model="fast"))
            return answers

        if __name__ == "__main__":
            three.run()
    """)
    )
    crashed = subprocess.run(
        [sys.executable, str(script)],
        env=subprocess_env(CRASH="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr
    assert len(llm_stack.requests) == 2
    exec_id = KitaruClient().executions.latest().exec_id  # type: ignore[union-attr]
    resumed = subprocess.run(
        [sys.executable, "-m", "kitaru", "executions", "resume", exec_id],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(llm_stack.requests) == 3  # only the third call was made
    assert [r["body"]["messages"][-1]["content"] for r in llm_stack.requests] == [
        "one",
        "two",
        "three",
    ]
    assert len(KitaruClient().executions.get(exec_id).llm_calls) == 3


def test_a_mocked_call_imports_no_litellm_and_still_counts_tokens(tmp_path: Path) -> None:
    script = tmp_path / "mocked.py"
    script.write_text(
        textwrap.dedent("""
        import sys
        import kitaru
        from kitaru import flow

        @flow
        def mocked() -> str:
            return kitaru.llm("count these four words", model="openai/gpt-4o-mini")

        if __name__ == "__main__":
            handle = mocked.run()
            call = kitaru.KitaruClient().executions.get(handle.exec_id).llm_calls[0]
            print(handle.wait(), call.input_tokens, call.output_tokens, "litellm" in sys.modules)
    """)
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=subprocess_env(KITARU_LLM_MOCK_RESPONSE="mocked reply"),
        timeout=60,
    )
    assert out.stdout.split() == ["mocked", "reply", "6", "3", "False"], out.stderr


def test_an_alias_may_carry_litellms_mock_response(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: m\nllm_gateway:\n  flavor: litellm\n  models:\n"
        "    fake: {model: openai/gpt-4o-mini, mock_response: from the alias}\n"
    )
    register(path, activate=True)
    assert kitaru.llm("hi", model="fake") == "from the alias"
    assert kitaru.llm("hi") == "from the alias"  # the only alias is the default


def test_aliases_default_model_and_stack_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitaru_core.model_aliases import choose, register_alias

    register_alias("fast", "anthropic/claude-3-5-haiku-latest", secret="anthropic_key")
    register_alias("big", "openai/gpt-4o")
    assert choose(get_stack(), "fast")[1:] == (
        "anthropic/claude-3-5-haiku-latest",
        {"api_key": "{{ secret.anthropic_key }}"},
    )
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nllm_gateway:\n  flavor: litellm\n  models:\n    fast: {model: openai/gpt-4o-mini}\n"
    )
    register(path, activate=True)
    assert choose(get_stack(), "fast")[1] == "openai/gpt-4o-mini"  # the stack wins
    assert choose(get_stack(), None)[0] == "fast"
    monkeypatch.setenv("KITARU_DEFAULT_MODEL", "big")
    assert choose(get_stack(), None)[1] == "openai/gpt-4o"
    with pytest.raises(kitaru.KitaruUsageError, match="neither an alias"):
        choose(get_stack(), "nonsense")
    out = subprocess.run(
        [sys.executable, "-m", "kitaru", "model", "list", "-o", "json"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    rows = {r["alias"]: r for r in json.loads(out.stdout)}
    assert rows["fast"]["source"] == "stack s" and rows["big"]["source"] == "user"
    assert rows["fast"]["model"] == "openai/gpt-4o-mini"


def test_no_model_anywhere_is_a_clear_error() -> None:
    with pytest.raises(kitaru.KitaruUsageError, match="without model= and no default"):
        kitaru.llm("hello")


@flow
def one_call(topic: str) -> str:
    return kitaru.llm(f"Write about {topic}", model="openai/gpt-4o-mini")


def test_diff_shows_token_differences(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "short")
    a = one_call.run("x")
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "a much longer answer than before, really")
    b = one_call.run("x")
    comparison = kitaru.diff(a.exec_id, b.exec_id)
    first = comparison.checkpoints[0]
    assert (first.name, first.status) == ("llm_1", "changed")
    assert first.token_change is not None and first.token_change > 0
    assert "tokens" in str(comparison)
