"""What became of a run's pod, read from what the cluster reports: a reason a new run
would meet again (``permanent``: the execution fails with it), or one it survives (the
worker recovers the execution, and logs the reason).

The pod is read before its Job: with ``backoffLimit: 0`` the Job controller marks the
Job ``Failed`` with ``BackoffLimitExceeded`` after any pod failure, an OOM kill and a
spot reclaim alike. The pod says which it was: its container's ``terminated.reason``
or ``waiting.reason``, its ``status.reason`` (``Evicted``), or a ``DisruptionTarget``
condition (preemption, a drained or lost node, the eviction API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Why a container cannot start, as the kubelet reports it while it keeps trying.
CANNOT_START = {
    "ErrImagePull": "its image could not be pulled",
    "ImagePullBackOff": "its image could not be pulled",
    "InvalidImageName": "its image name is not valid",
    "CreateContainerConfigError": "its container could not be configured (a missing Secret or key?)",
    "CreateContainerError": "its container could not be created",
}


@dataclass(frozen=True)
class PodFate:
    reason: str
    permanent: bool
    starting: bool = False
    """Not dead: still being scheduled or started (within the stack's pending_timeout)."""


def pod_fate(pod: Any) -> PodFate | None:
    """What the cluster says of one pod, if anything that explains a dead run."""
    name = pod.metadata.name
    status = pod.status
    if status is None:
        return None
    for container in status.container_statuses or []:
        state = container.state
        if state and state.waiting and state.waiting.reason in CANNOT_START:
            why = CANNOT_START[state.waiting.reason]
            detail = f": {state.waiting.message}" if state.waiting.message else ""
            return PodFate(
                f"pod {name} never started: {why} ({state.waiting.reason}{detail})", True
            )
        if state and state.terminated and state.terminated.reason == "OOMKilled":
            return PodFate(
                f"pod {name} was killed for using more memory than its limit (OOMKilled); "
                "raise resources.limits.memory for this flow",
                True,
            )
    if status.reason == "DeadlineExceeded":
        return PodFate(f"pod {name} ran past its active_deadline_seconds (DeadlineExceeded)", True)
    if status.reason == "Evicted":
        return PodFate(_said(f"pod {name} was evicted (Evicted)", status.message), False)
    for condition in status.conditions or []:
        if condition.type == "DisruptionTarget" and condition.status == "True":
            return PodFate(
                _said(
                    f"pod {name} was stopped by the cluster ({condition.reason})", condition.message
                ),
                False,
            )
    if pod.metadata.deletion_timestamp is not None:
        return PodFate(f"pod {name} was deleted", False)
    for container in status.container_statuses or []:
        ended = container.state.terminated if container.state else None
        if ended is not None and ended.exit_code:
            return PodFate(
                f"pod {name} exited with code {ended.exit_code} ({ended.reason or 'Error'})", False
            )
    return None


def job_fate(job: Any, *, has_pods: bool) -> PodFate | None:
    """What the Job says when its pods do not: its deadline, or a failure whose pod is
    gone (deleted, or garbage-collected with its lost node)."""
    name = job.metadata.name
    for condition in (job.status.conditions if job.status else None) or []:
        if condition.type != "Failed" or condition.status != "True":
            continue
        if condition.reason == "DeadlineExceeded":
            return PodFate(
                f"job {name} ran past its active_deadline_seconds (DeadlineExceeded)", True
            )
        gone = "" if has_pods else " and its pod is gone (deleted, or its node was lost)"
        return PodFate(
            _said(f"job {name} failed ({condition.reason}){gone}", condition.message), False
        )
    return None


def job_finished(job: Any) -> bool:
    """The Job controller is done with it: Complete, or Failed."""
    conditions = (job.status.conditions if job.status else None) or []
    return any(c.status == "True" and c.type in ("Complete", "Failed") for c in conditions)


def _said(what: str, message: str | None) -> str:
    return f"{what}: {message}" if message else what


def still_pending(
    job: Any, pods: list[Any], *, age: float, timeout: float, events: list[str]
) -> PodFate | None:
    """The run's Job is active and its pod not yet running: ``starting`` while younger
    than ``timeout``, then a permanent fate saying what keeps it (an unschedulable pod,
    or a pod the cluster would not create: Pod Security admission, a ResourceQuota)."""
    if job_finished(job):
        return None
    if any(p.status is not None and p.status.phase not in (None, "Pending") for p in pods):
        return None
    if age < timeout:
        return PodFate("its pod is being started", False, starting=True)
    name = job.metadata.name
    for pod in pods:
        for condition in (pod.status.conditions if pod.status else None) or []:
            if condition.type == "PodScheduled" and condition.status == "False":
                return PodFate(
                    _said(
                        f"pod {pod.metadata.name} stayed Pending for {age:.0f} s, past the "
                        f"stack's pending_timeout ({condition.reason})",
                        condition.message,
                    ),
                    True,
                )
    if pods:
        return PodFate(
            f"pod {pods[0].metadata.name} stayed Pending for {age:.0f} s, past the stack's "
            "pending_timeout",
            True,
        )
    said = f": {events[-1]}" if events else ""
    return PodFate(
        f"job {name} got no pod in {age:.0f} s, past the stack's pending_timeout; the "
        f"cluster did not create one (Pod Security admission, a ResourceQuota?){said}",
        True,
    )
