"""The kubernetes orchestrator against kmock's API, with the kubelet played by the
tests: executions run as Jobs, no pod exists while one waits, pods that die say why,
and every manifest passes strict validation."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import k8s_flows
from conftest import MOCK, ROOT, Moto, register_k8s_stack, stack_yaml
from k8s_cluster import (
    NAMESPACE,
    Cluster,
    Kubelet,
    UnwellApiServer,
    restricted_violations,
    validate,
    wait_until,
)
from kitaru import KitaruClient, KitaruDispatchError
from kitaru.plugin import KitaruBackendError, KitaruStackError, Orchestrator, get_stack, store_id
from kitaru.testing import ManualClock, OrchestratorContract, Worker, register_stack, use_clock
from kitaru_kubernetes import api, orchestrator

sys.path.insert(0, str(ROOT / "examples"))
import review_flow


def status_of(exec_id: str) -> str:
    return KitaruClient().executions.get(exec_id).status


def bodies_run(counter: Path) -> list[str]:
    return counter.read_text().split() if counter.exists() else []


def test_the_review_example_runs_as_jobs_and_no_pod_exists_while_it_waits(
    k8s_stack: Cluster,
    kubelet: Kubelet,
    counter: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    began = time.monotonic()
    handle = review_flow.review.start("durable agents")
    assert time.monotonic() - began < 5  # start returns once the Job exists
    assert len(k8s_stack.jobs()) == 1
    wait_until(
        lambda: status_of(handle.exec_id) == "waiting", what="the first Job to reach the wait"
    )
    wait_until(lambda: not kubelet.running, what="the first pod to exit")
    assert [p.status.phase for p in k8s_stack.pods()] == ["Succeeded"]  # none runs

    KitaruClient().executions.input(handle.exec_id, wait="approve_draft", value=True)
    wait_until(lambda: status_of(handle.exec_id) == "completed", timeout=120, what="the second Job")
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.result["published"] is True and MOCK in execution.result["text"]
    assert bodies_run(counter) == ["research", "draft", "publish"]  # each once, across pods

    jobs = k8s_stack.job_bodies()
    assert len(jobs) == 2 and jobs[0]["metadata"]["name"] != jobs[1]["metadata"]["name"]
    for job in jobs:
        validate(job)
        assert database_url not in json.dumps(job)  # the URL stays in its Secret
        pod = job["spec"]["template"]["spec"]
        assert restricted_violations(pod) == []  # a `restricted` namespace admits it
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["KITARU_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "kitaru-db",
            "key": "url",
        }
        assert pod["nodeSelector"] == {"pool": "general"}  # the stack's flows.review
        assert pod["containers"][0]["resources"]["limits"] == {"memory": "1Gi"}
        assert pod["serviceAccountName"] == "kitaru-run"  # not the worker's rights
        assert pod["automountServiceAccountToken"] is True  # it reads kubernetes-secrets
        assert job["spec"]["backoffLimit"] == 0
        labels = job["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "run"
        assert labels["app.kubernetes.io/instance"] == "k8s-test"
        assert labels["kitaru.dev/flow"] == "review"
        assert labels["kitaru.dev/store"] == store_id()
    # The runner prints its last line after the execution is recorded completed.
    wait_until(
        lambda: [p.status.phase for p in k8s_stack.pods()] == ["Succeeded"] * 2,
        what="the second pod to end with its log",
    )
    # What each run printed, shipped to the store by the runner as it ran.
    logs = KitaruClient().executions.logs(handle.exec_id)
    assert logs.count("--- run ") == 2 and logs.rstrip().endswith("is completed")
    tail = KitaruClient().executions.logs(handle.exec_id, tail=1).split("--- run ")
    assert [len(part.splitlines()) for part in tail] == [0, 2, 2]
    # The pods' own logs are read up to a bound, and the user is told where the rest is.
    pods = get_stack().orchestrator.logs(handle.exec_id)
    assert pods is not None and pods.count("--- pod ") == 2
    monkeypatch.setattr(orchestrator, "POD_LOG_BYTES", 40)
    cut = get_stack().orchestrator.logs(handle.exec_id)
    assert cut is not None and cut.count("(cut after 40 bytes: `kubectl logs -n ") == 2


def test_what_a_run_printed_is_kept_after_its_job_is_deleted(
    cluster: Cluster,
    kubelet: Kubelet,
    database_url: str,
    bucket: str,
    moto: Moto,
    tmp_path: Path,
) -> None:
    """The TTL-after-finished controller deletes a finished Job and its pods (and with
    them `kubectl logs`); `executions logs` still shows what the run printed."""
    register_k8s_stack(
        cluster,
        database_url,
        stack_yaml(cluster, bucket, moto.url, extra="  ttl_seconds_after_finished: 1"),
        tmp_path,
    )
    handle = k8s_flows.three.start(4)
    wait_until(lambda: status_of(handle.exec_id) == "completed", what="the run")
    wait_until(lambda: not cluster.jobs() and not cluster.pods(), what="the TTL deletion")
    logs = KitaruClient().executions.logs(handle.exec_id)
    assert "three: adding 4" in logs
    assert f"runner: execution {handle.exec_id} is completed" in logs


def test_a_pod_that_never_starts_fails_the_execution_with_the_reason_and_retry_completes(
    k8s_stack: Cluster, kubelet: Kubelet, tmp_path: Path, bucket: str, moto: object
) -> None:
    kubelet.unpullable.add("kitaru-test:1")
    handle = k8s_flows.three.start(1)
    wait_until(lambda: len(k8s_stack.pods()) == 1, what="the pod")
    time.sleep(0.3)
    Worker(log=lambda line: None, orphan_seconds=0.2).run_once()
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "failed"
    assert "ImagePullBackOff" in execution.error["message"]
    assert "retry" in execution.error["message"]
    assert k8s_stack.jobs() == []  # deleted: a pod stuck pulling would hold its node

    kubelet.unpullable.clear()  # the image was pushed
    KitaruClient().executions.retry(handle.exec_id)
    assert status_of(handle.exec_id) == "completed"
    assert KitaruClient().executions.get(handle.exec_id).result == 6
    names = [j["metadata"]["name"] for j in k8s_stack.job_bodies()]
    assert len(names) == 2 and len(set(names)) == 2


@pytest.mark.parametrize(
    ("flow_name", "said"),
    [
        (
            "on_eight_gpus",
            "past the stack's pending_timeout (Unschedulable): 0/3 nodes are available: 3 "
            "Insufficient nvidia.com/gpu.",
        ),
        ("as_root", 'violates PodSecurity "restricted:latest": runAsNonRoot != true'),
    ],
)
def test_a_run_whose_pod_never_starts_fails_after_the_pending_timeout_and_its_job_goes(
    cluster: Cluster,
    kubelet: Kubelet,
    database_url: str,
    bucket: str,
    moto: Moto,
    tmp_path: Path,
    flow_name: str,
    said: str,
) -> None:
    """A pod no node can take, or one a `restricted` namespace refuses (the Job
    controller then creates none): the worker leaves it be while the stack's
    pending_timeout runs, then fails the execution with the cluster's reason and
    deletes the Job (a GPU request would be held for nothing)."""
    register_k8s_stack(
        cluster,
        database_url,
        stack_yaml(cluster, bucket, moto.url, extra="  pending_timeout: 2"),
        tmp_path,
    )
    handle = getattr(k8s_flows, flow_name).start()
    time.sleep(0.5)
    worker = Worker(log=lambda line: None, orphan_seconds=0.2)
    worker.run_once()
    assert status_of(handle.exec_id) == "running"  # still within pending_timeout
    assert worker.counts["recovered"] == 0 and len(cluster.jobs()) == 1  # nor a second Job
    time.sleep(2)
    Worker(log=lambda line: None, orphan_seconds=0.2).run_once()
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "failed"
    assert said in execution.error["message"]
    assert cluster.jobs() == []


def test_a_cancel_while_the_cluster_is_away_is_put_right_when_it_answers(
    k8s_stack: Cluster, kubelet: Kubelet, bucket: str, moto: Moto, tmp_path: Path
) -> None:
    kubelet.unpullable.add("kitaru-test:1")  # its pod stays, holding its node
    handle = k8s_flows.three.start(1)
    wait_until(lambda: len(k8s_stack.pods()) == 1, what="the pod")
    away = tmp_path / "away.yaml"  # the orchestrator's API server stops answering
    away.write_text(
        stack_yaml(
            k8s_stack,
            bucket,
            moto.url,
            orchestrator_kubeconfig=_closed_port_kubeconfig(tmp_path),
        )
    )
    register_stack(away, activate=True)
    with pytest.raises(KitaruBackendError, match="could not be reached"):
        KitaruClient().executions.cancel(handle.exec_id)
    assert status_of(handle.exec_id) == "cancelled"  # the store is the truth
    assert len(k8s_stack.jobs()) == 1  # but the Job still runs

    register_stack(tmp_path / "k8s.yaml", activate=True)  # the cluster answers again
    worker = Worker(log=lambda line: None)
    worker.run_once()
    assert worker.counts["reconciled"] == 1
    wait_until(lambda: not k8s_stack.jobs(), what="the Job to be deleted")


def _closed_port_kubeconfig(tmp_path: Path) -> Path:
    import socket

    from k8s_cluster import write_kubeconfig

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return write_kubeconfig(tmp_path / "kubeconfig-away", f"http://127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("OOMKilled", "more memory than its limit (OOMKilled)"),
        ("DeadlineExceeded", "active_deadline_seconds (DeadlineExceeded)"),
    ],
)
def test_a_run_that_dies_in_the_cluster_is_failed_with_what_the_cluster_says(
    k8s_stack: Cluster, kubelet: Kubelet, kind: str, said: str
) -> None:
    kubelet.dies["kitaru-test:1"] = kind
    handle = k8s_flows.three.start(1)
    wait_until(lambda: len(k8s_stack.pods()) == 1, what="the pod")
    time.sleep(0.3)
    Worker(log=lambda line: None, orphan_seconds=0.2).run_once()
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "failed" and said in execution.error["message"]
    assert k8s_stack.jobs() == []  # its reason is recorded: the Job goes


def _conditions(job: Any) -> list[Any]:
    """A Job's conditions: none until the controller has given it a status."""
    return (job.status.conditions if job.status else None) or []


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("Evicted", "was evicted (Evicted): The node was low on resource: memory."),
        ("Preempted", "was stopped by the cluster (PreemptionByScheduler)"),
        ("Deleted", "failed (BackoffLimitExceeded) and its pod is gone"),
    ],
)
def test_a_pod_the_cluster_stops_mid_step_costs_one_rerun_of_that_step_and_nothing_more(
    k8s_stack: Cluster, kubelet: Kubelet, counter: Path, how: str, said: str
) -> None:
    """A spot reclaim, a preemption, a drained node: the Job controller marks the Job
    Failed (BackoffLimitExceeded) as for any failed pod; the worker recovers the
    execution instead of failing it, and the step that ran before is not run again."""

    def in_the_middle_of_step_1() -> bool:
        return bodies_run(counter)[-1:] == ["step1"]

    kubelet.interrupt["kitaru-test:1"] = (how, in_the_middle_of_step_1)
    handle = k8s_flows.paced.start(1)
    wait_until(lambda: len(kubelet.started) == 1 and not kubelet.running, what="the kill")
    wait_until(
        lambda: any(
            c.type == "Failed" and c.reason == "BackoffLimitExceeded"
            for c in _conditions(k8s_stack.jobs()[0])
        ),
        what="the Job controller to fail the Job",
    )
    worker = Worker(log=lambda line: None, orphan_seconds=0.2)
    worker.run_once()
    assert worker.counts["recovered"] == 1
    wait_until(lambda: status_of(handle.exec_id) == "completed", what="the recovered run")
    assert KitaruClient().executions.get(handle.exec_id).result == 6
    assert bodies_run(counter) == ["step0", "step1", "step1", "step2"]  # step 1 again only
    assert said in KitaruClient().executions.logs(handle.exec_id)
    assert len(k8s_stack.jobs()) == 2


