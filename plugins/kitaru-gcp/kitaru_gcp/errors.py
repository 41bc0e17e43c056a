"""Google errors as Kitaru errors a person can act on: what failed, where, what to check."""

from __future__ import annotations

from kitaru.plugin import KitaruBackendError, backend_error


def service_error(flavor: str, resource: str, exc: BaseException) -> KitaruBackendError:
    name = type(exc).__name__
    if name in ("ConnectionError", "TransportError", "ServiceUnavailable", "RetryError"):
        fix = "cannot reach the service; check the network and endpoint"
    elif name == "NotFound":
        fix = "it does not exist; create it or fix the stack's path/project"
    elif name in ("Forbidden", "PermissionDenied", "Unauthorized", "Unauthenticated"):
        fix = "access denied; check the credentials and their IAM roles"
    elif name == "DefaultCredentialsError":
        fix = "no Google credentials found; run `gcloud auth application-default login` or set credentials_json"
    else:
        fix = name
    return backend_error(flavor, resource, fix, exc)
