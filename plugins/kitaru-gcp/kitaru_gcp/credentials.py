"""Google credentials from a connection config, and Google errors as Kitaru errors."""

from __future__ import annotations

import json
from typing import Any

from kitaru_core.errors import KitaruBackendError
from kitaru_gcp.config import GCPConnection


def credentials(config: GCPConnection) -> Any:
    if config.anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    if config.credentials_json:
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(
            json.loads(config.credentials_json)
        )
    return None  # Application Default Credentials


def backend_error(flavor: str, resource: str, exc: BaseException) -> KitaruBackendError:
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
    return KitaruBackendError(f"{flavor} ({resource}): {fix} ({exc})")
