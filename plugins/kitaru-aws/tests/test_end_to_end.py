"""The review example on an AWS stack, chosen by `kitaru stack register` + `activate`
alone: artifacts land in the S3 bucket, the LLM key comes from Secrets Manager."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import MotoServer
from kitaru import KitaruClient, KitaruExecutionError, checkpoint, flow
from kitaru_core.stack_registry import register
from kitaru_core.testing.fixtures import run_kitaru
from kitaru_core.testing.llm_server import FakeLLM

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "review_flow.py"
KEY = "sk-from-secrets-manager-1234"


@pytest.fixture
def aws_stack(
    tmp_path: Path, moto: MotoServer, bucket: str, fake_llm: FakeLLM, kitaru_home: Path
) -> Path:
    prefix = f"{bucket}/"  # secrets of this test only
    moto.client("secretsmanager").create_secret(Name=f"{prefix}openai_api_key", SecretString=KEY)
    path = tmp_path / "aws-test.yaml"
    path.write_text(f"""
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
llm_gateway:
  flavor: litellm
  models:
    fast:
      model: openai/gpt-4o-mini
      api_base: {fake_llm.api_base}
      api_key: "{{{{ secret.openai_api_key }}}}"
""")
    return path


def wait_for(exec_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while KitaruClient().executions.get(exec_id).status != status:
        assert time.monotonic() < deadline, KitaruClient().executions.logs(exec_id)
        time.sleep(0.2)


def test_the_review_flow_on_aws(
    aws_stack: Path, moto: MotoServer, bucket: str, fake_llm: FakeLLM
) -> None:
    env = {"KITARU_INLINE_ARTIFACT_BYTES": "0"}  # every artifact to the bucket
    assert run_kitaru("stack", "register", str(aws_stack), env=env).returncode == 0
    assert run_kitaru("stack", "activate", "aws-test", env=env).returncode == 0

    ran = run_kitaru("run", f"{EXAMPLE}:review", "--arg", "topic=clouds", "-o", "json", env=env)
    assert ran.returncode == 0, ran.stderr
    first = json.loads(ran.stdout)
    assert (first["status"], first["stack"]) == ("waiting", "aws-test")
    given = run_kitaru("executions", "input", first["exec_id"], "--value", "true", env=env)
    assert given.returncode == 0, given.stderr
    wait_for(first["exec_id"], "completed")
    assert len(fake_llm.requests) == 2  # research and draft, once each
    assert set(fake_llm.authorizations()) == {f"Bearer {KEY}"}

    replayed = run_kitaru(
        "executions",
        "replay",
        first["exec_id"],
        "--from",
        "draft",
        "--override",
        'checkpoint.research=["one note from the override"]',
        "-o",
        "json",
        env=env,
    )
    assert replayed.returncode == 0, replayed.stderr
    second = json.loads(replayed.stdout)["exec_id"]
    run_kitaru("executions", "input", second, "--value", "true", env=env)
    wait_for(second, "completed")
    assert len(fake_llm.requests) == 3  # only the replay's draft called the model
    assert "one note from the override" in KitaruClient().executions.get(second).result["text"]

    s3 = moto.client("s3")
    stored = {
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="kitaru/").get("Contents", [])
    }
    for exec_id in (first["exec_id"], second):
        for artifact in KitaruClient().artifacts.list(exec_id):
            assert artifact.uri.startswith(f"s3://{bucket}/kitaru/")
            assert artifact.uri.removeprefix(f"s3://{bucket}/") in stored
    [draft] = KitaruClient().artifacts.list(first["exec_id"], name="draft")
    body = s3.get_object(Bucket=bucket, Key=draft.uri.removeprefix(f"s3://{bucket}/"))[
        "Body"
    ].read()
    assert body.decode() == draft.load()  # text is stored as text
    reviews = KitaruClient().memories.get("reviews", scope="review", scope_type="flow")
    assert reviews == 1  # the replay read the first run's recorded value, 0, and wrote 1


@checkpoint
def small() -> str:
    return "fits in the metadata store"


@checkpoint
def large() -> str:
    return "x" * 20000  # goes to the bucket


@flow
def two_steps() -> int:
    return len(small()) + len(large())


def test_a_stopped_server_fails_the_run_and_a_retry_completes_once_it_is_back(
    aws_stack: Path, moto: MotoServer, bucket: str
) -> None:
    register(aws_stack, activate=True)
    moto.stop()
    try:
        handle = two_steps.run()
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.status == "failed"
        assert execution.error is not None and "KitaruBackendError" in execution.error["type"]
        assert f"cannot reach {moto.url}" in execution.error["message"]
        assert [(c.name, c.status) for c in execution.checkpoints] == [
            ("small", "completed"),
            ("large", "failed"),
        ]
        with pytest.raises(KitaruExecutionError, match="KitaruBackendError"):
            handle.wait()
    finally:
        moto.start()
    moto.client("s3").create_bucket(Bucket=bucket)  # the server kept nothing in memory
    assert KitaruClient().executions.retry(handle.exec_id).wait() == 26 + 20000
    [ref] = KitaruClient().artifacts.list(handle.exec_id, name="large")
    assert moto.client("s3").head_object(Bucket=bucket, Key=ref.uri.removeprefix(f"s3://{bucket}/"))
