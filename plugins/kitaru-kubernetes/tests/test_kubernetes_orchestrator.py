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
from conftest import MOCK, ROOT, Moto, stack_yaml
from k8s_cluster import NAMESPACE, Cluster, Kubelet, UnwellApiServer, validate, wait_until
from kitaru import KitaruClient, KitaruDispatchError
from kitaru.plugin import KitaruBackendError, KitaruStackError, Orchestrator, get_stack
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
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["KITARU_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "kitaru-db",
            "key": "url",
        }
        assert pod["nodeSelector"] == {"pool": "general"}  # the stack's flows.review
        assert pod["containers"][0]["resources"]["limits"] == {"memory": "1Gi"}
        assert job["spec"]["backoffLimit"] == 0
    # The runner prints its last line after the execution is recorded completed.
    wait_until(
        lambda: [p.status.phase for p in k8s_stack.pods()] == ["Succeeded"] * 2,
        what="the second pod to end with its log",
    )
    logs = KitaruClient().executions.logs(handle.exec_id)
    assert logs.count("--- pod ") == 2 and "is completed" in logs
    # The last line of each pod's log (this machine's log is empty: the runs were pods).
    tail = KitaruClient().executions.logs(handle.exec_id, tail=1).split("--- pod ")
    assert [len(part.splitlines()) for part in tail] == [0, 2, 2]
    assert tail[2].splitlines()[1] == logs.splitlines()[-1]
    # A pod's log is read up to a bound, and the user is told where the rest is.
    monkeypatch.setattr(orchestrator, "POD_LOG_BYTES", 40)
    cut = KitaruClient().executions.logs(handle.exec_id)
    assert cut.count("(cut after 40 bytes: `kubectl logs -n ") == 2


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

    kubelet.unpullable.clear()  # the image was pushed
    KitaruClient().executions.retry(handle.exec_id)
    assert status_of(handle.exec_id) == "completed"
    assert KitaruClient().executions.get(handle.exec_id).result == 6
    names = [j["metadata"]["name"] for j in k8s_stack.job_bodies()]
    assert len(names) == 2 and len(set(names)) == 2


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


def test_manifests_for_the_worker_pass_strict_validation(k8s_stack: Cluster) -> None:
    for extra in ([], ["--cronjob", "--schedule", "*/5 * * * *"]):
        printed = kitaru("kubernetes", "manifests", "--stack", "k8s-test", *extra)
        assert printed.returncode == 0, printed.stderr
        documents = list(yaml.safe_load_all(printed.stdout))
        kinds = [d["kind"] for d in documents]
        assert kinds == [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "CronJob" if extra else "Deployment",
        ]
        for document in documents:
            validate(document)
        role = documents[1]
        assert {"jobs"} in [set(rule["resources"]) for rule in role["rules"]]
        assert {"pods/log"} in [set(rule["resources"]) for rule in role["rules"]]
        runner = documents[3]
        text = json.dumps(runner)
        assert "kitaru-db" in text and "postgresql://" not in text


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
        good = stack_yaml(k8s_stack, bucket, moto.url)
        where = f"kubeconfig: {k8s_stack.kubeconfig}"
        at = good.rindex(where)
        broken.write_text(good[:at] + f"kubeconfig: {unwell.kubeconfig}" + good[at + len(where) :])
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
