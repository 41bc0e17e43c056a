"""Errors as problem details (RFC 9457, ``application/problem+json``): the status code a
Kitaru error stands for, and the body every refusal of the API and of ``/mcp`` has."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from kitaru_core.errors import (
    KitaruBackendError,
    KitaruError,
    KitaruNotFoundError,
    KitaruStateError,
    KitaruUsageError,
    KitaruWaitValidationError,
)

PROBLEM = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class ProblemDetails(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str


def problem_response(status: int, title: str, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="kitaru"'} if status == 401 else None
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM,
        headers=headers,
    )


_KITARU_STATUS: list[tuple[type[KitaruError], int, str]] = [
    (KitaruNotFoundError, 404, "Not Found"),
    (KitaruWaitValidationError, 422, "Input does not fit the wait's schema"),
    (KitaruStateError, 409, "Conflict"),
    (KitaruUsageError, 400, "Bad Request"),
    (KitaruBackendError, 503, "A backend is unavailable"),
]


def status_of(exc: KitaruError) -> tuple[int, str]:
    for kind, status, title in _KITARU_STATUS:
        if isinstance(exc, kind):
            return status, title
    return 500, "Kitaru error"


def _problem_schema(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    }


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_schema("The request is not valid"),
    401: _problem_schema("No token, or a token that is not valid, expired or revoked"),
    403: _problem_schema("The token's scope does not allow this"),
    404: _problem_schema("No such execution, artifact, flow or memory key"),
    409: _problem_schema("The execution's state does not allow this"),
    422: _problem_schema("The body does not fit (a wait's schema, a flow's arguments)"),
    503: _problem_schema("A backend (database, artifact store) is unavailable"),
}