def test_a_runner_asked_to_stop_ends_its_step_and_leaves_the_rest_for_recovery(
    k8s_stack: Cluster, kubelet: Kubelet, counter: Path
) -> None:
    """``kubectl delete pod`` or a drain: SIGTERM to the runner (PID 1 in its pod). It
    ends the step it is in, records it, starts no other, lets go of the execution and
    exits in seconds, not at the end of the grace period; a worker goes on elsewhere."""

    def in_the_middle_of_step_1() -> bool:
        return bodies_run(counter)[-1:] == ["step1"]

    kubelet.interrupt["kitaru-test:1"] = ("Terminated", in_the_middle_of_step_1)
    handle = k8s_flows.paced.start(1)
    wait_until(lambda: kubelet.stopped_in, what="the pod to stop")
    [stopped_in] = kubelet.stopped_in.values()
    assert stopped_in < 10  # the step's 1.5 s, not the 30 s grace period
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "running" and execution.lease_owner is None
    assert [c.name for c in execution.checkpoints] == ["step", "slow_step"]  # step 1 recorded
    worker = Worker(log=lambda line: None, orphan_seconds=0.2)
    worker.run_once()
    assert worker.counts["recovered"] == 1
    wait_until(lambda: status_of(handle.exec_id) == "completed", what="the recovered run")
    assert bodies_run(counter) == ["step0", "step1", "step2"]  # nothing ran twice
    [pod] = kubelet.stopped_in
    said = (kubelet.home / f"{pod}.log").read_text()  # what `kubectl logs` showed
    assert "runner: asked to stop" in said and "left for recovery" in said
    assert "recovered by the worker" in KitaruClient().executions.logs(handle.exec_id)


