"""Executions that outlive a deploy: ``kitaru.patched()``, code versions, the dry-run
upgrade, and workers that continue only the code they have. Real processes: the CLI
starts and answers executions, the flow's file is rewritten between them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import kitaru_cli
from kitaru import KitaruClient

FLOW = """
import os
from pathlib import Path

import kitaru
from kitaru import checkpoint, flow, wait

EFFECTS = Path(os.environ["KITARU_TEST_EFFECTS"])


def note(what: str) -> None:
    with EFFECTS.open("a") as out:
        out.write(what + "\\n")


@checkpoint
def fetch() -> int:
    note("fetch")
    return 1


@checkpoint
def enrich(x: int) -> int:
    note("enrich")
    return x + 100


@checkpoint
def finish(x: int, ok: bool) -> int:
    note("finish")
    return x + (10 if ok else 0)


@flow{decorator}
def review() -> int:
    x = fetch()
{change}
    ok = wait(name="approve", schema=bool, question="ship it?")
    return finish(x, ok)
"""
PATCHED = """    if kitaru.patched("enrich"):
        x = enrich(x)"""
UNPATCHED = "    x = enrich(x)"


def write_flow(project: Path, change: str = "", decorator: str = "") -> None:
    project.mkdir(exist_ok=True)
    (project / "app.py").write_text(FLOW.format(change=change, decorator=decorator))


def start(project: Path, effects: Path) -> str:
    ran = kitaru_cli(
        "run", "app.py:review", "-o", "json", cwd=project, KITARU_TEST_EFFECTS=str(effects)
    )
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    assert data["status"] == "waiting", data
    return str(data["exec_id"])


def answer(exec_id: str, project: Path, effects: Path) -> None:
    given = kitaru_cli(
        "executions",
        "input",
        exec_id,
        "--wait",
        "approve",
        "--value",
        "true",
        cwd=project,
        KITARU_TEST_EFFECTS=str(effects),
    )
    assert given.returncode == 0, given.stderr


def ended(exec_id: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = KitaruClient().executions.get(exec_id)
        if execution.status in ("completed", "failed", "cancelled"):
            return execution
        time.sleep(0.1)
    raise AssertionError(f"{exec_id} did not end: {KitaruClient().executions.logs(exec_id)}")


def upgrade_check(*args: str, project: Path) -> tuple[int, list[dict[str, object]]]:
    checked = kitaru_cli(
        "executions",
        "upgrade",
        *args,
        "--dry-run",
        "-o",
        "json",
        cwd=project,
        KITARU_TEST_EFFECTS=str(project.parent / "effects"),
    )
    return checked.returncode, json.loads(checked.stdout)


def test_a_waiting_execution_keeps_its_path_across_a_patched_deploy(tmp_path: Path) -> None:
    project, effects = tmp_path / "project", tmp_path / "effects"
    write_flow(project)
    old = start(project, effects)

    write_flow(project, PATCHED)  # the deploy, while `old` waits
    code, checks = upgrade_check(old, project=project)
    assert code == 0 and checks[0]["verdict"] == "ok", checks[0]["detail"]
    assert checks[0]["called"] == "approve"  # a resume carries on at the wait

    answer(old, project, effects)
    finished = ended(old)
    assert finished.status == "completed" and finished.result == 11  # the old path
    names = [c.name for c in finished.checkpoints]
    assert names == ["fetch", "approve", "finish"]

    new = start(project, effects)
    answer(new, project, effects)
    finished = ended(new)
    assert finished.result == 111  # the new path: enrich ran
    assert [c.name for c in finished.checkpoints] == [
        "fetch",
        "patched:enrich",
        "enrich",
        "approve",
        "finish",
    ]
    assert effects.read_text().split() == ["fetch", "finish", "fetch", "enrich", "finish"]

    # Resumed again (a retry after the fact), the new one keeps its journaled answer.
    code, checks = upgrade_check(new, project=project)
    assert code == 0 and checks[0]["verdict"] == "ok", checks


def test_an_unpatched_change_is_reported_before_and_named_after(tmp_path: Path) -> None:
    project, effects = tmp_path / "project", tmp_path / "effects"
    write_flow(project)
    old = start(project, effects)
    write_flow(project, UNPATCHED)

    code, checks = upgrade_check("--all-waiting", project=project)
    assert code == 1, checks
    [check] = checks
    assert check["exec_id"] == old and check["verdict"] == "diverges"
    assert (check["position"], check["recorded"], check["called"]) == (1, "approve", "enrich")
    assert "kitaru.patched()" in str(check["detail"])
    assert effects.read_text().split() == ["fetch"]  # the dry run ran no step

    answer(old, project, effects)
    finished = ended(old)
    assert finished.status == "failed"
    assert "kitaru.patched(" in finished.error["message"]
    assert "enrich" not in effects.read_text().split()  # it never ran the new step


def test_the_code_version_follows_the_source(tmp_path: Path) -> None:
    project, effects = tmp_path / "project", tmp_path / "effects"
    write_flow(project)
    first = start(project, effects)
    second = start(project, effects)
    write_flow(project, PATCHED)
    third = start(project, effects)
    client = KitaruClient()
    versions = [client.executions.get(e).code_version for e in (first, second, third)]
    assert versions[0] == versions[1] != versions[2]
    assert versions[0] and len(versions[0]) == 12

    listed = kitaru_cli("executions", "list", "--code-version", versions[0], "-o", "json")
    assert {e["exec_id"] for e in json.loads(listed.stdout)} == {first, second}

    write_flow(project, PATCHED, decorator='(version="2026.12")')
    named = start(project, effects)
    assert client.executions.get(named).code_version == "2026.12"
    deployed = kitaru_cli(
        "run",
        "app.py:review",
        "-o",
        "json",
        cwd=project,
        KITARU_TEST_EFFECTS=str(effects),
        KITARU_CODE_VERSION="deploy-7",
    )
    assert json.loads(deployed.stdout)["code_version"] == "2026.12"  # the flow's own wins

    shown = kitaru_cli("executions", "diff", first, third)
    assert f"a ran {versions[0]}, b ran {versions[2]}" in shown.stdout


def test_patched_belongs_in_the_flow_body(tmp_path: Path) -> None:
    import kitaru
    from kitaru import KitaruExecutionError, checkpoint, flow

    @checkpoint
    def inside() -> bool:
        return kitaru.patched("x")

    @flow
    def body() -> bool:
        return inside()

    failed = body.run()
    assert failed.status == "failed"
    with pytest.raises(KitaruExecutionError, match=r"patched\(\) belongs in the flow body"):
        failed.wait()


SLEEPER = """
import kitaru
from kitaru import checkpoint, flow


