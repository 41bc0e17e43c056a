"""The template plugin proves itself with the core's contract suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitaru_core.testing import SecretProviderContract
from kitaru_template.provider import DirectorySecretProvider, DirectorySecretProviderConfig


class TestDirectorySecretProvider(SecretProviderContract):
    @pytest.fixture
    def secret_provider(self, tmp_path: Path) -> DirectorySecretProvider:
        return DirectorySecretProvider(DirectorySecretProviderConfig(path=str(tmp_path / "s")))


def test_the_plugin_registers_its_flavor_through_the_entry_point() -> None:
    from kitaru_core.plugins import Plugins

    plugins = Plugins()
    flavor = plugins.registry.get("secret_provider", "directory")
    assert flavor is not None and flavor.plugin == "template"
    assert plugins.infos["template"].distribution == "kitaru-template"
