"""Names Kubernetes accepts: DNS-1123 labels, hashed when too long, and the labels
Kitaru puts on what it creates."""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
EXECUTION_LABEL = "kitaru.dev/execution"
"""A digest of the execution id (label values are limited to 63 characters)."""
ATTEMPT_LABEL = "kitaru.dev/attempt"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kitaru"}


def check_dns_label(value: str, what: str) -> str:
    if len(value) > MAX_LABEL or not _LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be a DNS-1123 label: at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return value


def digest(*parts: object, length: int = 10) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:length]


def dns_label(text: str, *, prefix: str = "", max_length: int = MAX_LABEL) -> str:
    """``prefix`` + ``text`` made a DNS-1123 label; when it would be too long or had to
    change, a digest of the original keeps it unique."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = f"{prefix}{cleaned}".strip("-")
    if name == f"{prefix}{text}" and len(name) <= max_length and _LABEL.fullmatch(name):
        return name
    tail = "-" + digest(text, length=8)
    return (name[: max_length - len(tail)].rstrip("-") or "x") + tail


def execution_label(exec_id: str) -> str:
    return digest(exec_id, length=20)
