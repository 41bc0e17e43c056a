"""Fixtures of this plugin's suite: the local servers it is tested against, an isolated
Kitaru home, and an OpenAI-compatible server for LLM calls."""

from aws_servers import bucket, moto  # noqa: F401 (fixtures)
from kitaru.testing import (
    fake_llm,  # noqa: F401 (a fixture)
    kitaru_home,  # noqa: F401 (a fixture)
)
