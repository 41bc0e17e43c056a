"""Google credentials from a connection config."""

from __future__ import annotations

import json
from typing import Any

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
