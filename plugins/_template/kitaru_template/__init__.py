"""Registers the ``directory`` secret provider. Nothing heavy is imported here: the
implementation is named by its import path and loaded when a stack uses it."""

from __future__ import annotations

from kitaru.plugin import PLUGIN_API, Flavor, Register, hookimpl

KITARU_PLUGIN_API = PLUGIN_API


@hookimpl
def kitaru_register_secret_providers(register: Register) -> None:
    register(
        Flavor(
            "secret_provider",
            "directory",
            implementation="kitaru_template.provider:DirectorySecretProvider",
            config="kitaru_template.provider:DirectorySecretProviderConfig",
            description="one file per secret in a directory (mode 0600)",
        )
    )
