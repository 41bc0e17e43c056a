"""Fixtures: kmock's Kubernetes API with a kubelet that runs pods as local processes,
PostgreSQL (a schema per test), moto's S3, and an isolated Kitaru home."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_cluster import NAMESPACE, Cluster, Kubelet, base_env
from kitaru.testing import ServerProcess, kitaru_home, register_stack  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[3]
PG_URL = os.environ.get(
    "KITARU_TEST_DATABASE_URL", "postgresql://kitaru_test:kitaru_test@127.0.0.1:5432/kitaru_test"
)
MOCK = "Durable agents never pay twice for a step."


class Moto(ServerProcess):
    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        import sys

        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    server = Moto()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto: Moto) -> str:
    import boto3

    name = f"kitaru-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture
def database_url(kitaru_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import psycopg

    schema = f"k_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("KITARU_DATABASE_URL", url)
    from kitaru.testing import reset_caches

    reset_caches()
    yield url
    reset_caches()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    server = Cluster(tmp_path)
    yield server
    server.close()


@pytest.fixture
def kubelet(cluster: Cluster, tmp_path: Path, counter: Path) -> Iterator[Kubelet]:
    pythonpath = os.pathsep.join(
        [str(Path(__file__).parent), str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")]
    )
    node = Kubelet(
        cluster,
        tmp_path / "pods",
        base_env({"PYTHONPATH": pythonpath, "REVIEW_FLOW_COUNTER": str(counter)}),
    )
    yield node
    node.close()


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return tmp_path / "bodies-run.txt"


def stack_yaml(
    cluster: Cluster,
    bucket: str,
    moto_url: str,
    image: str = "kitaru-test:1",
    extra: str = "",
    orchestrator_kubeconfig: Path | None = None,
) -> str:
    """The test stack; ``extra``: more lines of the orchestrator's config;
    ``orchestrator_kubeconfig``: another API server for the orchestrator only."""
    return f"""
name: k8s-test
artifact_store:
  flavor: s3
  path: s3://{bucket}/kitaru
  endpoint_url: {moto_url}
  region: us-east-1
  access_key_id: testing
  secret_access_key: testing
secret_provider:
  flavor: kubernetes-secrets
  kubeconfig: {cluster.kubeconfig}
  namespace: {NAMESPACE}
orchestrator:
  flavor: kubernetes
  kubeconfig: {orchestrator_kubeconfig or cluster.kubeconfig}
  namespace: {NAMESPACE}
  image: {image}
  image_pull_secrets: [registry]
  database_url_secret: {{name: kitaru-db, key: url}}
  env:
    KITARU_LLM_MOCK_RESPONSE: "{MOCK}"
  resources:
    requests: {{cpu: 250m, memory: 256Mi}}
    limits: {{memory: 1Gi}}
  flows:
    review:
      node_selector: {{pool: general}}
{extra}"""


@pytest.fixture
def k8s_stack(
    cluster: Cluster, kubelet: Kubelet, database_url: str, bucket: str, moto: Moto, tmp_path: Path
) -> Cluster:
    """A registered, active stack: S3 on moto, Secrets and Jobs on the emulator, and the
    store's URL in the Secret the pods read it from."""
    register_k8s_stack(cluster, database_url, stack_yaml(cluster, bucket, moto.url), tmp_path)
    return cluster


def register_k8s_stack(cluster: Cluster, database_url: str, text: str, tmp_path: Path) -> None:
    """Register and activate the stack file ``text`` (as ``k8s.yaml``), with the store's
    URL in the Secret its pods read it from."""
    cluster.secret("kitaru-db", database_url, key="url")
    path = tmp_path / "k8s.yaml"
    path.write_text(text)
    register_stack(path, activate=True)
