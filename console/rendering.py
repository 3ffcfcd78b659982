"""Server-rendered pages (Jinja2, templates in console/templates/) and how errors are answered:
JSON ``{"detail": …}`` for the API and for clients that do not ask for HTML, an error page otherwise."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from . import schemas
from .access import scope_notice
from .auth import LoginRequired, csrf_token, current_user
from .models import Call, User
from .store import Conflict, NotFound
from .vocabulary import ACTION_LABEL, DISTRICTS, ROLE_LABEL, STATUS_LABEL

TEMPLATES = Path(__file__).resolve().parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES)
templates.env.globals.update(
    ROLE_LABEL=ROLE_LABEL, STATUS_LABEL=STATUS_LABEL, ACTION_LABEL=ACTION_LABEL, DISTRICTS=DISTRICTS
)


def page(request: Request, name: str, user: User | None, **ctx: Any) -> HTMLResponse:
    """A page: every template gets the user, the session's CSRF token, the settings and, where the
    user's access is empty by configuration, a notice saying why."""
    return templates.TemplateResponse(
        request,
        name,
        {
            "user": user,
            "csrf": csrf_token(request),
            "settings": request.app.state.settings,
            "scope_notice": scope_notice(user) if user else None,
            **ctx,
        },
    )


def call_view(call: Call) -> dict[str, Any]:
    """A call as the page templates read it: the API's JSON shape."""
    return schemas.CallOut.model_validate(call).model_dump()


def parse_day(value: str | None) -> date | None:
    """A date from a page's query string (``YYYY-MM-DD``); blank: none; anything else: 400."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(400, f"날짜 형식이 잘못되었습니다: {value}") from exc


def error_response(request: Request, code: int, detail: str) -> Response:
    if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": detail}, status_code=code)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"code": code, "detail": detail, "user": _maybe_user(request), "csrf": csrf_token(request)},
        code,
    )


def _maybe_user(request: Request) -> User | None:
    try:
        return current_user(request)
    except (LoginRequired, HTTPException):
        return None


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status.HTTP_303_SEE_OTHER)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return error_response(request, 404, f"찾을 수 없습니다: {exc}")

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        return error_response(request, 409, str(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return error_response(request, exc.status_code, str(exc.detail))