def test_a_due_timer_is_a_new_job_and_no_pod_exists_while_it_sleeps(
    k8s_stack: Cluster, kubelet: Kubelet
) -> None:
    clock = ManualClock()
    handle = k8s_flows.nap.start()
    wait_until(lambda: status_of(handle.exec_id) == "sleeping", what="the first Job to sleep")
    wait_until(lambda: not kubelet.running, what="its pod to exit")
    with use_clock(clock):
        worker = Worker(log=lambda line: None, clock=clock)
        worker.run_once()
        assert len(k8s_stack.jobs()) == 1  # not due yet
        # Due by the pod's own clock: it recorded its timer a pod start after `clock` began.
        clock.set(KitaruClient().executions.get(handle.exec_id).wake_at + 1)
        worker = Worker(log=lambda line: None, clock=clock)
        worker.run_once()
    assert worker.counts["timers"] == 1
    wait_until(lambda: status_of(handle.exec_id) == "completed", what="the second Job")
    assert len(k8s_stack.jobs()) == 2
    assert KitaruClient().executions.get(handle.exec_id).result == "rested"


def test_twenty_executions_run_as_twenty_jobs_and_a_repeated_resume_starts_no_second(
    k8s_stack: Cluster, kubelet: Kubelet, counter: Path
) -> None:
    handles = [k8s_flows.three.start(i) for i in range(20)]
    for handle in handles:
        wait_until(
            lambda h=handle: status_of(h.exec_id) == "completed", timeout=180, what=handle.exec_id
        )
    assert len(k8s_stack.jobs()) == 20
    assert sorted(KitaruClient().executions.get(h.exec_id).result for h in handles) == [
        5 + i for i in range(20)
    ]
    assert sorted(bodies_run(counter)) == sorted(["step0", "step1", "step2"] * 20)  # once each

    waiting = k8s_flows.approval.start()
    wait_until(lambda: status_of(waiting.exec_id) == "waiting", what="the wait")
    orchestrator = get_stack().orchestrator
    before = len(k8s_stack.jobs())
    orchestrator.resume(waiting.exec_id, background=True)
    orchestrator.resume(waiting.exec_id, background=True)  # the same request again: a 409
    assert len(k8s_stack.jobs()) == before + 1


