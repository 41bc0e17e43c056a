"""Fixtures of this plugin's suite: the local servers it is tested against, an isolated
Kitaru home, and an OpenAI-compatible server for LLM calls."""

from azure_servers import azurite, container, key_vault  # noqa: F401 (fixtures)
from kitaru_core.testing.fixtures import kitaru_home  # noqa: F401 (a fixture)
from kitaru_core.testing.llm_server import fake_llm  # noqa: F401 (a fixture)
