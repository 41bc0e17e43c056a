"""A Kubernetes API for the tests: kmock's emulator on 127.0.0.1, a kubeconfig that
points the official client at it, strict offline validation of every manifest, and a
kubelet: it runs each new Job's pod as a local process with the pod's environment
(Secrets resolved through the API) and reports back by patching pod and Job status."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"
NAMESPACE = "agents"


def validate(manifest: dict[str, Any]) -> None:
    """Refuse what a real API server of a recent version would (unknown fields too)."""
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig whose one context points the official client at ``server``."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": server}}],
                "users": [{"name": "test", "user": {"token": "test-token"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "current-context": "test",
            }
        )
    )
    return path


class Cluster:
    """kmock's KubernetesEmulator served in a thread of its own."""

    def __init__(self, tmp_path: Path) -> None:
        import kmock

        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

        async def serve() -> None:
            async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
                self.emulator = emulator
                self.url = str(server.url).rstrip("/")
                self._stop = asyncio.Event()
                self._loop = asyncio.get_running_loop()
                self._ready.set()
                await self._stop.wait()

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the kmock emulator did not start")
        self.kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", self.url)
        # A real server lists a known resource with no objects as an empty list.
        for resource in ("v1/pods", "v1/secrets", "v1/events", "batch/v1/jobs"):
            self.emulator.resources[resource] = {}
        # kmock stores no Namespaces (its path parser takes /namespaces/NAME for a
        # namespaced request): answer for the one namespace that exists, as a server would.
        self.emulator[f"get /api/v1/namespaces/{NAMESPACE}"] << {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE},
            "status": {"phase": "Active"},
        }

    @property
    def api(self) -> Any:
        from kubernetes import client

        configuration = client.Configuration(host=self.url)
        return client.ApiClient(configuration)

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @property
    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api)

    def jobs(self) -> list[Any]:
        return self.batch.list_namespaced_job(NAMESPACE).items

    def pods(self) -> list[Any]:
        return self.core.list_namespaced_pod(NAMESPACE).items

    def job_bodies(self) -> list[dict[str, Any]]:
        """Every Job as the orchestrator sent it (from the emulator's request log)."""
        return [
            dict(request.data)
            for request in list(self.emulator._requests)  # kmock's request log
            if str(request.method).endswith("POST") and str(request.url.path).endswith("/jobs")
        ]

    def secret(self, name: str, value: str, key: str = "value") -> None:
        self.core.create_namespaced_secret(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "data": {key: base64.b64encode(value.encode()).decode()},
            },
        )

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class Kubelet:
    """Plays the Job controller and the kubelet for the emulator (which runs neither)."""

    def __init__(self, cluster: Cluster, home: Path, env: dict[str, str]) -> None:
        self.cluster = cluster
        self.home = home
        self.env = env
        self.unpullable: set[str] = set()
        self.dies: dict[str, str] = {}
        """image -> how its pods die before running anything: OOMKilled, Evicted or
        DeadlineExceeded (what a node or the Job controller would report)."""
        self.interrupt: dict[str, tuple[str, Callable[[], bool]]] = {}
        """image -> (how, when): the next pod of that image runs until ``when()`` is
        true, then its process is SIGKILLed and the pod reported as a cluster would
        after ``how``: Evicted (node pressure), Preempted (a higher-priority pod), or
        Deleted (a lost node's pod garbage-collected). Terminated is a graceful delete
        (``kubectl delete pod``, a drain): SIGTERM, SIGKILL after the pod's grace period
        (``terminationGracePeriodSeconds``, 30 s by default), then the pod is gone."""
        self.gpus_per_node = 1
        """A pod asking for more GPUs than a node has stays Pending, unschedulable."""
        self.refused: dict[str, list[str]] = {}
        """Job -> why Pod Security admission refused its pod (the Job controller then
        creates none, and says so in a FailedCreate event)."""
        self.stopped_in: dict[str, float] = {}
        """pod -> seconds from its SIGTERM to its exit."""
        self.started: list[str] = []
        self.running: set[str] = set()
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        self._watcher.join(10)
        for thread in self._threads:
            thread.join(60)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self.cluster.jobs()
            except Exception:
                jobs = []
            for job in jobs:
                name = job.metadata.name
                if name not in self._seen and not job.metadata.deletion_timestamp:
                    self._seen.add(name)
                    self._stamp(job)
                    thread = threading.Thread(target=self._run_job, args=(job,), daemon=True)
                    self._threads.append(thread)
                    thread.start()
            self._stop.wait(0.05)

    def _stamp(self, job: Any) -> None:
        """What a real API server sets on every object it creates, and kmock does not:
        ``creationTimestamp`` (Kitaru measures a pending run's age by it)."""
        if job.metadata.creation_timestamp is None:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.cluster.batch.patch_namespaced_job(
                job.metadata.name, NAMESPACE, {"metadata": {"creationTimestamp": now}}
            )
            job.metadata.creation_timestamp = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def _die(self, job: Any, pod_name: str, container: Any, kind: str) -> None:
        pod_status, job_status = _die_status(kind, container)
        self.cluster.core.patch_namespaced_pod_status(pod_name, NAMESPACE, {"status": pod_status})
        if job_status is not None:  # the Job controller's own deadline
            self.cluster.batch.patch_namespaced_job_status(
                job.metadata.name, NAMESPACE, {"status": job_status}
            )
        else:
            self._pod_failed(job)

    def _pod_failed(self, job: Any) -> None:
        """The Job controller on a failed pod: past ``backoffLimit`` failures (with
        Kitaru's 0, the first) the Job is ``Failed`` with ``BackoffLimitExceeded``,
        whatever the pod died of."""
        self.cluster.batch.patch_namespaced_job_status(
            job.metadata.name,
            NAMESPACE,
            {
                "status": {
                    "failed": 1,
                    "conditions": [
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                        }
                    ],
                }
            },
        )

    def _run_job(self, job: Any) -> None:
        try:
            violations = restricted_violations(_plain(job.spec.template.spec))
            if violations:  # the namespace enforces the restricted level
                self._refuse(job, violations)
                return
            self._run_pod(job)
            self._expire(job)
        except Exception as exc:
            # The Job or its pod was deleted meanwhile (a cancel): a real kubelet stops too.
            if getattr(exc, "status", None) != 404:
                raise

    def _refuse(self, job: Any, violations: list[str]) -> None:
        """What the Job controller does when admission forbids its pod: no pod, a
        Warning event on the Job, and it keeps trying (the Job stays active)."""
        name = job.metadata.name
        self.refused[name] = violations
        message = (
            f'pods "{name}-x" is forbidden: violates PodSecurity "restricted:latest": '
            + "; ".join(violations)
        )
        self.cluster.core.create_namespaced_event(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.{uuid.uuid4().hex[:8]}"},
                "involvedObject": {"kind": "Job", "name": name, "namespace": NAMESPACE},
                "reason": "FailedCreate",
                "message": f"Error creating: {message}",
                "type": "Warning",
            },
        )

    def _expire(self, job: Any) -> None:
        """The TTL-after-finished controller: a finished Job and its pods are deleted
        ``ttlSecondsAfterFinished`` after it finished."""
        ttl = job.spec.ttl_seconds_after_finished
        if ttl is None or self._stop.wait(ttl):
            return
        name = job.metadata.name
        for pod in self.cluster.pods():
            if (pod.metadata.labels or {}).get("job-name") == name:
                self.cluster.core.delete_namespaced_pod(pod.metadata.name, NAMESPACE)
        self.cluster.batch.delete_namespaced_job(name, NAMESPACE)

    def _run_pod(self, job: Any) -> None:
        name = job.metadata.name
        template = job.spec.template
        container = template.spec.containers[0]
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        labels = {**(template.metadata.labels or {}), "job-name": name}
        core, batch = self.cluster.core, self.cluster.batch
        core.create_namespaced_pod(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod_name, "labels": labels},
                "spec": {"containers": [{"name": container.name, "image": container.image}]},
                "status": {"phase": "Pending"},
            },
        )
        if container.image in self.unpullable:
            core.patch_namespaced_pod_status(
                pod_name,
                NAMESPACE,
                {
                    "status": {
                        "phase": "Pending",
                        "containerStatuses": [
                            _container_status(
                                container,
                                waiting={
                                    "reason": "ImagePullBackOff",
                                    "message": f'Back-off pulling image "{container.image}"',
                                },
                            )
                        ],
                    }
                },
            )
            return
        gpus = ((container.resources.limits if container.resources else None) or {}).get(
            "nvidia.com/gpu", "0"
        )
        if int(gpus) > self.gpus_per_node:
            core.patch_namespaced_pod_status(
                pod_name,
                NAMESPACE,
                {
                    "status": {
                        "phase": "Pending",
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": "0/3 nodes are available: 3 Insufficient "
                                "nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No "
                                "preemption victims found for incoming pod.",
                            }
                        ],
                    }
                },
            )
            return
        if container.image in self.dies:
            self._die(job, pod_name, container, self.dies[container.image])
            return
        # Each pod has its own disk: its emptyDir volumes are directories of its own,
        # and what the pod's environment says of their mount paths points there.
        scratch = {
            mount.mount_path: self.home / pod_name / mount.name
            for mount in container.volume_mounts or []
        }
        for local in scratch.values():
            local.mkdir(parents=True, exist_ok=True)
        own: dict[str, str] = {}
        for item in container.env or []:
            if item.value_from is not None:
                ref = item.value_from.secret_key_ref
                secret = core.read_namespaced_secret(ref.name, NAMESPACE)
                own[item.name] = base64.b64decode(secret.data[ref.key]).decode()
            else:
                value = item.value or ""
                for path, local in scratch.items():
                    if value == path or value.startswith(path + "/"):
                        value = str(local) + value[len(path) :]
                own[item.name] = value
        env = {**self.env, **own}
        env.setdefault("KITARU_HOME", str(self.home / pod_name / "home"))
        command = [
            sys.executable if container.command[0] == "python" else container.command[0],
            *container.command[1:],
        ]
        core.patch_namespaced_pod_status(pod_name, NAMESPACE, {"status": {"phase": "Running"}})
        self.started.append(name)
        self.running.add(pod_name)
        interrupt = self.interrupt.pop(container.image, None)
        log_path = self.home / f"{pod_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w+") as log:
            proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            interrupted = False
            if interrupt is not None:
                how, when = interrupt
                grace = template.spec.termination_grace_period_seconds or 30
                took = _stop_when(proc, when, grace if how == "Terminated" else None)
                interrupted = took is not None
                if took is not None and how == "Terminated":
                    self.stopped_in[pod_name] = took
            proc.wait(timeout=300)
            log.seek(0)
            output = log.read()
        self.running.discard(pod_name)
        # What `kubectl logs` would show (kmock keeps no logs: answer for this pod).
        self.cluster.emulator[f"get /api/v1/namespaces/{NAMESPACE}/pods/{pod_name}/log"] << (
            _pod_log(output)
        )
        if interrupted:
            assert interrupt is not None
            self._interrupted(job, pod_name, interrupt[0])
            return
        phase = "Succeeded" if proc.returncode == 0 else "Failed"
        core.patch_namespaced_pod_status(
            pod_name,
            NAMESPACE,
            {
                "status": {
                    "phase": phase,
                    "containerStatuses": [
                        _container_status(
                            container,
                            terminated={
                                "exitCode": proc.returncode,
                                "reason": "Completed" if proc.returncode == 0 else "Error",
                            },
                        )
                    ],
                }
            },
        )
        if proc.returncode != 0:
            self._pod_failed(job)
            return
        batch.patch_namespaced_job_status(
            name,
            NAMESPACE,
            {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}},
        )

    def _interrupted(self, job: Any, pod_name: str, how: str) -> None:
        """The pod's process was killed: report the pod as the cluster would."""
        core = self.cluster.core
        if how in ("Deleted", "Terminated"):
            core.delete_namespaced_pod(pod_name, NAMESPACE)
        elif how == "Evicted":
            core.patch_namespaced_pod_status(
                pod_name,
                NAMESPACE,
                {
                    "status": {
                        "phase": "Failed",
                        "reason": "Evicted",
                        "message": "The node was low on resource: memory.",
                        "conditions": [_disruption("TerminationByKubelet")],
                    }
                },
            )
        elif how == "Preempted":
            core.patch_namespaced_pod_status(
                pod_name,
                NAMESPACE,
                {
                    "status": {
                        "phase": "Failed",
                        "conditions": [_disruption("PreemptionByScheduler")],
                    }
                },
            )
        else:
            raise ValueError(f"unknown interruption {how!r}")
        self._pod_failed(job)


