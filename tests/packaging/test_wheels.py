"""The wheels ``nox -s dist`` builds install and work with no package index: the core
with a plugin as its extra, in a fresh virtual environment. (Run by ``nox -s dist``,
which builds them first and names their folder in ``KITARU_DIST_DIR``.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

DIST = os.environ.get("KITARU_DIST_DIR", "")

FLOW = """
from kitaru import checkpoint, flow

@checkpoint
def double(x: int) -> int:
    return 2 * x

@flow
def doubled(x: int) -> int:
    return double(x)

print(doubled.run(21).wait())
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DIST:
        pytest.fail("set KITARU_DIST_DIR to the wheels folder (nox -s dist does)")
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run(
        [
            env_dir / "bin" / "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            DIST,
            "kitaru[aws]",
        ],
        check=True,
        timeout=600,
    )
    return env_dir


def test_the_core_and_its_aws_plugin_install_from_the_wheels_alone(
    installed: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, KITARU_HOME=str(tmp_path / "home"))
    listed = subprocess.run(
        [installed / "bin" / "kitaru", "plugins", "list", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert plugins["aws"]["loaded"] and "artifact_store:s3" in plugins["aws"]["flavors"]

    ran = subprocess.run(
        [installed / "bin" / "python", "-c", FLOW],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "42"  # migrations and every module made it into the wheel


def test_a_missing_plugin_hint_from_an_installed_kitaru_names_the_wheels(
    installed: Path, tmp_path: Path
) -> None:
    stack = tmp_path / "gcp.yaml"
    stack.write_text("name: g\nartifact_store: {flavor: gcs, path: 'gs://b/k'}\n")
    env = dict(os.environ, KITARU_HOME=str(tmp_path / "home"))
    out = subprocess.run(
        [installed / "bin" / "kitaru", "stack", "validate", str(stack)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert 'pip install --no-index --find-links DIST "kitaru[gcp]"' in out.stderr
    assert sys.executable  # the hint never names the public index's unrelated kitaru
