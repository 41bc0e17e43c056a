"""The six attacks of the security review, each run as an attacker would: other
processes, the public API and the CLI. Each ends in one clear line, and nothing is run,
stored or leaked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import kitaru
from conftest import SECRET_KEY, error_line, kitaru_cli, subprocess_env
from kitaru import KitaruClient
from kitaru_core.errors import KitaruStackError, KitaruWaitValidationError
from kitaru_core.stack_registry import get_stack, register, stack_names
from kitaru_core.store import migrations
from kitaru_core.testing.llm_server import FakeLLM
from security_flows import SPOOF, approval, not_a_number, spoofing


@pytest.fixture
def shared(tmp_path: Path, kitaru_home: Path) -> dict[str, Any]:
    """Two users sharing one metadata store (the team's database), each with a home
    of their own and so a signing key of their own."""
    url = os.environ.get("KITARU_DATABASE_URL") or f"sqlite:///{tmp_path / 'team.db'}"
    marker = tmp_path / "code-ran"
    return {"url": url, "marker": marker, "victim": kitaru_home, "attacker": tmp_path / "mallory"}


def run_as(
    home: Path, shared: dict[str, Any], *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(
            KITARU_HOME=str(home),
            KITARU_DATABASE_URL=shared["url"],
            KITARU_TEST_MARKER=str(shared["marker"]),
            COLUMNS="250",
            **env,
        ),
    )


def wide(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``kitaru_cli`` on a terminal wide enough that no free text is cut."""
    return kitaru_cli(*args, COLUMNS="250", **env)


# -- 1. pickle -------------------------------------------------------------------------

SET_HOSTILE = (
    "import kitaru, security_flows; kitaru.memory.set('settings', security_flows.RunsCode())"
)


def test_a_pickle_written_by_another_deployment_is_never_unpickled(shared: dict[str, Any]) -> None:
    written = run_as(shared["attacker"], shared, "-c", SET_HOSTILE)
    assert written.returncode == 0, written.stderr

    read = run_as(shared["victim"], shared, "-m", "kitaru", "memory", "get", "settings")

    line = error_line(read)
    assert "is not signed" in line or "wrong signature" in line
    assert "kitaru_signing_key" in line
    assert not shared["marker"].exists()


def test_a_pickle_this_deployment_wrote_still_loads(shared: dict[str, Any]) -> None:
    set_fraction = "import fractions, kitaru; kitaru.memory.set('ratio', fractions.Fraction(1, 3))"
    assert run_as(shared["victim"], shared, "-c", set_fraction).returncode == 0

    read = run_as(shared["victim"], shared, "-m", "kitaru", "memory", "get", "ratio")
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "Fraction(1, 3)"

    other = run_as(shared["attacker"], shared, "-m", "kitaru", "memory", "get", "ratio")
    assert "is not signed" in error_line(other) or "wrong signature" in other.stderr


def test_allow_pickle_0_refuses_pickle_on_write_and_on_read(shared: dict[str, Any]) -> None:
    set_fraction = "import fractions, kitaru; kitaru.memory.set('ratio', fractions.Fraction(1, 3))"
    refused = run_as(shared["victim"], shared, "-c", set_fraction, KITARU_ALLOW_PICKLE="0")
    assert "KITARU_ALLOW_PICKLE=0 refuses" in refused.stderr
    assert run_as(shared["victim"], shared, "-c", set_fraction).returncode == 0

    read = run_as(
        shared["victim"], shared, "-m", "kitaru", "memory", "get", "ratio", KITARU_ALLOW_PICKLE="0"
    )
    assert "KITARU_ALLOW_PICKLE=0 refuses to load" in error_line(read)


def test_a_typed_value_naming_another_class_is_not_imported(shared: dict[str, Any]) -> None:
    """A pydantic or dataclass record names its type by import path: unsigned, it is
    refused before anything is imported."""
    forge = textwrap.dedent("""
        import kitaru
        from kitaru_core.store.metadata_store import get_store
        kitaru.memory.set('profile', {'name': 'x'})
        store = get_store()
        store.db.execute("UPDATE artifacts SET serializer = 'pydantic', "
                         "type_ref = 'antigravity:Model' WHERE name = 'profile'")
    """)
    assert run_as(shared["attacker"], shared, "-c", forge).returncode == 0
    read = run_as(shared["victim"], shared, "-m", "kitaru", "memory", "get", "profile")
    assert "is not signed" in error_line(read)


def test_a_dict_subclass_given_as_wait_input_is_refused_and_nothing_is_stored(
    shared: dict[str, Any],
) -> None:
    os.environ["KITARU_DATABASE_URL"] = shared["url"]
    try:
        exec_id = approval.run().exec_id
        give = textwrap.dedent(f"""
            import security_flows
            from kitaru import KitaruClient
            KitaruClient().executions.input({exec_id!r}, value=security_flows.HostileDict(a=1))
        """)
        attack = run_as(shared["attacker"], shared, "-c", give)
        assert "KitaruWaitValidationError" in attack.stderr
        assert "security_flows.HostileDict, not plain data" in attack.stderr

        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "waiting"
        assert KitaruClient().artifacts.list(exec_id, name="settings") == []
        # A plain dict is still taken, and the resumed flow never runs the attack.
        KitaruClient().executions.input(exec_id, value={"a": 1}, resume=False)
        assert KitaruClient().executions.resume(exec_id).wait(timeout=30) == {"a": 1}
        assert not shared["marker"].exists()
    finally:
        del os.environ["KITARU_DATABASE_URL"]


def test_cli_memory_set_stores_json_never_pickle() -> None:
    assert kitaru_cli("memory", "set", "k", '{"a": [1, 2.5, null]}').returncode == 0
    entry = KitaruClient().memories.get_entry("k")
    assert entry is not None and entry.value == {"a": [1, 2.5, None]}
    with pytest.raises(kitaru.KitaruUsageError, match="not plain data"):
        KitaruClient().memories.set("k", {1, 2})


# -- 2. YAML bomb ----------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines)


def test_a_yaml_bomb_inside_a_component_is_refused_fast_and_stores_nothing(tmp_path: Path) -> None:
    anchors = textwrap.indent(billion_laughs(), "        ")
    path = tmp_path / "bomb.yaml"
    path.write_text(
        "name: bomb\nllm_gateway:\n  flavor: litellm\n  models:\n    fast:\n"
        f"      model: openai/gpt-4o-mini\n      extra_body:\n{anchors}\n"
        f"      tags: *{chr(ord('a') + 8)}\n"
    )
    started = time.perf_counter()
    with pytest.raises(KitaruStackError, match="anchors and aliases") as info:
        register(path)
    assert time.perf_counter() - started < 1.0
    assert str(path) in str(info.value)
    assert stack_names() == ["local"]

    proc = kitaru_cli("stack", "register", str(path))
    assert "anchors and aliases" in error_line(proc)
    listed = kitaru_cli("stack", "list")
    assert listed.returncode == 0 and "bomb" not in listed.stdout


def test_a_recursive_alias_and_an_oversized_stack_file_are_refused(tmp_path: Path) -> None:
    recursive = tmp_path / "loop.yaml"
    recursive.write_text("name: loop\nllm_gateway:\n  flavor: litellm\n  models: &m\n    x: *m\n")
    with pytest.raises(KitaruStackError, match="anchors and aliases"):
        register(recursive)
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: huge\n# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(KitaruStackError, match="at most 1,048,576 bytes"):
        register(huge)


# -- 3. secrets inside environment values ----------------------------------------------


def test_a_secret_reference_inside_an_environment_value_is_sent_literally(
    tmp_path: Path, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rel.yaml"
    path.write_text(
        textwrap.dedent("""
        name: rel
        llm_gateway:
          flavor: litellm
          models:
            fast:
              model: openai/gpt-4o-mini
              api_base: "${REL_BASE}"
              api_key: "{{ secret.openai_api_key }}"
        """)
    )
    register(path, activate=True)
    get_stack().secret_provider.set("openai_api_key", SECRET_KEY)
    monkeypatch.setenv("REL_BASE", fake_llm.api_base + "/{{ secret.openai_api_key }}")

    proc = subprocess.run(
        [sys.executable, "-c", "import kitaru; print(kitaru.llm('hi', model='fast'))"],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
    )

    sent = [r["path"] for r in fake_llm.requests]
    assert sent, proc.stderr
    assert all(SECRET_KEY not in p for p in sent)
    assert any("secret.openai_api_key" in p.replace("%20", " ") for p in sent)
    assert fake_llm.authorizations() == [f"Bearer {SECRET_KEY}"] * len(sent)


# -- 4. the secrets file's temporary file ----------------------------------------------


def test_a_precreated_temp_file_cannot_widen_the_secrets_file(kitaru_home: Path) -> None:
    kitaru_home.mkdir(parents=True, exist_ok=True)
    get_stack().secret_provider.set("first", "1")
    planted = kitaru_home / f".secrets.json.{os.getpid()}.tmp"
    planted.write_text("planted")
    os.chmod(planted, 0o666)

    get_stack().secret_provider.set("openai_api_key", SECRET_KEY)

    assert stat.S_IMODE((kitaru_home / "secrets.json").stat().st_mode) == 0o600
    assert planted.read_text() == "planted"
    assert get_stack().secret_provider.get("openai_api_key") == SECRET_KEY


# -- 5. terminal markup ----------------------------------------------------------------


def test_markup_from_results_questions_and_logs_prints_literally() -> None:
    result_id = spoofing.run().exec_id
    waiting_id = approval.run().exec_id

    get = wide("executions", "get", result_id)
    assert get.returncode == 0, get.stderr
    assert SPOOF in get.stdout and "\\x1b[5mblink" in get.stdout and "\x1b" not in get.stdout

    for args in (["executions", "waits"], ["executions", "get", waiting_id]):
        proc = wide(*args)
        assert proc.returncode == 0, proc.stderr
        assert SPOOF in proc.stdout, proc.stdout

    listed = wide("executions", "list")
    assert listed.returncode == 0 and result_id[:12] in listed.stdout

    logs = wide("executions", "logs", waiting_id)
    assert logs.returncode == 0 and SPOOF in logs.stdout


def test_json_output_never_prints_nan() -> None:
    exec_id = not_a_number.run().exec_id
    proc = kitaru_cli("executions", "get", exec_id, "--output", "json")
    assert proc.returncode == 0
    assert "NaN" not in proc.stdout and '"result": null' in proc.stdout
    assert "printed as null" in proc.stderr


# -- 6. file permissions ---------------------------------------------------------------


def test_a_fresh_home_has_nothing_readable_by_group_or_others(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "kitaru"
    env = {"KITARU_HOME": str(home), "KITARU_TEST_MARKER": str(tmp_path / "m")}
    env.pop("KITARU_DATABASE_URL", None)
    script = textwrap.dedent("""
        import kitaru, security_flows
        from kitaru import KitaruClient
        from kitaru_core.stack_registry import get_stack
        exec_id = security_flows.approval.run().exec_id
        KitaruClient().executions.input(exec_id, value={"ok": True}, resume=False)
        KitaruClient().executions.resume(exec_id).wait(timeout=30)
        kitaru.memory.set("big", "y" * 50_000)
        get_stack().secret_provider.set("openai_api_key", "sk-x")
    """)
    for args in (
        ["-c", script],
        ["-m", "kitaru", "model", "register", "fast", "--model", "openai/x"],
        ["-m", "kitaru", "stack", "activate", "local"],
    ):
        base = subprocess_env(**env)
        base.pop("KITARU_DATABASE_URL", None)
        proc = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, timeout=60, env=base, umask=0
        )
        assert proc.returncode == 0, proc.stderr

    paths = [home, *home.rglob("*")]
    assert len(paths) > 8  # the database, its WAL, blobs, logs, keys, secrets, models
    loose = [f"{p} {stat.filemode(p.stat().st_mode)}" for p in paths if p.stat().st_mode & 0o077]
    assert loose == []
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_home_made_by_an_earlier_version_is_tightened(kitaru_home: Path) -> None:
    kitaru_home.mkdir(parents=True)
    os.chmod(kitaru_home, 0o755)
    kitaru.memory.set("k", 1)
    if not os.environ.get("KITARU_DATABASE_URL"):
        assert stat.S_IMODE(kitaru_home.stat().st_mode) == 0o700
        assert stat.S_IMODE((kitaru_home / "kitaru.db").stat().st_mode) == 0o600


# -- bounded input ---------------------------------------------------------------------


def test_deeply_nested_or_oversized_values_are_refused_with_one_line() -> None:
    exec_id = approval.run().exec_id
    deep = "[" * 30_000 + "]" * 30_000
    proc = kitaru_cli("executions", "input", exec_id, "--value", deep)
    assert "nested more than 200 levels" in error_line(proc)

    big = '"' + "x" * 2000 + '"'
    proc = kitaru_cli("executions", "input", exec_id, "--value", big, KITARU_MAX_INPUT_BYTES="1000")
    assert "over the limit of 1,000" in error_line(proc)
    assert KitaruClient().executions.get(exec_id).status == "waiting"


def test_nan_is_refused_as_input() -> None:
    exec_id = approval.run().exec_id
    with pytest.raises(KitaruWaitValidationError, match="JSON cannot hold"):
        KitaruClient().executions.input(exec_id, value={"x": float("nan")})
    proc = kitaru_cli("executions", "input", exec_id, "--value", '{"x": NaN}')
    assert "NaN is not a JSON number" in error_line(proc)


def test_executions_recorded_before_references_were_signed_are_signed_on_upgrade() -> None:
    from kitaru_core.runtime.trust import SIGNATURE, is_trusted
    from kitaru_core.store.metadata_store import get_store, reset_store_cache

    exec_id = approval.run().exec_id
    store = get_store()
    # As a store of the revision before signed references holds it: no signature.
    store.db.execute("UPDATE executions SET options = '{}' WHERE id = :id", {"id": exec_id})
    assert not is_trusted(store.require_execution(exec_id))
    migrations.downgrade(store.db.url, "0009")
    reset_store_cache()
    record = get_store().require_execution(exec_id)  # this process upgrades, and signs
    assert record.options.get(SIGNATURE) and is_trusted(record)
    answered = kitaru_cli("executions", "input", exec_id, "--value", '{"mode": "ok"}')
    assert answered.returncode == 0, answered.stderr
    deadline = time.monotonic() + 30
    while KitaruClient().executions.get(exec_id).status != "completed":
        assert time.monotonic() < deadline, KitaruClient().executions.get(exec_id).error
        time.sleep(0.05)