def test_flow_settings_ask_for_a_gpu_node(k8s_stack: Cluster, kubelet: Kubelet) -> None:
    handle = k8s_flows.on_gpu.start()
    wait_until(lambda: status_of(handle.exec_id) == "completed", what="the GPU flow")
    [job] = k8s_stack.job_bodies()
    validate(job)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["containers"][0]["resources"]["limits"] == {"memory": "1Gi", "nvidia.com/gpu": "1"}


def test_cancel_deletes_the_running_job(k8s_stack: Cluster, kubelet: Kubelet) -> None:
    kubelet.unpullable.add("kitaru-test:1")  # it stays pending
    handle = k8s_flows.three.start(1)
    wait_until(lambda: len(k8s_stack.pods()) == 1, what="the pod")
    KitaruClient().executions.cancel(handle.exec_id)
    assert status_of(handle.exec_id) == "cancelled"
    deletes = [r for r in list(k8s_stack.emulator._requests) if str(r.method).endswith("DELETE")]
    assert len(deletes) == 1 and deletes[0].params.get("propagationPolicy") in (None, "Foreground")
    assert (
        json.loads(deletes[0].text or "{}").get("propagationPolicy", "Foreground") == "Foreground"
    )


def test_register_refuses_a_stack_pods_cannot_reach(
    cluster: Cluster, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "local-disk.yaml"
    path.write_text(
        f"""
name: half-local
orchestrator:
  flavor: kubernetes
  kubeconfig: {cluster.kubeconfig}
  image: x:1
  database_url_secret: {{name: db, key: url}}
"""
    )
    with pytest.raises(KitaruStackError) as refused:
        register_stack(path)
    message = str(refused.value)
    assert "cannot see this machine's disk" in message
    assert "artifact store is left out" in message and "secret provider is left out" in message
    monkeypatch.delenv("KITARU_DATABASE_URL")
    from kitaru.testing import reset_caches

    reset_caches()
    with pytest.raises(KitaruStackError, match="SQLite on this machine"):
        register_stack(path)


def kitaru(*args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "kitaru", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def _validate(
    cluster: Cluster,
    tmp_path: Path,
    bucket: str,
    moto_url: str,
    allowed: bool,
    namespace: str = NAMESPACE,
) -> subprocess.CompletedProcess[str]:
    """``kitaru stack validate`` against an API server that answers the access review
    with ``allowed`` (kmock keeps each posted review, so one per cluster)."""
    path = tmp_path / "k8s.yaml"
    path.write_text(
        stack_yaml(cluster, bucket, moto_url).replace(
            f"namespace: {NAMESPACE}", f"namespace: {namespace}"
        )
    )
    cluster.emulator["post /apis/authorization.k8s.io/v1/selfsubjectaccessreviews"] << {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {},
        "status": {"allowed": allowed},
    }
    return kitaru("stack", "validate", str(path))


def test_stack_validate_passes_when_the_credentials_may_create_jobs(
    cluster: Cluster, database_url: str, bucket: str, moto: object, tmp_path: Path
) -> None:
    checked = _validate(cluster, tmp_path, bucket, moto.url, allowed=True)  # type: ignore[attr-defined]
    assert checked.returncode == 0, checked.stderr


def test_stack_validate_refuses_credentials_that_may_not_create_jobs(
    cluster: Cluster, database_url: str, bucket: str, moto: object, tmp_path: Path
) -> None:
    refused = _validate(cluster, tmp_path, bucket, moto.url, allowed=False)  # type: ignore[attr-defined]
    assert refused.returncode == 1 and "may not create Jobs" in refused.stderr
    assert "kitaru kubernetes manifests" in refused.stderr


def test_stack_validate_refuses_a_missing_namespace(
    cluster: Cluster, database_url: str, bucket: str, moto: object, tmp_path: Path
) -> None:
    missing = _validate(cluster, tmp_path, bucket, moto.url, allowed=True, namespace="missing")  # type: ignore[attr-defined]
    assert missing.returncode == 1 and "namespace 'missing' does not exist" in missing.stderr


def _manifests(*args: str) -> list[dict[str, Any]]:
    printed = kitaru("kubernetes", "manifests", *args)
    assert printed.returncode == 0, printed.stderr
    assert "&id" not in printed.stdout and "*id" not in printed.stdout  # no YAML aliases
    return list(yaml.safe_load_all(printed.stdout))


def _pod_specs(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec") or {}
    if document["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if document["kind"] in ("Deployment", "Job"):
        return [spec["template"]["spec"]]
    return []


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--cronjob", "--schedule", "*/5 * * * *"],
        ["--server", "--ingress-host", "kitaru.example.com", "--flows", "k8s_flows"],
    ],
)
def test_manifests_pass_strict_validation_and_a_restricted_namespace(
    k8s_stack: Cluster, extra: list[str]
) -> None:
    documents = _manifests("--stack", "k8s-test", *extra)
    for document in documents:
        validate(document)
        for pod in _pod_specs(document):
            assert restricted_violations(pod) == [], document["metadata"]["name"]
            assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        assert document["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kitaru"
        assert "postgresql://" not in json.dumps(document)  # the URL stays in its Secret
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert ("ServiceAccount", "kitaru-worker") in kinds and (
        "ServiceAccount",
        "kitaru-run",
    ) in kinds
    if "--cronjob" in extra:
        [cron] = [d for d in documents if d["kind"] == "CronJob"]
        assert cron["spec"]["startingDeadlineSeconds"] > 0
        assert cron["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
        return
    worker = next(d for d in documents if d["kind"] == "Deployment")
    probe = worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert probe["exec"]["command"][0] == "python"
    assert ("PodDisruptionBudget", "kitaru-worker") in kinds
    if "--server" in extra:
        assert {("Deployment", "kitaru-server"), ("Service", "kitaru-server")} <= kinds
        assert ("Ingress", "kitaru-server") in kinds and (
            "PodDisruptionBudget",
            "kitaru-server",
        ) in kinds
        server = next(d for d in documents if d["metadata"]["name"] == "kitaru-server")
        container = server["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        assert (
            container["command"][:2] == ["kitaru", "serve"] and "k8s_flows" in container["command"]
        )
        ingress = next(d for d in documents if d["kind"] == "Ingress")
        assert ingress["spec"]["rules"][0]["host"] == "kitaru.example.com"


def test_runs_may_read_only_the_secrets_they_need_and_the_worker_no_more_than_it_uses(
    k8s_stack: Cluster, bucket: str, moto: Moto, tmp_path: Path
) -> None:
    from kitaru_kubernetes.secrets import KubernetesSecretProvider

    documents = _manifests("--stack", "k8s-test")
    roles = {d["metadata"]["name"]: d["rules"] for d in documents if d["kind"] == "Role"}
    accounts = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ServiceAccount"}
    provider = get_stack().secret_provider
    assert isinstance(provider, KubernetesSecretProvider)
    signing_key = provider.secret_object_name("kitaru_signing_key")
    # The runs: a token (they read kubernetes-secrets), and only `get` of named Secrets.
    assert accounts["kitaru-run"]["automountServiceAccountToken"] is True
    assert roles["kitaru-run"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [signing_key],
            "verbs": ["get"],
        }
    ]
    # The worker: Jobs and what tells why a pod died; Secrets by name (create: the
    # signing key the first time, which cannot be limited to a name).
    worker = roles["kitaru-worker"]
    verbs = {
        tuple(rule["resources"]): set(rule["verbs"])
        for rule in worker
        if "resourceNames" not in rule
    }
    assert verbs[("jobs",)] == {"create", "get", "list", "delete"}
    assert verbs[("secrets",)] == {"create"}
    assert all("watch" not in rule["verbs"] and "update" not in rule["verbs"] for rule in worker)
    named = [rule for rule in worker if "resourceNames" in rule]
    assert named == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [signing_key],
            "verbs": ["get", "patch"],
        }
    ]

    # A stack whose secrets live in a cloud secret manager: no pod gets any right on
    # Secrets, the runs get no token at all, and the cloud identity is on both accounts.
    cloud = tmp_path / "cloud.yaml"
    cloud.write_text(
        stack_yaml(
            k8s_stack,
            bucket,
            moto.url,
            extra="  workload_identity: {aws_role_arn: 'arn:aws:iam::123456789012:role/agents'}",
        )
        .replace("name: k8s-test", "name: k8s-cloud")
        .replace(
            f"secret_provider:\n  flavor: kubernetes-secrets\n  kubeconfig: {k8s_stack.kubeconfig}\n"
            f"  namespace: {NAMESPACE}",
            "secret_provider:\n  flavor: aws-secrets-manager\n  region: us-east-1",
        )
    )
    register_stack(cloud)
    documents = _manifests("--stack", "k8s-cloud")
    text = json.dumps(documents)
    assert '"secrets"' not in text
    accounts = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ServiceAccount"}
    assert accounts["kitaru-run"]["automountServiceAccountToken"] is False
    for account in accounts.values():
        assert account["metadata"]["annotations"] == {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agents"
        }
    assert "kitaru-run" not in {d["metadata"]["name"] for d in documents if d["kind"] == "Role"}


def test_the_worker_liveness_probe_tells_a_live_worker_from_a_stuck_one(
    k8s_stack: Cluster, tmp_path: Path
) -> None:
    import os
    import signal

    from kitaru_kubernetes import manifests

    alive = tmp_path / "worker-alive"
    worker = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "worker", "--heartbeat-file", str(alive), "--poll", "0.2"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(alive.exists, what="the heartbeat file")
        [deployment] = [d for d in _manifests("--stack", "k8s-test") if d["kind"] == "Deployment"]
        probe = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
        command = [sys.executable, *probe["exec"]["command"][1:]]
        command[-1] = command[-1].replace(manifests.HEARTBEAT_FILE, str(alive))
        assert subprocess.run(command, timeout=30).returncode == 0  # touched just now
        worker.send_signal(signal.SIGSTOP)  # stuck
        stale = time.time() - manifests.HEARTBEAT_STALE_SECONDS - 5
        os.utime(alive, (stale, stale))
        assert subprocess.run(command, timeout=30).returncode == 1
        worker.send_signal(signal.SIGCONT)
        wait_until(lambda: alive.stat().st_mtime > stale + 60, what="a fresh heartbeat")
        began = time.monotonic()
        worker.terminate()  # what the kubelet sends first
        worker.wait(timeout=manifests.WORKER_GRACE_SECONDS)
        assert time.monotonic() - began < 10  # well within terminationGracePeriodSeconds
    finally:
        worker.kill()
        worker.wait()


def test_register_refuses_what_kubernetes_would_refuse_or_drop(
    k8s_stack: Cluster, bucket: str, moto: Moto, tmp_path: Path
) -> None:
    good = stack_yaml(k8s_stack, bucket, moto.url)
    for broken, said in [
        (
            good.replace("limits: {memory: 1Gi}", "limts: {memory: 1Gi}"),
            "field 'resources.limts': Extra inputs are not permitted",
        ),
        (good.replace("cpu: 250m", "cpu: lots"), "cpu: 'lots' is not a Kubernetes quantity"),
        (
            good.replace(
                "  flows:",
                "  pod_template: {containers: [{name: kitaru, securityContex: {}}]}\n  flows:",
            ),
            "pod_template.containers[0].securityContex is not a Kubernetes field (did you mean "
            "'securityContext'?)",
        ),
        (
            good.replace("  flows:", "  labels: {app.kubernetes.io/managed-by: me}\n  flows:"),
            "label 'app.kubernetes.io/managed-by' is set by Kitaru",
        ),
    ]:
        path = tmp_path / "broken.yaml"
        path.write_text(broken.replace("name: k8s-test", "name: k8s-broken"))
        refused = kitaru("stack", "register", str(path))
        assert refused.returncode == 1 and said in refused.stderr, refused.stderr
        assert "orchestrator (kubernetes)" in refused.stderr
    assert "k8s-broken" not in kitaru("stack", "list").stdout  # nothing registered
    bad_cron = kitaru("kubernetes", "manifests", "--cronjob", "--schedule", "every minute")
    assert bad_cron.returncode == 1 and "is not a cron schedule" in bad_cron.stderr


def test_a_pod_template_patches_the_pod_as_kubectl_patch_would() -> None:
    from kitaru.plugin import ExecutionView
    from kitaru_kubernetes.config import KubernetesOrchestratorConfig
    from kitaru_kubernetes.jobs import job_manifest

    config = KubernetesOrchestratorConfig(
        image="agents:1",
        database_url_secret={"name": "kitaru-db", "key": "url"},
        pod_template={
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
            "containers": [
                {"name": "kitaru", "volumeMounts": [{"name": "models", "mountPath": "/models"}]},
                {"name": "proxy", "image": "proxy:1"},
            ],
        },
        flows={
            "writer": {
                "pod_template": {
                    "containers": [
                        {"name": "kitaru", "securityContext": {"readOnlyRootFilesystem": False}},
                        {"name": "proxy", "$patch": "delete"},
                    ]
                }
            }
        },
    )
    view = ExecutionView("e1", "writer", "k8s", "running", 0, None, None, None)
    job = job_manifest(config, view, ["python", "-m", "x"], store_id="s", api_access=False)
    validate(job)
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]  # the flow's patch took the stack's sidecar out
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp", "/models"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "models"]
    assert restricted_violations(pod) == []
    other = job_manifest(
        config,
        ExecutionView("e2", "reader", "k8s", "running", 0, None, None, None),
        ["python"],
        store_id="s",
        api_access=False,
    )
    assert [c["name"] for c in other["spec"]["template"]["spec"]["containers"]] == [
        "kitaru",
        "proxy",
    ]


