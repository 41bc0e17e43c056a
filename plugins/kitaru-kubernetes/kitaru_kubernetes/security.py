"""What every pod Kitaru writes runs with: the ``restricted`` Pod Security level (non-root,
no privilege escalation, no capabilities, the runtime's seccomp profile) and a
read-only root filesystem, with an ``emptyDir`` at ``/tmp`` for what must be written
(``HOME`` and ``KITARU_HOME`` point there). A stack changes any of it with
``pod_template``."""

from __future__ import annotations

from typing import Any

RUN_AS = 65532
"""A user id with no name in most images (distroless's "nonroot"): ``runAsNonRoot``
needs a numeric user, and an image's root user would be refused."""
SCRATCH = "/tmp"


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def scratch_volume() -> dict[str, Any]:
    return {"name": "tmp", "emptyDir": {}}


def scratch_mount() -> dict[str, Any]:
    return {"name": "tmp", "mountPath": SCRATCH}


def scratch_env() -> list[dict[str, str]]:
    """Where Kitaru and libraries write (caches, the home's signing key)."""
    return [
        {"name": "HOME", "value": SCRATCH},
        {"name": "KITARU_HOME", "value": f"{SCRATCH}/kitaru"},
    ]
