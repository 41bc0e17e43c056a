"""The review example on a Google Cloud stack, chosen by `kitaru stack register` +
`activate` alone: artifacts land in the bucket, the LLM key comes from Secret Manager."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcp_servers import PROJECT, FakeGCSServer
from kitaru import KitaruClient
from kitaru.testing import (
    FakeLLM,
    check_artifacts_stored,
    end_to_end_on_stack,
    llm_gateway_yaml,
    store_outage,
)
from kitaru_gcp.config import GCPSecretManagerConfig
from kitaru_gcp.secret_manager import GCPSecretManagerProvider

KEY = "sk-from-google-secret-manager-5678"


@pytest.fixture
def gcp_stack(
    tmp_path: Path,
    gcs: FakeGCSServer,
    bucket: str,
    secret_manager: str,
    fake_llm: FakeLLM,
    kitaru_home: Path,
) -> Path:
    prefix = f"{bucket}-"  # secrets of this test only
    GCPSecretManagerProvider(
        GCPSecretManagerConfig(
            project=PROJECT, endpoint=secret_manager, anonymous=True, prefix=prefix
        )
    ).set("openai_api_key", KEY)  # as `gcloud secrets create` would
    path = tmp_path / "gcp-test.yaml"
    path.write_text(
        f"""
name: gcp-test
artifact_store:
  flavor: gcs
  path: gs://{bucket}/kitaru
  project: {PROJECT}
  endpoint: {gcs.url}
  anonymous: true
  retry_deadline: 2
secret_provider:
  flavor: gcp-secret-manager
  project: {PROJECT}
  endpoint: {secret_manager}
  anonymous: true
  prefix: {prefix}
"""
        + llm_gateway_yaml(fake_llm, "openai_api_key")
    )
    return path


def test_the_review_flow_on_gcp(
    gcp_stack: Path, gcs: FakeGCSServer, bucket: str, fake_llm: FakeLLM
) -> None:
    executions = end_to_end_on_stack(gcp_stack, fake_llm)
    assert set(fake_llm.authorizations()) == {f"Bearer {KEY}"}
    stored = {b.name for b in gcs.client().list_blobs(bucket, prefix="kitaru/")}
    check_artifacts_stored(executions, f"gs://{bucket}/", stored)
    [draft] = KitaruClient().artifacts.list(executions[0], name="draft")
    blob = gcs.client().bucket(bucket).blob(draft.uri.removeprefix(f"gs://{bucket}/"))
    assert blob.download_as_bytes().decode() == draft.load()


def test_a_stopped_server_fails_the_run_and_a_retry_completes_once_it_is_back(
    gcp_stack: Path, gcs: FakeGCSServer, bucket: str
) -> None:
    def restart() -> None:
        gcs.start()
        gcs.client().create_bucket(bucket)  # the memory backend kept nothing

    ref = store_outage(gcp_stack, gcs.stop, restart)
    blob = gcs.client().bucket(bucket).get_blob(ref.uri.removeprefix(f"gs://{bucket}/"))
    assert blob is not None and blob.size == 20000
