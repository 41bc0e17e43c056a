"""Names Kubernetes accepts: DNS-1123 labels, hashed when too long, and the labels
Kitaru puts on what it creates."""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")

EXECUTION_LABEL = "kitaru.dev/execution"
"""A digest of the store's id and the execution id (label values are limited to 63
characters; two installations sharing a namespace never match each other's)."""
STORE_LABEL = "kitaru.dev/store"
ATTEMPT_LABEL = "kitaru.dev/attempt"
FLOW_LABEL = "kitaru.dev/flow"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kitaru"}
RESERVED_LABEL_PREFIXES = (
    "kitaru.dev/",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "batch.kubernetes.io/",
    "job-name",
    "controller-uid",
)
"""Labels Kitaru or the Job controller set: a stack's own labels may not."""


def check_dns_label(value: str, what: str) -> str:
    if len(value) > MAX_LABEL or not _LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be a DNS-1123 label: at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return value


def check_qualified_name(value: str, what: str) -> str:
    """A label or annotation key, or a resource name: ``[prefix/]name``."""
    prefix, _, name = value.rpartition("/")
    if (
        not name
        or len(name) > MAX_LABEL
        or not _QUALIFIED.fullmatch(name)
        or (prefix and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)))
    ):
        raise ValueError(
            f"{what} {value!r} is not a name Kubernetes accepts: an optional DNS prefix "
            "and '/', then at most 63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit"
        )
    return value


def check_label_value(value: str, what: str) -> str:
    if len(value) > MAX_LABEL or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"{what}: {value!r} is not a label value Kubernetes accepts (at most 63 "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        )
    return value


def check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"environment variable {value!r}: use letters, digits, '_', '-' and '.', "
            "not starting with a digit"
        )
    return value


def check_quantity(amount: object, resource: str) -> str:
    """A Kubernetes quantity (``250m``, ``1Gi``, ``2``) as the text the API takes."""
    text = str(amount).strip() if not isinstance(amount, bool) else ""
    if not _QUANTITY.fullmatch(text):
        raise ValueError(
            f"{resource}: {amount!r} is not a Kubernetes quantity; write e.g. 500m or 2 "
            "for CPU, 512Mi or 2Gi for memory, 1 for a GPU"
        )
    return text


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


def execution_label(store_id: str, exec_id: str) -> str:
    return digest(store_id, exec_id, length=20)


def label_value(text: str) -> str:
    """Any text (a flow's name, a version) as a label value, hashed when it must change."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-_.")
    if cleaned == text and len(text) <= MAX_LABEL:
        return text
    tail = "-" + digest(text, length=8)
    return (cleaned[: MAX_LABEL - len(tail)].rstrip("-_.") or "x") + tail


def kitaru_labels(component: str, stack: str) -> dict[str, str]:
    """The recommended labels (``app.kubernetes.io/*``) of what Kitaru writes."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        kitaru_version = version("kitaru")
    except PackageNotFoundError:
        kitaru_version = "unknown"
    return {
        "app.kubernetes.io/name": "kitaru",
        "app.kubernetes.io/instance": label_value(stack),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/version": label_value(kitaru_version),
        **MANAGED_BY,
    }
