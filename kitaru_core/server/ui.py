"""The web UI's pages and its session: ``/`` serves the single page, ``/ui/assets``
its scripts and styles (committed as written: no build step, nothing from a CDN), and
``/ui/session`` turns a pasted token into an ``HttpOnly``, ``SameSite=Strict`` cookie.

Everything the page does goes through ``/api/v1`` with that cookie, so the token's
scope applies as to any client. A request authenticated by the cookie that changes
something must also carry ``X-CSRF-Token``, an HMAC of the token that only a page of
this origin can read (from ``GET /ui/session``).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from kitaru_core.server.problems import problem_response
from kitaru_core.server.tokens import TokenChecker, TokenRefused

ASSETS = Path(__file__).parent / "ui_assets"
SESSION_COOKIE = "kitaru_session"
CSRF_HEADER = "X-CSRF-Token"
_PAGE_HEADERS = {
    # The page's own files only; user and model text is set as text, never as HTML.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _assets_version() -> str:
    """A digest of every asset: the address they are served under, so a browser keeps
    them for a year and still loads the new ones the moment any of them changes."""
    digest = hashlib.sha256()
    for path in sorted(ASSETS.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(ASSETS)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


ASSETS_VERSION = _assets_version()
_VERSIONED = f"/ui/assets/{ASSETS_VERSION}"


class _ImmutableAssets(StaticFiles):
    """The assets under their versioned address: their content never changes there."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


class _RevalidatedAssets(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def csrf_token(token: str) -> str:
    return hmac.new(token.encode(), b"kitaru-ui-csrf", hashlib.sha256).hexdigest()


class SignIn(BaseModel):
    token: str


def ui_router(state: Any, checker: TokenChecker) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    # The page names its assets by their versioned address; ES modules import each
    # other by relative paths, so they resolve under it too.
    index = (
        (ASSETS / "index.html").read_text(encoding="utf-8").replace("/ui/assets/", _VERSIONED + "/")
    )

    @router.get("/")
    def page() -> HTMLResponse:
        return HTMLResponse(index, headers=_PAGE_HEADERS)

    def _session(token: str | None) -> dict[str, Any]:
        if not state.auth:
            return {"auth": False, "name": None, "scope": "admin", "csrf": ""}
        record = checker.verify(token)
        return {
            "auth": True,
            "name": record.name,
            "scope": record.scope,
            "csrf": csrf_token(token or ""),
        }

    @router.get("/ui/session")
    def session(request: Request) -> Response:
        try:
            return JSONResponse(_session(request.cookies.get(SESSION_COOKIE)))
        except TokenRefused as exc:
            return problem_response(401, "Unauthorized", str(exc))

    @router.post("/ui/session")
    def sign_in(body: SignIn, request: Request) -> Response:
        """Check the token and keep it in the session cookie (never readable by scripts)."""
        try:
            described = _session(body.token.strip())
        except TokenRefused as exc:
            return problem_response(401, "Unauthorized", str(exc))
        response = JSONResponse(described)
        response.set_cookie(
            SESSION_COOKIE,
            body.token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @router.delete("/ui/session")
    def sign_out() -> Response:
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    router.routes.append(
        Mount(_VERSIONED, app=_ImmutableAssets(directory=ASSETS), name="ui-assets-versioned")
    )
    # Unversioned too (a page loaded before a deploy), checked again on every use.
    router.routes.append(
        Mount("/ui/assets", app=_RevalidatedAssets(directory=ASSETS), name="ui-assets")
    )
    return router