def test_plugins_list_does_not_import_the_kubernetes_client() -> None:
    from kitaru.testing import listed_without_sdk

    listed_without_sdk(
        "kubernetes",
        ["secret_provider:kubernetes-secrets", "orchestrator:kubernetes"],
        ("kubernetes",),
    )


class TestKubernetesOrchestratorContract(OrchestratorContract):
    """The contract every orchestrator passes, with each run a Job the kubelet runs."""

    @pytest.fixture
    def orchestrator(self, k8s_stack: Cluster) -> Orchestrator:
        return get_stack().orchestrator


@pytest.mark.parametrize(
    "exec_id",
    ["order-42", "nightly@2026-12-01T08:00:00Z", "A" * 128, "x.y_z:1@2-3", "--"],
)
def test_job_names_are_dns_labels_fixed_per_run(exec_id: str) -> None:
    from kitaru.plugin import ExecutionView
    from kitaru_kubernetes.jobs import job_name
    from kitaru_kubernetes.names import check_dns_label

    view = ExecutionView(exec_id, "f", "s", "running", 0, None, None, None)
    name = job_name(view)
    assert check_dns_label(name, "job name") == name and len(name) <= 52
    assert job_name(view) == name  # the same run, the same Job
    later = ExecutionView(exec_id, "f", "s", "waiting", 1, None, None, None)
    assert job_name(later) != name


