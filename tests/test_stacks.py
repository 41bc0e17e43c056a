"""Stack files: registering, activating, switching without touching code, and every
way a stack file can be wrong (one clear message, nothing registered)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import subprocess_env
from kitaru import KitaruClient, KitaruStackError, checkpoint, flow
from kitaru_core.stack_registry import (
    activate_stack,
    active_stack_name,
    delete_stack,
    get_stack,
    register,
    stack_names,
    validate_file,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def kitaru(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=60,
    )


@checkpoint
def big(n: int) -> str:
    return "x" * n


@flow
def makes_artifacts(n: int) -> int:
    return len(big(n))


def test_local_exists_and_is_active_by_default() -> None:
    assert active_stack_name() == "local"
    assert stack_names() == ["local"]
    assert get_stack().artifact_store.flavor == "local"


def test_the_same_flow_on_two_stacks_by_activation_only(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write(
            tmp_path,
            f"{name}.yaml",
            f"name: {name}\nartifact_store:\n  flavor: local\n  path: {tmp_path / name}\n",
        )
        out = kitaru("stack", "register", str(tmp_path / f"{name}.yaml"))
        assert out.returncode == 0, out.stderr
    runs = {}
    for name in ("a", "b"):
        assert kitaru("stack", "activate", name).returncode == 0
        ran = kitaru("run", "test_stacks:makes_artifacts", "--arg", "n=10000", "-o", "json")
        assert ran.returncode == 0, ran.stderr
        runs[name] = json.loads(ran.stdout)
        assert runs[name]["stack"] == name
    for name, execution in runs.items():
        [ref] = KitaruClient().artifacts.list(execution["exec_id"], name="big")
        path = Path(ref.uri.removeprefix("file://"))
        assert path.is_relative_to(tmp_path / name) and path.stat().st_size == 10000
    listed = json.loads(kitaru("stack", "list", "-o", "json").stdout)
    assert [(s["name"], s["active"]) for s in listed] == [
        ("local", False),
        ("a", False),
        ("b", True),
    ]


def test_kitaru_stack_overrides_the_active_stack_for_one_process(tmp_path: Path) -> None:
    register(
        write(
            tmp_path, "c.yaml", f"name: c\nartifact_store: {{flavor: local, path: {tmp_path}/c}}\n"
        )
    )
    described = json.loads(kitaru("stack", "describe", "-o", "json", KITARU_STACK="c").stdout)
    assert described["name"] == "c"
    assert json.loads(kitaru("stack", "describe", "-o", "json").stdout)["name"] == "local"


def test_describe_and_export_mask_secrets_and_keep_references(tmp_path: Path) -> None:
    register(
        write(
            tmp_path,
            "s.yaml",
            """
name: s
secret_provider:
  flavor: env
  prefix: ${SECRET_PREFIX}
artifact_store:
  flavor: local
  path: "{{ secret.store_path }}"
""",
        )
    )
    described = json.loads(kitaru("stack", "describe", "s", "-o", "json").stdout)
    by_type = {c["component"]: c for c in described["components"]}
    assert by_type["artifact_store"]["config"] == {"path": "{{ secret.store_path }}"}
    assert by_type["secret_provider"]["plugin"] == "builtin"
    assert by_type["orchestrator"]["default"] is True
    exported = kitaru("stack", "export", "s").stdout
    assert "{{ secret.store_path }}" in exported and "${SECRET_PREFIX}" in exported


def test_secret_references_resolve_through_the_stacks_own_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_file = write(
        tmp_path,
        "sec.yaml",
        """
