"""The review example on an AWS stack, chosen by `kitaru stack register` + `activate`
alone: artifacts land in the S3 bucket, the LLM key comes from Secrets Manager."""

from __future__ import annotations

from pathlib import Path

import pytest

from aws_servers import MotoServer
from kitaru import KitaruClient
from kitaru.testing import (
    FakeLLM,
    check_artifacts_stored,
    end_to_end_on_stack,
    llm_gateway_yaml,
    store_outage,
)

KEY = "sk-from-secrets-manager-1234"


@pytest.fixture
def aws_stack(
    tmp_path: Path, moto: MotoServer, bucket: str, fake_llm: FakeLLM, kitaru_home: Path
) -> Path:
    prefix = f"{bucket}/"  # secrets of this test only
    moto.client("secretsmanager").create_secret(Name=f"{prefix}openai_api_key", SecretString=KEY)
    path = tmp_path / "aws-test.yaml"
    path.write_text(
        f"""
name: aws-test
artifact_store:
  flavor: s3
  path: s3://{bucket}/kitaru
  region: us-east-1
  endpoint_url: {moto.url}
secret_provider:
  flavor: aws-secrets-manager
  region: us-east-1
  endpoint_url: {moto.url}
  prefix: {prefix}
orchestrator:
  flavor: local
"""
        + llm_gateway_yaml(fake_llm, "openai_api_key")
    )
    return path


def test_the_review_flow_on_aws(
    aws_stack: Path, moto: MotoServer, bucket: str, fake_llm: FakeLLM
) -> None:
    executions = end_to_end_on_stack(aws_stack, fake_llm)
    assert set(fake_llm.authorizations()) == {f"Bearer {KEY}"}  # read from Secrets Manager
    s3 = moto.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="kitaru/").get("Contents", [])
    stored = {o["Key"] for o in listed}
    check_artifacts_stored(executions, f"s3://{bucket}/", stored)
    [draft] = KitaruClient().artifacts.list(executions[0], name="draft")
    body = s3.get_object(Bucket=bucket, Key=draft.uri.removeprefix(f"s3://{bucket}/"))["Body"]
    assert body.read().decode() == draft.load()  # text is stored as text


def test_a_stopped_server_fails_the_run_and_a_retry_completes_once_it_is_back(
    aws_stack: Path, moto: MotoServer, bucket: str
) -> None:
    def restart() -> None:
        moto.start()
        moto.client("s3").create_bucket(Bucket=bucket)  # the server kept nothing in memory

    ref = store_outage(aws_stack, moto.stop, restart)
    key = ref.uri.removeprefix(f"s3://{bucket}/")
    assert moto.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] == 20000