# -- an API server that hangs, throttles or fails -------------------------------------------


def _unwell(tmp_path: Path, mode: str, times: int = 0) -> tuple[UnwellApiServer, Orchestrator]:
    from kitaru_kubernetes.config import KubernetesOrchestratorConfig
    from kitaru_kubernetes.orchestrator import KubernetesOrchestrator

    server = UnwellApiServer(tmp_path, mode, times)
    config = KubernetesOrchestratorConfig(
        kubeconfig=str(server.kubeconfig),
        namespace=NAMESPACE,
        image="kitaru-test:1",
        database_url_secret={"name": "kitaru-db", "key": "url"},
    )
    return server, KubernetesOrchestrator(config)


def test_an_api_server_that_never_answers_fails_a_call_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "READ_SECONDS", 1.0)
    server, orchestrator = _unwell(tmp_path, "hang")
    try:
        began = time.monotonic()
        with pytest.raises(KitaruBackendError, match="did not answer within 1 s"):
            orchestrator.diagnose("some-execution")
        assert time.monotonic() - began < 10  # not forever; a hang is not tried again
        assert server.requests == 1
    finally:
        server.close()


def test_a_throttling_api_server_is_asked_again_after_retry_after(tmp_path: Path) -> None:
    server, orchestrator = _unwell(tmp_path, "429", times=2)
    try:
        assert orchestrator.diagnose("some-execution") is None  # no Job: nothing to say
        assert server.requests == 3
    finally:
        server.close()


