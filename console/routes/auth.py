"""Log-in (form with CSRF token, argon2 check, fresh session), log-out, and each role's home page."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..auth import CSRF_FIELD, authenticate, check_csrf, login_session
from ..deps import CurrentUser, StoreDep
from ..rendering import page
from ..vocabulary import Role

log = logging.getLogger("dasan.console")

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str:
    """Only a path on this site (no ``//host``): log-in never redirects elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "login.html", None, next=_safe_next(next), error=None, username="")


@router.post("/login")
def login(
    request: Request,
    store: StoreDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    check_csrf(request, csrf_token_)
    user = authenticate(store, username.strip(), password)
    if user is None:
        resp = page(
            request,
            "login.html",
            None,
            next=_safe_next(next),
            error="아이디 또는 비밀번호가 맞지 않습니다.",
            username=username.strip()[:64],
        )
        resp.status_code = 401
        return resp
    login_session(request, user)
    log.info("login", extra={"username": user.username, "role": user.role})
    target = _safe_next(next)
    return RedirectResponse(Role(user.role).home if target == "/" else target, status.HTTP_303_SEE_OTHER)


@router.post("/logout")
def logout(request: Request, csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> Response:
    check_csrf(request, csrf_token_)
    request.session.clear()
    return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)


@router.get("/")
def home(user: CurrentUser) -> Response:
    return RedirectResponse(Role(user.role).home, status.HTTP_303_SEE_OTHER)
