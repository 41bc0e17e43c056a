"""Code shipped with the execution on Kubernetes (``code: archive``, the default for this
orchestrator): the pods' image does not hold the flow at all; each Job downloads the
source archive its execution started with, so a deploy in the middle of a wait changes
nothing for that execution, and ``retry --code current`` moves one on deliberately."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from k8s_cluster import Cluster, Kubelet, wait_until
from kitaru import KitaruClient
from kitaru.plugin import get_stack

PROJECT = """
from kitaru import checkpoint, flow, wait

VERSION = "{version}"


@checkpoint
def report() -> str:
    return "ran " + VERSION


@flow
def shipped() -> str:
    wait(name="go", schema=bool)
    return report()
"""


def status_of(exec_id: str) -> str:
    return KitaruClient().executions.get(exec_id).status


def archive_keys(exec_id: str) -> list[str]:
    """The blob keys of an execution's code archive (the last part of its URI)."""
    found = KitaruClient().artifacts.list(exec_id)
    return [a.uri.rsplit("/", 1)[1] for a in found if a.role == "code"]


def write_project(root: Path, version: str) -> None:
    (root / "shipme.py").write_text(PROJECT.format(version=version))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project only this test process has on its path: a pod can import it from
    its archive alone."""
    root = tmp_path / "project"
    root.mkdir()
    write_project(root, "A")
    monkeypatch.syspath_prepend(str(root))
    sys.modules.pop("shipme", None)
    return root


def test_a_resumed_job_runs_the_archive_its_execution_started_with(
    k8s_stack: Cluster, kubelet: Kubelet, project: Path, tmp_path: Path
) -> None:
    shipme = importlib.import_module("shipme")
    first = shipme.shipped.start()
    second = shipme.shipped.start()  # the same tree: the archive is stored once
    client = KitaruClient()
    for exec_id in (first.exec_id, second.exec_id):
        wait_until(lambda e=exec_id: status_of(e) == "waiting", what="the first Jobs to wait")
    archive_a = client.executions.get(first.exec_id).code_archive
    assert archive_a and client.executions.get(second.exec_id).code_archive == archive_a
    keys = {key for e in (first, second) for key in archive_keys(e.exec_id)}
    assert len(keys) == 1
    [key] = keys
    assert [k for k in get_stack().artifact_store.list() if k == key] == [key]

    write_project(project, "B")  # the deploy, while both wait
    client.executions.input(first.exec_id, wait="go", value=True)
    wait_until(lambda: status_of(first.exec_id) == "completed", timeout=120, what="the Job")
    assert client.executions.get(first.exec_id).result == "ran A"
    logs = get_stack().orchestrator.logs(first.exec_id) or ""
    assert f"running code archive {archive_a[:12]} (downloaded from" in logs

    # Moved to today's code deliberately, it runs B in its next Job.
    client.executions.cancel(second.exec_id)
    moved = subprocess.run(
        [
            sys.executable,
            "-m",
            "kitaru",
            "executions",
            "retry",
            second.exec_id,
            "--code",
            "current",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(project)},
    )
    assert moved.returncode == 0, moved.stderr
    wait_until(lambda: status_of(second.exec_id) == "waiting", timeout=120, what="its retry")
    client.executions.input(second.exec_id, wait="go", value=True)
    wait_until(lambda: status_of(second.exec_id) == "completed", timeout=120, what="the Job")
    execution = client.executions.get(second.exec_id)
    assert execution.result == "ran B" and execution.code_archive not in (archive_a, None)


def test_a_missing_archive_fails_the_run_and_runs_nothing(
    k8s_stack: Cluster, kubelet: Kubelet, project: Path
) -> None:
    shipme = importlib.import_module("shipme")
    handle = shipme.shipped.start()
    wait_until(lambda: status_of(handle.exec_id) == "waiting", what="the first Job to wait")
    [key] = archive_keys(handle.exec_id)
    get_stack().artifact_store.delete(key)
    KitaruClient().executions.input(handle.exec_id, wait="go", value=True)
    wait_until(lambda: status_of(handle.exec_id) == "failed", timeout=120, what="the Job to fail")
    error = KitaruClient().executions.get(handle.exec_id).error
    assert error is not None and "missing from the s3 artifact store" in error["message"]
    assert KitaruClient().executions.get(handle.exec_id).checkpoints[-1].name == "go"