@checkpoint
def done(tag: str) -> str:
    return tag


@flow
def nap(tag: str) -> str:
    kitaru.sleep(0.2)
    return done(tag)  # {revision}
"""


def test_workers_continue_only_the_code_they_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from conftest import subprocess_env

    monkeypatch.setenv("KITARU_SLEEP_INLINE_SECONDS", "0")  # the runs let go at the timer
    project = tmp_path / "project"
    project.mkdir()
    started: dict[str, str] = {}
    for revision in ("one", "two"):
        (project / "app.py").write_text(SLEEPER.format(revision=revision))
        ran = kitaru_cli("run", "app.py:nap", "--arg", f"tag={revision}", "-o", "json", cwd=project)
        assert json.loads(ran.stdout)["status"] == "sleeping", ran.stderr
        started[revision] = json.loads(ran.stdout)["exec_id"]
    client = KitaruClient()
    old_version = client.executions.get(started["one"]).code_version
    assert old_version != client.executions.get(started["two"]).code_version
    time.sleep(0.3)  # both timers are due

    # A worker with today's code (revision two) continues only revision two's.
    once = kitaru_cli("worker", "--once", cwd=project)
    assert once.returncode == 0, once.stderr
    assert f"leaving executions of code version {old_version}" in " ".join(once.stderr.split())
    assert ended(started["two"]).result == "two"
    assert client.executions.get(started["one"]).status == "sleeping"

    # A live worker of the new code: `worker status` names what it leaves.
    worker = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "worker", "--poll", "0.1"],
        cwd=project,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            status = json.loads(kitaru_cli("worker", "status", "-o", "json").stdout)
            if status["unserved"]:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["unserved"] == [
            {"stack": "local", "code_version": old_version, "executions": 1}
        ]
        shown = kitaru_cli("worker", "status", COLUMNS="200").stdout
        assert f"1 execution(s) of stack local wait for code version {old_version}" in shown
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    # Told it has that version too (or any), a worker continues the old one.
    once = kitaru_cli("worker", "--once", "--code-version", old_version, cwd=project)
    assert once.returncode == 0, once.stderr
    finished = ended(started["one"])
    assert finished.result == "one", finished.error

    (project / "app.py").write_text(SLEEPER.format(revision="three"))
    ran = kitaru_cli("run", "app.py:nap", "--arg", "tag=x", "-o", "json", cwd=project)
    left = json.loads(ran.stdout)["exec_id"]
    (project / "app.py").write_text(SLEEPER.format(revision="four"))
    time.sleep(0.3)
    assert kitaru_cli("worker", "--once", cwd=project).returncode == 0
    assert client.executions.get(left).status == "sleeping"
    assert kitaru_cli("worker", "--once", "--any-version", cwd=project).returncode == 0
    assert ended(left).result == "x"
    assert os.environ.get("KITARU_CODE_VERSION") is None


SHIPPED_STACK = """name: shipped
artifact_store: {flavor: local}
secret_provider: {flavor: local}
orchestrator: {flavor: local}
llm_gateway: {flavor: litellm}
settings: {code: archive}
"""


def test_an_archived_execution_resumes_on_the_code_it_started_with(
    tmp_path: Path, kitaru_home: Path
) -> None:
    stack = tmp_path / "shipped.yaml"
    stack.write_text(SHIPPED_STACK)
    assert kitaru_cli("stack", "register", str(stack), "--activate").returncode == 0
    project, effects = tmp_path / "project", tmp_path / "effects"
    write_flow(project)
    (project / ".gitignore").write_text("notes.txt\n")
    (project / "notes.txt").write_text("not shipped")
    old = start(project, effects)
    again = start(project, effects)  # the same tree: the same archive, stored once
    client = KitaruClient()
    record = client.executions.get(old)
    assert record.code_archive and record.code_archive == client.executions.get(again).code_archive
    from kitaru_core.store.metadata_store import get_store

    [archive] = get_store().list_artifacts(old, role="code")
    [same] = get_store().list_artifacts(again, role="code")
    assert archive.key == same.key
    import io
    import tarfile

    from kitaru_core.stack_registry import get_stack

    store = get_stack("shipped").artifact_store
    with tarfile.open(fileobj=io.BytesIO(store.read(archive.key)), mode="r:gz") as tar:
        assert tar.getnames() == [".gitignore", "app.py"]  # notes.txt is ignored

    write_flow(project, UNPATCHED)  # a deploy without patched(): path code would diverge
    code, checks = upgrade_check(old, project=project)  # today's code, not its archive's
    assert code == 1 and checks[0]["verdict"] == "diverges", checks
    answer(old, project, effects)
    finished = ended(old)
    assert finished.status == "completed" and finished.result == 11, finished.error
    assert f"running code archive {record.code_archive[:12]}" in client.executions.logs(old)
    assert "enrich" not in effects.read_text().split()

    new = start(project, effects)  # today's tree: another archive, the new behaviour
    assert client.executions.get(new).code_archive != record.code_archive
    answer(new, project, effects)
    assert ended(new).result == 111

    # A corrupted archive fails the run and runs nothing; --code current moves it on.
    import shutil

    blob = next(p for p in (kitaru_home / "artifacts").rglob("*") if p.name.endswith(archive.key))
    blob.write_bytes(b"not an archive")
    shutil.rmtree(kitaru_home / "code")
    answer(again, project, effects)
    broken = ended(again)
    assert broken.status == "failed" and "corrupted" in broken.error["message"], broken.error
    before = effects.read_text()
    write_flow(project, PATCHED)
    retried = kitaru_cli(
        "executions",
        "retry",
        again,
        "--code",
        "current",
        cwd=project,
        KITARU_TEST_EFFECTS=str(effects),
    )
    assert retried.returncode == 0, retried.stderr
    moved = ended(again)
    assert moved.status == "completed" and moved.result == 11  # patched() kept its path
    assert moved.code_archive not in (record.code_archive, None)
    assert effects.read_text()[len(before) :].split() == ["finish"]


DEPRECATED = """    kitaru.deprecate_patch("enrich")
    x = enrich(x)"""


def test_deprecate_patch_steps_over_the_marker_and_records_nothing_new(tmp_path: Path) -> None:
    project, effects = tmp_path / "project", tmp_path / "effects"
    write_flow(project, PATCHED)
    patched_one = start(project, effects)  # recorded patched:enrich, then enrich, waits
    write_flow(project, DEPRECATED)  # every execution of the old path has ended

    code, checks = upgrade_check(patched_one, project=project)
    assert code == 0 and checks[0]["verdict"] == "ok", checks
    answer(patched_one, project, effects)
    finished = ended(patched_one)
    assert finished.status == "completed" and finished.result == 111, finished.error

    fresh = start(project, effects)
    answer(fresh, project, effects)
    finished = ended(fresh)
    assert finished.result == 111
    assert [c.name for c in finished.checkpoints] == ["fetch", "enrich", "approve", "finish"]
    assert effects.read_text().split().count("enrich") == 2  # once per execution


def test_a_tree_too_big_to_ship_is_refused_before_anything_is_recorded(tmp_path: Path) -> None:
    stack = tmp_path / "shipped.yaml"
    stack.write_text(SHIPPED_STACK)
    assert kitaru_cli("stack", "register", str(stack), "--activate").returncode == 0
    project, effects = tmp_path / "project", tmp_path / "effects"
    write_flow(project)
    with (project / "weights.bin").open("wb") as big:
        big.truncate(51 * 1024 * 1024)
    refused = kitaru_cli("run", "app.py:review", cwd=project, KITARU_TEST_EFFECTS=str(effects))
    assert refused.returncode != 0
    assert "holds more than 50 MB (reached at weights.bin)" in refused.stderr
    assert f"{project / '.gitignore'}" in refused.stderr
    assert KitaruClient().executions.list() == []
    (project / ".gitignore").write_text("*.bin\n")
    assert start(project, effects)  # ignored, it does not ship


def test_a_stack_file_with_an_unknown_code_setting_is_refused(tmp_path: Path) -> None:
    stack = tmp_path / "bad.yaml"
    stack.write_text(SHIPPED_STACK.replace("code: archive", "code: zip"))
    refused = kitaru_cli("stack", "register", str(stack))
    assert refused.returncode != 0
    assert "settings.code must be 'archive'" in refused.stderr and "not 'zip'" in refused.stderr


def test_ignore_files_above_and_inside_the_tree_keep_files_out_of_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitaru_core.runtime.code_archive import source_tree

    repo = tmp_path / "repo"  # a git work tree with a src layout
    (repo / ".git").mkdir(parents=True)
    (repo / ".gitignore").write_text("secrets/\n")
    package = repo / "src" / "shipped_app"
    (package / "secrets").mkdir(parents=True)
    (package / "data").mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(
        "from kitaru import flow\n\n\n@flow\ndef job() -> int:\n    return 1\n"
    )
    (package / "secrets" / "key.txt").write_text("never shipped")
    (package / "data" / ".gitignore").write_text("*.csv\n")
    (package / "data" / "big.csv").write_text("1,2,3\n")
    (package / "data" / "keep.txt").write_text("shipped")
    monkeypatch.syspath_prepend(str(repo / "src"))
    from shipped_app.flows import job  # type: ignore[import-not-found]

    tree = source_tree(job)
    assert tree.root == (repo / "src").resolve()
    assert tree.files == (
        "shipped_app/__init__.py",
        "shipped_app/data/.gitignore",
        "shipped_app/data/keep.txt",
        "shipped_app/flows.py",
    )
    again = source_tree(job)  # from the home's record of it: the same
    assert again == tree
    (package / "data" / "keep.txt").write_text("changed, and longer")
    assert source_tree(job).digest != tree.digest
