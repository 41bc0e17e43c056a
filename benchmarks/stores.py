"""A 200 MB artifact to and from each artifact store, with the process's peak memory.

    nox -s bench -- --stores

Each store runs against its local server (moto, fake-gcs-server, Azurite; started here
as the plugins' tests start them). The artifact is a file object, so it is streamed:
peak memory should stay far below its size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE_MB = 200

MEASURE = r"""
import hashlib, json, os, resource, sys, tempfile, time
from kitaru_core.artifacts import Artifacts
from kitaru_core.flavors import import_object

flavor_class, config_class, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
store = import_object(flavor_class)(import_object(config_class)(**config))
artifacts = Artifacts(store, inline_limit=0)
store.exists("0" * 64)  # the SDK is imported and its client made: the baseline
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
size = int(sys.argv[4]) * 1024 * 1024
with tempfile.TemporaryFile() as source:
    block = os.urandom(1024 * 1024)
    for _ in range(size // len(block)):
        source.write(block)
    source.seek(0)
    started = time.perf_counter()
    record = artifacts.write(source, exec_id=None, name="big", role="saved")
    written = time.perf_counter() - started
    started = time.perf_counter()
    digest = hashlib.sha256()
    with artifacts.read(record) as loaded:
        for chunk in iter(lambda: loaded.read(1024 * 1024), b""):
            digest.update(chunk)
    read = time.perf_counter() - started
assert digest.hexdigest() == record.key and record.size == size
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"write_s": written, "read_s": read, "peak_mib": peak, "baseline_mib": baseline}))
"""


def measure(flavor: str, config_class: str, config: dict[str, object]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, flavor, config_class, json.dumps(config), str(SIZE_MB)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{flavor} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")  # moto accepts any
    for plugin in ("kitaru-aws", "kitaru-gcp", "kitaru-azure"):
        sys.path.insert(0, str(ROOT / "plugins" / plugin / "tests"))
    from aws_servers import MotoServer
    from azure_servers import Azurite
    from gcp_servers import FakeGCSServer

    results = {}
    with tempfile.TemporaryDirectory() as home:
        results["local"] = measure(
            "kitaru_core.builtin.local_artifact_store:LocalArtifactStore",
            "kitaru_core.builtin.configs:LocalArtifactStoreConfig",
            {"path": home},
        )
    moto = MotoServer()
    moto.start()
    try:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        moto.client("s3").create_bucket(Bucket=bucket)
        results["s3"] = measure(
            "kitaru_aws.s3:S3ArtifactStore",
            "kitaru_aws.config:S3ArtifactStoreConfig",
            {"path": f"s3://{bucket}/k", "endpoint_url": moto.url, "region": "us-east-1"},
        )
    finally:
        moto.stop()
    gcs = FakeGCSServer()
    gcs.start()
    try:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        gcs.client().create_bucket(bucket)
        results["gcs"] = measure(
            "kitaru_gcp.gcs:GCSArtifactStore",
            "kitaru_gcp.config:GCSArtifactStoreConfig",
            {
                "path": f"gs://{bucket}/k",
                "endpoint": gcs.url,
                "anonymous": True,
                "project": "bench",
            },
        )
    finally:
        gcs.stop()
    azurite = Azurite()
    azurite.start()
    try:
        container = f"bench-{uuid.uuid4().hex[:8]}"
        azurite.service().create_container(container)
        results["azure-blob"] = measure(
            "kitaru_azure.blob:AzureBlobArtifactStore",
            "kitaru_azure.config:AzureBlobArtifactStoreConfig",
            {"path": f"az://{container}/k", "connection_string": azurite.connection_string},
        )
    finally:
        azurite.stop()
    print(f"A {SIZE_MB} MB artifact streamed to and from each store (one run each):")
    print(f"{'store':<12} {'write':>8} {'read':>8} {'peak memory':>12} {'before the transfer':>20}")
    for store, r in results.items():
        print(
            f"{store:<12} {r['write_s']:>7.1f}s {r['read_s']:>7.1f}s {r['peak_mib']:>8.0f} MiB"
            f" {r['baseline_mib']:>16.0f} MiB"
        )


if __name__ == "__main__":
    main()
