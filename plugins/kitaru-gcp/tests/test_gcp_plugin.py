"""The plugin is found through its entry point and imports its SDK only when used."""

from __future__ import annotations

from kitaru.testing import listed_without_sdk


def test_plugins_list_shows_the_flavors_without_importing_the_sdk() -> None:
    listed_without_sdk(
        "gcp",
        ["artifact_store:gcs", "secret_provider:gcp-secret-manager"],
        ("google.cloud", "google.auth", "google.api_core"),
    )


def test_the_example_stack_file_for_the_real_cloud_is_valid(kitaru_home: object) -> None:
    from pathlib import Path

    from kitaru.testing import register_stack as register
    from kitaru.testing import stack_names

    stack_file = Path(__file__).resolve().parents[3] / "stacks" / "gcp.yaml"
    assert register(stack_file).name == "gcp"
    assert "gcp" in stack_names()
