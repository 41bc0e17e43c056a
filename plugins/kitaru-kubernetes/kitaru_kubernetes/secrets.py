"""The ``kubernetes-secrets`` secret provider: one Opaque Secret per name, in a
namespace, marked with a label (and holding Kitaru's own name in an annotation, since
Kitaru's names allow characters a Secret's name does not)."""

from __future__ import annotations

import base64
from typing import Any

from kitaru.plugin import SecretNotFoundError, SecretProvider
from kitaru_kubernetes.api import api_error, call, connect, status_of
from kitaru_kubernetes.config import KubernetesSecretsConfig
from kitaru_kubernetes.names import MANAGED_BY, dns_label

NAME_ANNOTATION = "kitaru.dev/secret-name"


class KubernetesSecretProvider(SecretProvider):
    flavor = "kubernetes-secrets"

    def __init__(self, config: KubernetesSecretsConfig) -> None:
        self.config = config
        self._core: Any = None

    @property
    def core(self) -> Any:
        if self._core is None:
            from kubernetes import client

            self._core = client.CoreV1Api(connect(self.config))
        return self._core

    def secret_object_name(self, name: str) -> str:
        """The Kubernetes Secret that holds Kitaru's secret ``name``."""
        return dns_label(name, prefix=self.config.prefix)

    def _missing(self, name: str) -> SecretNotFoundError:
        return SecretNotFoundError(
            f"namespace {self.config.namespace!r} has no Secret {self.secret_object_name(name)!r} for "
            f"{name!r}; add it with `kitaru secrets set {name}`"
        )

    def get(self, name: str) -> str:
        try:
            secret = call(
                self.core.read_namespaced_secret,
                self.secret_object_name(name),
                self.config.namespace,
            )
        except Exception as exc:
            if status_of(exc) == 404:
                raise self._missing(name) from None
            raise api_error(
                exc, f"secret {self.secret_object_name(name)}", "check the cluster"
            ) from exc
        data = secret.data or {}
        if self.config.key not in data:
            raise SecretNotFoundError(
                f"Secret {self.secret_object_name(name)!r} has no key {self.config.key!r}; set it again "
                f"with `kitaru secrets set {name}`"
            )
        return base64.b64decode(data[self.config.key]).decode("utf-8")

    def _body(self, name: str, value: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": self.secret_object_name(name),
                "labels": {**MANAGED_BY, self.config.label: "true"},
                "annotations": {NAME_ANNOTATION: name},
            },
            "data": {self.config.key: base64.b64encode(value.encode("utf-8")).decode("ascii")},
        }

    def set(self, name: str, value: str) -> None:
        body = self._body(name, value)
        try:
            call(self.core.create_namespaced_secret, self.config.namespace, body)
            return
        except Exception as exc:
            if status_of(exc) != 409:
                raise api_error(
                    exc, f"secret {self.secret_object_name(name)}", "check the cluster"
                ) from exc
        try:  # it exists: set its value (a patch leaves any other keys someone added)
            call(
                self.core.patch_namespaced_secret,
                self.secret_object_name(name),
                self.config.namespace,
                body,
            )
        except Exception as exc:
            raise api_error(
                exc, f"secret {self.secret_object_name(name)}", "check the cluster"
            ) from exc

    def delete(self, name: str) -> None:
        try:
            call(
                self.core.delete_namespaced_secret,
                self.secret_object_name(name),
                self.config.namespace,
            )
        except Exception as exc:
            if status_of(exc) == 404:
                raise self._missing(name) from None
            raise api_error(
                exc, f"secret {self.secret_object_name(name)}", "check the cluster"
            ) from exc

    def list(self) -> list[str]:
        try:
            secrets = call(
                self.core.list_namespaced_secret,
                self.config.namespace,
                label_selector=f"{self.config.label}=true",
            ).items
        except Exception as exc:
            raise api_error(
                exc, f"secrets in {self.config.namespace}", "check the cluster"
            ) from exc
        names = []
        for secret in secrets:
            meta = secret.metadata
            if (meta.labels or {}).get(self.config.label) == "true" and not meta.deletion_timestamp:
                names.append((meta.annotations or {}).get(NAME_ANNOTATION, meta.name))
        return sorted(names)


def secret_names(provider: KubernetesSecretProvider, definition: Any, more: list[str]) -> list[str]:
    """The Kubernetes Secrets a stack's pods read: each secret its runs read through the
    provider (the stack file's, the signing key), and ``more`` (``pod_secrets``)."""
    wanted = {*definition.secrets_runs_read(), *more}
    return sorted({provider.secret_object_name(name) for name in wanted})
