"""A boto3 client from a connection config."""

from __future__ import annotations

from typing import Any

from kitaru_aws.config import AWSConnection


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