name: sec
secret_provider: {flavor: env, prefix: APP_}
artifact_store: {flavor: local, path: "{{ secret.artifact_dir }}"}
""",
    )
    register(stack_file, activate=True)
    with pytest.raises(KitaruStackError, match="secret 'artifact_dir' cannot be resolved") as info:
        validate_file(stack_file)
    assert "APP_ARTIFACT_DIR" in str(info.value)
    with pytest.raises(KitaruStackError, match="artifact_store field 'path'"):
        makes_artifacts.run(10)
    monkeypatch.setenv("APP_ARTIFACT_DIR", str(tmp_path / "from-secret"))
    from kitaru_core.stack_registry import reset_stack_cache

    reset_stack_cache()
    validate_file(stack_file)
    assert makes_artifacts.run(10000).wait() == 10000
    assert list((tmp_path / "from-secret").rglob("*"))
    stored = get_stack("sec").definition.to_mapping()
    assert str(tmp_path / "from-secret") not in json.dumps(stored)  # never stored resolved


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nartifact_store: [unclosed", "is not valid YAML at line 2"),
        ("name: x\nartifact_stor:\n  flavor: local\n", "unknown key(s) 'artifact_stor'"),
        (
            "name: x\nartifact_store:\n  flavor: local\n  path: [1, 2]\n",
            "artifact_store (local): field 'path': Input should be a valid string",
        ),
        (
            "name: x\nartifact_store:\n  flavor: local\n  pth: /tmp\n",
            "artifact_store (local): field 'pth': Extra inputs are not permitted",
        ),
        ("name: x\nartifact_store: local\n", "component 'artifact_store' must be a mapping"),
        ("artifact_store: {flavor: local}\n", "'name' must be a short name"),
        (
            "name: x\nartifact_store: {flavor: s3, path: s3://b/p}\norchestrator: {flavor: kubernetes}\n",
            "pip install -e plugins/kitaru-aws",
        ),
        (
            "name: x\nsecret_provider: {flavor: vault}\n",
            "'vault' for secret_provider (not installed",
        ),
    ],
)
def test_a_broken_stack_file_is_one_clear_message_and_registers_nothing(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "broken.yaml", text)
    with pytest.raises(KitaruStackError) as info:
        register(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value) or "stack 'x'" in str(info.value)
    assert stack_names() == ["local"]
    out = kitaru("stack", "validate", str(path))
    assert out.returncode == 1 and expected in out.stderr


def test_unset_environment_references_are_reported_by_validate_and_when_used(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "env.yaml",
        "name: e\nartifact_store: {flavor: local, path: '${NOT_SET_ANYWHERE}'}\n",
    )
    register(path, activate=True)  # the process that runs the stack may well have it
    out = kitaru("stack", "validate", str(path))
    assert out.returncode == 1
    assert (
        "artifact_store field 'path': environment variable NOT_SET_ANYWHERE is not set"
        in out.stderr
    )
    with pytest.raises(KitaruStackError, match="NOT_SET_ANYWHERE is not set"):
        makes_artifacts.run(1)


def test_every_missing_flavor_is_named_in_one_message(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cloud.yaml",
        """
name: cloud
artifact_store: {flavor: s3, path: "s3://bucket/kitaru", region: eu-west-1}
secret_provider: {flavor: aws-secrets-manager}
orchestrator: {flavor: kubernetes, namespace: agents}
""",
    )
    with pytest.raises(KitaruStackError) as info:
        register(path)
    message = str(info.value)
    for flavor in ("'s3'", "'aws-secrets-manager'", "'kubernetes'"):
        assert flavor in message
    assert message.count("pip install") == 1
    # One command for both first-party plugins, from this checkout.
    assert "pip install -e plugins/kitaru-aws -e plugins/kitaru-kubernetes" in message


def test_delete_and_the_local_stack_rules(tmp_path: Path) -> None:
    register(write(tmp_path, "d.yaml", "name: d\n"), activate=True)
    with pytest.raises(KitaruStackError, match="is active"):
        delete_stack("d")
    activate_stack("local")
    delete_stack("d")
    assert stack_names() == ["local"]
    with pytest.raises(KitaruStackError, match="built-in 'local' stack cannot be deleted"):
        delete_stack("local")
    with pytest.raises(KitaruStackError, match="'local' is the built-in stack"):
        register(write(tmp_path, "l.yaml", "name: local\n"))
    with pytest.raises(KitaruStackError, match="no stack named 'nope'"):
        activate_stack("nope")


def test_secrets_commands_use_the_active_stacks_provider() -> None:
    assert kitaru("secrets", "set", "openai_api_key", "--value", "sk-test-123").returncode == 0
    listed = kitaru("secrets", "list", "-o", "json")
    assert json.loads(listed.stdout) == ["openai_api_key"]
    assert "sk-test-123" not in listed.stdout
    assert get_stack().secret_provider.get("openai_api_key") == "sk-test-123"
    assert kitaru("secrets", "delete", "openai_api_key").returncode == 0
    missing = kitaru("secrets", "delete", "openai_api_key")
    assert missing.returncode == 1 and "no secret 'openai_api_key'" in missing.stderr
