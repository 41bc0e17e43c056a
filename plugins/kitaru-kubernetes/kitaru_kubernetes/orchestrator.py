"""The ``kubernetes`` orchestrator: each run of an execution is one ``batch/v1`` Job.

``start`` and every later run (after input, a due timer, a recovery, a retry) create a
Job named for that execution and run, and return; no pod exists while an execution
waits or sleeps. The metadata store stays the truth: the cluster is read only to tell
why a run died before it could record anything.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kitaru.plugin import (
    ExecutionView,
    KitaruStackError,
    KitaruStateError,
    Orchestrator,
    claim_for_retry,
    execution,
    get_stack,
    mark_cancelled,
    runner_command,
    statuses,
    store_id,
    wait_for_execution,
)
from kitaru_kubernetes.api import api_error, call, connect, status_of
from kitaru_kubernetes.config import KubernetesOrchestratorConfig
from kitaru_kubernetes.fates import PodFate, job_fate, job_finished, pod_fate, still_pending
from kitaru_kubernetes.jobs import job_manifest
from kitaru_kubernetes.names import EXECUTION_LABEL, STORE_LABEL, execution_label

logger = logging.getLogger("kitaru.kubernetes")

POD_LOG_BYTES = 8 * 2**20
"""What ``kitaru executions logs`` reads of one pod's log at most: the start, or with
``--tail`` the end."""


class KubernetesOrchestrator(Orchestrator):
    flavor = "kubernetes"

    def __init__(self, config: KubernetesOrchestratorConfig) -> None:
        self.config = config
        self._api: Any = None
        self._store_id: str | None = None
        self._read: dict[str, PodFate | None] = {}
        """What ``starting`` read of an execution's run, for the ``diagnose`` and
        ``interruption`` that follow it in the same worker pass (one read of the
        cluster per dead execution, not three)."""

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = connect(self.config)
        return self._api

    def _batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api)

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @property
    def store(self) -> str:
        if self._store_id is None:
            self._store_id = store_id()
        return self._store_id

    # -- runs ------------------------------------------------------------------------

    def start(self, exec_id: str, *, background: bool = False) -> None:
        view = self._create_job(exec_id)
        if not background:
            wait_for_execution(exec_id, since=view)

    def resume(self, exec_id: str, *, retry: bool = False, background: bool = False) -> None:
        if retry and not claim_for_retry(exec_id):
            raise KitaruStateError(
                f"execution {exec_id} is not failed or cancelled; nothing to retry"
            )
        view = self._create_job(exec_id)
        if not background:
            wait_for_execution(exec_id, since=view)

    def _create_job(self, exec_id: str) -> ExecutionView:
        view = execution(exec_id)
        secrets = get_stack(view.stack).definition.components["secret_provider"].flavor
        manifest = job_manifest(
            self.config,
            view,
            runner_command(view.exec_id, python=self.config.python),
            store_id=self.store,
            api_access=secrets == "kubernetes-secrets",
        )
        name = manifest["metadata"]["name"]
        try:
            call(self._batch().create_namespaced_job, self.config.namespace, manifest)
        except Exception as exc:
            if status_of(exc) == 409:  # this run's Job exists: it was already started
                logger.info("job %s of execution %s already exists", name, exec_id)
                return view
            raise api_error(
                exc,
                f"job {self.config.namespace}/{name}",
                "check that the namespace exists and the service account may create Jobs",
            ) from exc
        return view

    def cancel(self, exec_id: str) -> None:
        mark_cancelled(exec_id)
        for job in self._jobs(exec_id):
            if not job_finished(job):
                self._delete(job.metadata.name)

    def _delete(self, name: str) -> None:
        """Delete a Job and its pods (a 404: someone was first)."""
        try:
            call(
                self._batch().delete_namespaced_job,
                name,
                self.config.namespace,
                propagation_policy="Foreground",
            )
        except Exception as exc:
            if status_of(exc) != 404:
                raise api_error(exc, f"job {name}", "delete it by hand") from exc

    def reconcile(self) -> list[str]:
        """Delete the running Jobs of executions that ended failed or cancelled, or were
        deleted: a cancel while the cluster could not be reached, a run failed by the
        worker. Their pods would hold their nodes (a GPU) for nothing."""
        try:
            jobs = call(
                self._batch().list_namespaced_job,
                self.config.namespace,
                label_selector=f"{STORE_LABEL}={self.store}",
            ).items
        except Exception as exc:
            raise api_error(exc, f"jobs in {self.config.namespace}", "check the cluster") from exc
        active = {
            job.metadata.name: (job.metadata.annotations or {}).get("kitaru.dev/exec-id")
            for job in jobs
            if not job_finished(job)
            and (job.metadata.labels or {}).get(STORE_LABEL) == self.store
            and not job.metadata.deletion_timestamp
        }
        known = statuses(sorted({e for e in active.values() if e}))
        done = []
        for name, exec_id in sorted(active.items()):
            status = known.get(exec_id or "", "deleted")
            if status in ("failed", "cancelled", "deleted"):
                self._delete(name)
                done.append(f"deleted job {name}: its execution {exec_id} is {status}")
        return done

    # -- reading the cluster ---------------------------------------------------------

    def _jobs(self, exec_id: str) -> list[Any]:
        """The execution's Jobs, oldest first."""
        label = execution_label(self.store, exec_id)
        try:
            jobs = call(
                self._batch().list_namespaced_job,
                self.config.namespace,
                label_selector=f"{EXECUTION_LABEL}={label}",
            ).items
        except Exception as exc:
            raise api_error(exc, f"jobs in {self.config.namespace}", "check the cluster") from exc
        mine = [j for j in jobs if (j.metadata.labels or {}).get(EXECUTION_LABEL) == label]
        # By when each was made: a Job left from an earlier attempt may share the new
        # one's attempt number (a retry), and names sort by their digest.
        return sorted(
            mine,
            key=lambda j: (
                j.metadata.creation_timestamp is None,
                j.metadata.creation_timestamp or 0,
                int((j.metadata.labels or {}).get("kitaru.dev/attempt", 0)),
            ),
        )

    def _pods(self, job_name: str) -> list[Any]:
        try:
            pods = call(
                self._core().list_namespaced_pod,
                self.config.namespace,
                label_selector=f"job-name={job_name}",
            ).items
        except Exception as exc:
            raise api_error(exc, f"pods of job {job_name}", "check the cluster") from exc
        return [p for p in pods if (p.metadata.labels or {}).get("job-name") == job_name]

    def starting(self, exec_id: str) -> bool:
        fate = self._read[exec_id] = self._fate(exec_id)
        return fate is not None and fate.starting

    def diagnose(self, exec_id: str) -> str | None:
        """Why the latest run cannot work if run again: an image that cannot be pulled,
        a container that cannot be configured, an OOM kill, a run past its deadline, a
        pod Pending past the stack's ``pending_timeout``; its Job is then deleted (a
        pod stuck pulling would hold its node). None for what a new run survives (an
        evicted or preempted pod, a lost node, a deleted pod): the worker then recovers
        the execution, and asks ``interruption`` why. The pods are read before the Job:
        with ``backoffLimit: 0`` the Job controller marks every failed run
        ``BackoffLimitExceeded``, which says nothing of why."""
        fate = self._read.pop(exec_id) if exec_id in self._read else self._fate(exec_id)
        if fate is not None and fate.permanent:
            for job in self._jobs(exec_id):  # its reason is read: nothing else to keep
                self._delete(job.metadata.name)
            return fate.reason
        self._read[exec_id] = fate
        return None

    def interruption(self, exec_id: str) -> str | None:
        fate = self._read.pop(exec_id) if exec_id in self._read else self._fate(exec_id)
        return fate.reason if fate is not None and not fate.permanent else None

    def _fate(self, exec_id: str) -> PodFate | None:
        jobs = self._jobs(exec_id)
        if not jobs:
            return None
        job = jobs[-1]
        pods = self._pods(job.metadata.name)
        for pod in pods:
            fate = pod_fate(pod)
            if fate is not None:
                return fate
        created = job.metadata.creation_timestamp
        age = time.time() - created.timestamp() if created is not None else 0.0
        pending = still_pending(
            job,
            pods,
            age=age,
            timeout=self.config.pending_timeout,
            events=self._warnings(job.metadata.name) if age >= self.config.pending_timeout else [],
        )
        return pending or job_fate(job, has_pods=bool(pods))

    def _warnings(self, job_name: str) -> list[str]:
        """What the Job controller said of a Job, oldest first (``FailedCreate``: why the
        cluster would not create its pod); nothing if events cannot be read."""
        try:
            events = call(
                self._core().list_namespaced_event,
                self.config.namespace,
                field_selector=f"involvedObject.kind=Job,involvedObject.name={job_name}",
            ).items
        except Exception:
            return []
        return [
            f"{e.reason}: {e.message}"
            for e in events
            if e.type == "Warning" and e.involved_object.name == job_name
        ]

    def logs(self, exec_id: str, tail: int | None = None) -> str | None:
        parts = []
        try:
            jobs = self._jobs(exec_id)
        except Exception:  # the cluster is not reachable: the local log is still there
            return None
        for job in jobs:
            for pod in self._pods(job.metadata.name):
                name = pod.metadata.name
                try:
                    text = call(
                        self._core().read_namespaced_pod_log,
                        name,
                        self.config.namespace,
                        tail_lines=tail,
                        limit_bytes=POD_LOG_BYTES,
                    )
                except Exception as exc:
                    text = f"(no log: {getattr(exc, 'reason', None) or exc})\n"
                if len(text.encode()) >= POD_LOG_BYTES:
                    text += (
                        f"\n(cut after {POD_LOG_BYTES:,} bytes: `kubectl logs -n "
                        f"{self.config.namespace} {name}` has the rest, `--tail N` the end)\n"
                    )
                parts.append(f"--- pod {name} ---\n{text}")
        return "".join(parts) or None

    def check(self) -> None:
        from kubernetes import client

        namespace = self.config.namespace
        try:
            call(self._core().read_namespace, namespace)
        except Exception as exc:
            if status_of(exc) == 404:
                raise KitaruStackError(
                    f"kubernetes: namespace {namespace!r} does not exist; create it "
                    f"(`kubectl create namespace {namespace}`) or name another in the stack"
                ) from None
            raise api_error(exc, f"namespace {namespace}", "check the cluster") from exc
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb="create", group="batch", resource="jobs"
                )
            )
        )
        try:
            answer = call(
                client.AuthorizationV1Api(self.api).create_self_subject_access_review, review
            )
        except Exception as exc:
            raise api_error(exc, "selfsubjectaccessreviews", "check the credentials") from exc
        if not (answer.status and answer.status.allowed):
            raise KitaruStackError(
                f"kubernetes: these credentials may not create Jobs in namespace {namespace!r}; "
                "bind them to the Role that `kitaru kubernetes manifests` prints"
            )
