"""AWS errors as Kitaru errors a person can act on: what failed, where, what to check."""

from __future__ import annotations

from kitaru.plugin import KitaruBackendError, backend_error
from kitaru_aws.config import AWSConnection


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def service_error(
    flavor: str, resource: str, exc: BaseException, config: AWSConnection
) -> KitaruBackendError:
    """The error a person can act on: what failed, where, and what to check."""
    code = error_code(exc)
    name = type(exc).__name__
    if name in (
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ReadTimeoutError",
    ):
        where = config.endpoint_url or f"the {config.region or 'default'} region's endpoint"
        fix = f"cannot reach {where}; check the network and endpoint_url"
    elif code in ("NoSuchBucket",):
        fix = "the bucket does not exist; create it or fix the stack's path"
    elif code in (
        "AccessDenied",
        "AccessDeniedException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    ):
        fix = "access denied; check the credentials and their IAM permissions"
    elif name == "NoCredentialsError":
        fix = "no AWS credentials found; configure the default chain or the stack's access_key_id"
    else:
        fix = f"{name} {code}".strip()
    return backend_error(flavor, resource, fix, exc)
