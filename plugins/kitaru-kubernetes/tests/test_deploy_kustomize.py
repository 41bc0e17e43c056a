"""``deploy/kubernetes/base`` is what ``kitaru kubernetes manifests --server
--kustomize`` writes for ``deploy/kubernetes/stack.yaml``: a team that keeps its
manifests in git starts from the same code the command runs. After a change to the
manifests, regenerate it with ``KITARU_UPDATE_DEPLOY=1`` and this test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT
from k8s_cluster import restricted_violations, validate
from kitaru.testing import register_stack

DEPLOY = ROOT / "deploy" / "kubernetes"


def test_the_kustomize_base_in_the_repository_is_what_the_command_writes(
    database_url: str, tmp_path: Path
) -> None:
    register_stack(DEPLOY / "stack.yaml")
    written = tmp_path / "base"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "kitaru",
            "kubernetes",
            "manifests",
            "--stack",
            "kitaru",
            "--server",
            "--kustomize",
            str(written),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert made.returncode == 0, made.stderr
    fresh = {p.name: p.read_text() for p in sorted(written.iterdir())}
    if os.environ.get("KITARU_UPDATE_DEPLOY") == "1":
        base = DEPLOY / "base"
        base.mkdir(exist_ok=True)
        for old in base.glob("*.yaml"):
            old.unlink()
        for name, text in fresh.items():
            (base / name).write_text(text)
    kept = {p.name: p.read_text() for p in sorted((DEPLOY / "base").iterdir())}
    assert kept == fresh, "deploy/kubernetes/base is stale: regenerate it (see this module)"

    listed = yaml.safe_load(fresh["kustomization.yaml"])["resources"]
    assert sorted(listed) == sorted(set(fresh) - {"kustomization.yaml"})
    for name in listed:
        document = yaml.safe_load(fresh[name])
        validate(document)
        spec = document.get("spec") or {}
        if document["kind"] == "Deployment":
            assert restricted_violations(spec["template"]["spec"]) == []