def test_a_failing_api_server_is_tried_again_and_its_own_words_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "_backoff", lambda seconds: None)  # the wait, not the test
    server, orchestrator = _unwell(tmp_path, "500")
    try:
        with pytest.raises(KitaruBackendError) as raised:
            orchestrator.diagnose("some-execution")
        assert "etcdserver: request timed out" in str(raised.value)
        assert "HTTP 500, tried 4 times" in str(raised.value)
        assert server.requests == 4
    finally:
        server.close()


def test_a_job_the_cluster_refuses_to_create_is_logged_and_the_caller_told_what_happens(
    k8s_stack: Cluster,
    kubelet: Kubelet,
    bucket: str,
    moto: Moto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api, "_backoff", lambda seconds: None)  # the retries' wait
    unwell = UnwellApiServer(tmp_path, "500")
    try:
        broken = tmp_path / "broken.yaml"
        # Only the orchestrator's API server fails (the secret provider answers).
        broken.write_text(
            stack_yaml(k8s_stack, bucket, moto.url, orchestrator_kubeconfig=unwell.kubeconfig)
        )
        register_stack(broken, activate=True)
        with pytest.raises(KitaruDispatchError) as raised:
            k8s_flows.three.start(1)
    finally:
        unwell.close()
    refused = raised.value
    assert not refused.will_run  # no worker runs: the message says what to do
    assert "etcdserver: request timed out" in str(refused)
    assert "no `kitaru worker` runs stack 'k8s-test'" in str(refused)
    assert status_of(refused.exec_id) == "running"
    assert "could not be handed to its orchestrator" in KitaruClient().executions.logs(
        refused.exec_id
    )
    assert len(KitaruClient().executions.list()) == 1
    assert k8s_stack.jobs() == []

    # The cluster answers again: a worker hands the execution over once, and it runs.
    register_stack(tmp_path / "k8s.yaml", activate=True)
    worker = Worker(log=lambda line: None, orphan_seconds=0.2)
    time.sleep(0.3)  # past orphan_seconds
    worker.run_once()
    assert worker.counts["recovered"] == 1
    wait_until(lambda: status_of(refused.exec_id) == "completed", what="the handed-over run")
    assert len(k8s_stack.jobs()) == 1


