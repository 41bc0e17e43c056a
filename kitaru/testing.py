"""What a plugin's own tests import: the contract suites every component of its kind
must pass, the isolation fixture, a local OpenAI-compatible LLM server, and helpers
for running test servers and end-to-end scenarios.

    from kitaru.testing import ArtifactStoreContract, SecretProviderContract
    from kitaru.testing import kitaru_home, fake_llm   # pytest fixtures
"""

from __future__ import annotations

from kitaru_core.clock import ManualClock, use_clock
from kitaru_core.stack_registry import register as register_stack
from kitaru_core.stack_registry import stack_names
from kitaru_core.testing import ArtifactStoreContract, OrchestratorContract, SecretProviderContract
from kitaru_core.testing.fixtures import ISOLATED_VARIABLES, kitaru_home, reset_caches
from kitaru_core.testing.llm_server import FakeLLM, fake_llm
from kitaru_core.testing.scenarios import (
    check_artifacts_stored,
    end_to_end_on_stack,
    listed_without_sdk,
    llm_gateway_yaml,
    store_outage,
    wait_for_status,
)
from kitaru_core.testing.servers import ServerProcess
from kitaru_core.worker.service import Worker

__all__ = [
    "ISOLATED_VARIABLES",
    "ArtifactStoreContract",
    "FakeLLM",
    "ManualClock",
    "OrchestratorContract",
    "SecretProviderContract",
    "ServerProcess",
    "Worker",
    "check_artifacts_stored",
    "end_to_end_on_stack",
    "fake_llm",
    "kitaru_home",
    "listed_without_sdk",
    "llm_gateway_yaml",
    "register_stack",
    "reset_caches",
    "stack_names",
    "store_outage",
    "use_clock",
    "wait_for_status",
]
