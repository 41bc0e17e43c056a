"""End-to-end scenarios a cloud plugin runs on its own test stack, through the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kitaru_core.testing.fixtures import run_kitaru


def wait_for_status(exec_id: str, status: str, timeout: float = 90) -> None:
    from kitaru import KitaruClient

    deadline = time.monotonic() + timeout
    while KitaruClient().executions.get(exec_id).status != status:
        assert time.monotonic() < deadline, KitaruClient().executions.logs(exec_id)
        time.sleep(0.2)


def llm_gateway_yaml(fake_llm: Any, secret: str) -> str:
    """The ``llm_gateway`` of a test stack: alias ``fast`` at the local OpenAI-compatible
    server, its key read from the stack's secret provider as ``secret``."""
    return (
        "llm_gateway:\n  flavor: litellm\n  models:\n    fast:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {fake_llm.api_base}\n"
        f'      api_key: "{{{{ secret.{secret} }}}}"\n'
    )


def end_to_end_on_stack(stack_file: Path, fake_llm: Any) -> tuple[str, str]:
    """Register and activate ``stack_file``, then run ``kitaru_core.testing.flows:reviewed``
    through the CLI: LLM calls, a wait, input, a resume in a worker process, memory, and
    a replay with an override. Every artifact goes to the stack's artifact store.
    Returns the two execution ids."""
    from kitaru import KitaruClient

    env = {"KITARU_INLINE_ARTIFACT_BYTES": "0"}
    registered = run_kitaru("stack", "register", str(stack_file), env=env)
    assert registered.returncode == 0, registered.stderr
    name = registered.stdout.split()[-1]
    assert run_kitaru("stack", "activate", name, env=env).returncode == 0

    flow = "kitaru_core.testing.flows:reviewed"
    ran = run_kitaru("run", flow, "--arg", "topic=clouds", "-o", "json", env=env)
    assert ran.returncode == 0, ran.stderr
    first = json.loads(ran.stdout)
    assert (first["status"], first["stack"]) == ("waiting", name)
    given = run_kitaru("executions", "input", first["exec_id"], "--value", "true", env=env)
    assert given.returncode == 0, given.stderr
    wait_for_status(first["exec_id"], "completed")
    assert len(fake_llm.requests) == 2  # research and draft, once each

    replayed = run_kitaru(
        "executions",
        "replay",
        first["exec_id"],
        "--from",
        "draft",
        "--override",
        'checkpoint.research=["one note from the override"]',
        "-o",
        "json",
        env=env,
    )
    assert replayed.returncode == 0, replayed.stderr
    second = json.loads(replayed.stdout)["exec_id"]
    run_kitaru("executions", "input", second, "--value", "true", env=env)
    wait_for_status(second, "completed")
    assert len(fake_llm.requests) == 3  # only the replay's draft called the model
    assert "one note from the override" in KitaruClient().executions.get(second).result["text"]
    reviews = KitaruClient().memories.get("reviews", scope="reviewed", scope_type="flow")
    assert reviews == 1  # the replay read the first run's recorded value, 0, and wrote 1
    return first["exec_id"], second


def store_outage(stack_file: Path, stop: Any, restart: Any) -> Any:
    """With the artifact store's server stopped, a run fails with ``KitaruBackendError``
    and its upload is not recorded as completed; once ``restart()`` has brought the
    server back, ``retry`` completes it. Returns the large artifact's reference."""
    import pytest

    from kitaru import KitaruClient, KitaruExecutionError
    from kitaru_core.stack_registry import register
    from kitaru_core.testing.flows import small_then_large

    register(stack_file, activate=True)
    stop()
    try:
        handle = small_then_large.run()
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.status == "failed"
        assert execution.error is not None and "KitaruBackendError" in execution.error["type"]
        assert [(c.name, c.status) for c in execution.checkpoints] == [
            ("small_output", "completed"),
            ("large_output", "failed"),
        ]
        with pytest.raises(KitaruExecutionError, match="KitaruBackendError"):
            handle.wait()
    finally:
        restart()
    assert KitaruClient().executions.retry(handle.exec_id).wait() == 26 + 20000
    [ref] = KitaruClient().artifacts.list(handle.exec_id, name="large_output")
    return ref


def listed_without_sdk(plugin: str, flavors: list[str], sdk_modules: tuple[str, ...]) -> None:
    """``kitaru plugins list`` in a fresh process shows the plugin and its flavors and
    imports none of ``sdk_modules`` (plugins declare flavors; SDKs load on first use)."""
    import subprocess
    import sys

    probe = (
        "import json, sys\n"
        "from kitaru_core.cli.app import main\n"
        "sys.argv = ['kitaru', 'plugins', 'list', '--output', 'json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({sdk_modules!r}))\n"
        "print('LOADED', json.dumps(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    listing, _, loaded = out.stdout.rpartition("LOADED ")
    assert json.loads(loaded) == [], f"importing plugins loaded {loaded}"
    found = {p["name"]: p for p in json.loads(listing)}
    assert found[plugin]["loaded"], found[plugin]["error"]
    assert found[plugin]["flavors"] == flavors


def check_artifacts_stored(exec_ids: tuple[str, ...], container_uri: str, stored: set[str]) -> None:
    """Every artifact of the executions is at ``container_uri`` (``s3://bucket/``), and
    its key is among ``stored``, the keys the service's own SDK listed there."""
    from kitaru import KitaruClient

    for exec_id in exec_ids:
        for artifact in KitaruClient().artifacts.list(exec_id):
            assert artifact.uri.startswith(container_uri), artifact.uri
            assert artifact.uri.removeprefix(container_uri) in stored, artifact.uri
