"""A boto3 client from a connection config, and AWS errors as Kitaru errors."""

from __future__ import annotations

from typing import Any

from kitaru_aws.config import AWSConnection
from kitaru_core.errors import KitaruBackendError


def client(service: str, config: AWSConnection) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        profile_name=config.profile,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        aws_session_token=config.session_token,
        region_name=config.region,
    )
    return session.client(
        service,
        endpoint_url=config.endpoint_url,
        config=Config(
            retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60
        ),
    )


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def backend_error(
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
    return KitaruBackendError(f"{flavor} ({resource}): {fix} ({exc})")
