"""Azure errors as Kitaru errors a person can act on."""

from __future__ import annotations

from kitaru.plugin import KitaruBackendError, backend_error


def service_error(flavor: str, resource: str, exc: BaseException) -> KitaruBackendError:
    name = type(exc).__name__
    code = str(getattr(exc, "error_code", "") or "")
    if name in ("ServiceRequestError", "ServiceResponseError", "ConnectionError"):
        fix = "cannot reach the service; check the network and the account/vault URL"
    elif code in ("ContainerNotFound",) or name == "ResourceNotFoundError":
        fix = "it does not exist; create it or fix the stack's path"
    elif name in ("ClientAuthenticationError", "CredentialUnavailableError") or code in (
        "AuthenticationFailed",
        "AuthorizationFailure",
        "Forbidden",
    ):
        fix = "access denied; check the credentials and their role assignments"
    else:
        fix = f"{name} {code}".strip()
    return backend_error(flavor, resource, fix, exc)
