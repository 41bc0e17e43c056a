"""The template plugin proves itself with the core's contract suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kitaru.testing import SecretProviderContract
from kitaru_template.provider import DirectorySecretProvider, DirectorySecretProviderConfig


class TestDirectorySecretProvider(SecretProviderContract):
    @pytest.fixture
    def secret_provider(self, tmp_path: Path) -> DirectorySecretProvider:
        return DirectorySecretProvider(DirectorySecretProviderConfig(path=str(tmp_path / "s")))


def test_the_plugin_registers_its_flavor_through_the_entry_point() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "kitaru", "plugins", "list", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    template = {p["name"]: p for p in json.loads(listed.stdout)}["template"]
    assert template["loaded"] and template["distribution"] == "kitaru-template"
    assert template["flavors"] == ["secret_provider:directory"]