@pytest.mark.parametrize(
    ("identity", "annotation", "pod_label"),
    [
        ({"aws_role_arn": "arn:aws:iam::1:role/a"}, "eks.amazonaws.com/role-arn", None),
        (
            {"gcp_service_account": "a@p.iam.gserviceaccount.com"},
            "iam.gke.io/gcp-service-account",
            None,
        ),
        (
            {"azure_client_id": "0000-1111"},
            "azure.workload.identity/client-id",
            "azure.workload.identity/use",
        ),
    ],
)
def test_workload_identity_is_written_as_each_cloud_reads_it(
    identity: dict[str, str], annotation: str, pod_label: str | None
) -> None:
    from kitaru.plugin import ExecutionView
    from kitaru_kubernetes.config import KubernetesOrchestratorConfig
    from kitaru_kubernetes.jobs import job_manifest
    from kitaru_kubernetes.manifests import Deployment, manifests

    config = KubernetesOrchestratorConfig(
        image="agents:1",
        database_url_secret={"name": "kitaru-db", "key": "url"},
        workload_identity=identity,
    )
    documents = manifests(config, Deployment(stack="k8s"))
    for account in (d for d in documents if d["kind"] == "ServiceAccount"):
        assert account["metadata"]["annotations"] == {annotation: next(iter(identity.values()))}
    view = ExecutionView("e1", "f", "k8s", "running", 0, None, None, None)
    job = job_manifest(config, view, ["python"], store_id="s", api_access=False)
    worker = next(d for d in documents if d["kind"] == "Deployment")
    for labels in (
        job["spec"]["template"]["metadata"]["labels"],
        worker["spec"]["template"]["metadata"]["labels"],
    ):
        assert (
            (labels.get(pod_label) == "true")
            if pod_label
            else "azure.workload.identity/use" not in labels
        )
    with pytest.raises(ValueError, match="exactly one of"):
        KubernetesOrchestratorConfig(
            image="agents:1",
            database_url_secret={"name": "kitaru-db", "key": "url"},
            workload_identity={**identity, "azure_client_id": "x", "aws_role_arn": "y"},
        )


def test_jobs_and_the_worker_record_through_the_server_without_the_database(
    cluster: Cluster,
    kubelet: Kubelet,
    database_url: str,
    bucket: str,
    moto: Moto,
    tmp_path: Path,
) -> None:
    """With the stack's server_url, a run's pod gets the server's URL and a token from
    a Secret, never the database's URL, and records its steps through the server."""
    import os
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server_env = {**os.environ, "KITARU_HOME": str(tmp_path / "server-home")}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "kitaru",
            "tokens",
            "create",
            "pods",
            "--scope",
            "run",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        env=server_env,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    server = subprocess.Popen(
        [sys.executable, "-m", "kitaru", "serve", "--port", str(port), "--no-worker"],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, what="kitaru serve")
        cluster.secret("kitaru-token", json.loads(made.stdout)["token"], key="token")
        extra = f"  server_url: {url}\n  server_token_secret: {{name: kitaru-token, key: token}}"
        register_k8s_stack(
            cluster, database_url, stack_yaml(cluster, bucket, moto.url, extra=extra), tmp_path
        )
        handle = k8s_flows.three.start(4)
        wait_until(lambda: status_of(handle.exec_id) == "completed", what="the run")
        assert KitaruClient().executions.get(handle.exec_id).result == 9
        (job,) = cluster.job_bodies()
        env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "KITARU_DATABASE_URL" not in env
        assert env["KITARU_SERVER_URL"]["value"] == url
        assert env["KITARU_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "kitaru-token"
        # The manifests: the worker reads the token, the server's pod alone the database.
        shown = kitaru("kubernetes", "manifests", "--server")
        assert shown.returncode == 0, shown.stderr
        deployments = {
            d["metadata"]["name"]: d
            for d in yaml.safe_load_all(shown.stdout)
            if d and d["kind"] == "Deployment"
        }

        def env_names(name: str) -> set[str]:
            container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
            return {e["name"] for e in container["env"]}

        assert {"KITARU_SERVER_URL", "KITARU_TOKEN"} <= env_names("kitaru-worker")
        assert "KITARU_DATABASE_URL" not in env_names("kitaru-worker")
        assert "KITARU_DATABASE_URL" in env_names("kitaru-server")
    finally:
        server.terminate()
        server.wait(timeout=30)
