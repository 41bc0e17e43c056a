"""Fixtures of this plugin's suite: the local servers it is tested against, an isolated
Kitaru home, and an OpenAI-compatible server for LLM calls."""

from azure_servers import (  # noqa: F401 (fixtures)
    azurite,
    azurite_oauth,
    container,
    key_vault,
    managed_identity,
    tls_files,
)
from kitaru.testing import (
    fake_llm,  # noqa: F401 (a fixture)
    kitaru_home,  # noqa: F401 (a fixture)
)