def _stop_when(
    proc: subprocess.Popen[Any], when: Callable[[], bool], grace: float | None
) -> float | None:
    """Once ``when()`` is true, stop ``proc``: SIGKILL when ``grace`` is None (a lost
    node), else a graceful delete (SIGTERM, SIGKILL after ``grace`` seconds). The
    seconds it took to exit; None if it ended first."""
    while proc.poll() is None:
        if when():
            began = time.monotonic()
            if grace is None:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
            return time.monotonic() - began
        time.sleep(0.02)
    return None


def _disruption(reason: str) -> dict[str, Any]:
    """The condition the control plane puts on a pod it is about to stop."""
    return {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": reason,
        "message": {
            "TerminationByKubelet": "The node was low on resource: memory.",
            "PreemptionByScheduler": "Kubernetes Scheduler: preempting to accommodate a "
            "higher priority pod",
        }.get(reason, ""),
    }


def _die_status(kind: str, container: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the pod's status, the Job's status or None) for a run that died as ``kind``."""
    if kind == "OOMKilled":
        terminated = {"exitCode": 137, "reason": "OOMKilled"}
        return {
            "phase": "Failed",
            "containerStatuses": [_container_status(container, terminated=terminated)],
        }, None
    if kind == "Evicted":
        return {
            "phase": "Failed",
            "reason": "Evicted",
            "message": "The node was low on memory.",
        }, None
    condition = {
        "type": "Failed",
        "status": "True",
        "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline",
    }
    return {"phase": "Failed"}, {"failed": 1, "conditions": [condition]}


def _container_status(container: Any, **state: dict[str, Any]) -> dict[str, Any]:
    """A container's status as the kubelet reports it, in ``state`` (waiting, terminated)."""
    return {
        "name": container.name,
        "image": container.image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": state,
    }


RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the ``restricted`` Pod Security level (as of Kubernetes 1.33) refuses in a
    pod spec, in the admission controller's words; empty: admitted."""
    found = []
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        found.append("host namespaces (hostNetwork=true, hostPID=true or hostIPC=true)")
    for volume in pod.get("volumes") or []:
        kind = next((k for k in volume if k != "name"), None)
        if kind not in RESTRICTED_VOLUMES:
            found.append(f'restricted volume types (volume "{volume["name"]}" uses {kind})')
    pod_security = pod.get("securityContext") or {}
    containers = [
        *(pod.get("initContainers") or []),
        *(pod.get("containers") or []),
        *(pod.get("ephemeralContainers") or []),
    ]
    for container in containers:
        name = container["name"]
        own = container.get("securityContext") or {}
        if own.get("privileged"):
            found.append(f'privileged (container "{name}" must not set privileged=true)')
        if own.get("allowPrivilegeEscalation") is not False:
            found.append(
                f'allowPrivilegeEscalation != false (container "{name}" must set '
                "securityContext.allowPrivilegeEscalation=false)"
            )
        capabilities = own.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(
                f'unrestricted capabilities (container "{name}" must set '
                'securityContext.capabilities.drop=["ALL"])'
            )
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f'unrestricted capabilities (container "{name}" adds capabilities)')
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f'hostPort (container "{name}" uses a hostPort)')
        non_root = own.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        if non_root is not True:
            found.append(
                f'runAsNonRoot != true (pod or container "{name}" must set '
                "securityContext.runAsNonRoot=true)"
            )
        if own.get("runAsUser", pod_security.get("runAsUser")) == 0:
            found.append(f'runAsUser=0 (container "{name}" must not run as root)')
        seccomp = (own.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get(
            "type"
        )
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(
                f'seccompProfile (pod or container "{name}" must set '
                'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
            )
    return found


def _plain(model: Any) -> dict[str, Any]:
    """A client model as the JSON the API server holds (camelCase, no nulls)."""
    from kubernetes import client

    return client.ApiClient().sanitize_for_serialization(model)


def wait_until(predicate: Any, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What a pod's process inherits besides the pod's own environment: this
    interpreter's PATH and PYTHONPATH (the image would have Kitaru and the project)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITARU_")}
    env.update(extra or {})
    return env


def _pod_log(text: str) -> Callable[[Any], str]:
    """A pod's log endpoint as the kubelet answers it: ``tailLines`` keeps the last
    lines, then ``limitBytes`` stops after that many bytes (mid-line if it falls so)."""

    def answer(request: Any) -> str:
        out = text
        if "tailLines" in request.params:
            lines = int(request.params["tailLines"])
            out = "".join(out.splitlines(keepends=True)[-lines:]) if lines > 0 else ""
        if "limitBytes" in request.params:
            out = out.encode()[: int(request.params["limitBytes"])].decode(errors="ignore")
        return out

    return answer


class UnwellApiServer:
    """An API server on 127.0.0.1 that misbehaves as real ones do under load or in a
    control-plane outage: ``hang`` accepts the connection and never answers; ``429``
    throttles (``Retry-After``) the first ``times`` requests, then answers; ``500``
    fails every request with a Status naming why (as etcd's timeouts do)."""

    def __init__(self, tmp_path: Path, mode: str, times: int = 0) -> None:
        import http.server
        import json

        self.mode, self.times, self.requests = mode, times, 0
        self._release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                server.requests += 1
                if server.mode == "hang":
                    server._release.wait(60)
                    return
                if server.mode == "429" and server.requests <= server.times:
                    self._send(429, _status(429, "TooManyRequests", "too many requests"), 1)
                elif server.mode == "500":
                    self._send(500, _status(500, "InternalError", "etcdserver: request timed out"))
                else:
                    self._send(200, {"apiVersion": "batch/v1", "kind": "JobList", "items": []})

            def _send(self, code: int, body: dict[str, Any], retry: int | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry is not None:
                    self.send_header("Retry-After", str(retry))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.kubeconfig = write_kubeconfig(tmp_path / f"kubeconfig-{mode}", self.url)

    def close(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
