"""Log-in (throttled per address and per user name before any hashing, hashing in a bounded pool,
a fresh server-side session), log-out (the session's record deleted), and each role's home page.

Every failed log-in is logged (a pseudonym of the typed name, the address, the reason; never the
password) and audited; the route is async so that log-ins waiting for a hashing slot hold no thread.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..auth import (
    CSRF_FIELD,
    LoginResult,
    actor,
    authenticate,
    check_csrf,
    client_ip,
    end_session,
    start_session,
    user_ref,
)
from ..deps import CurrentUser
from ..login_guard import LOGINS, Busy, LoginGuard
from ..rendering import page
from ..store import Actor, Store
from ..vocabulary import AuditAction, Role

log = logging.getLogger("dasan.console")

router = APIRouter(include_in_schema=False)

BAD_CREDENTIALS = "아이디 또는 비밀번호가 맞지 않습니다."
THROTTLED = "로그인 시도가 너무 많습니다. {s}초 뒤에 다시 시도해 주세요."
BUSY = "로그인 요청이 몰려 있습니다. 잠시 뒤에 다시 시도해 주세요."


def _safe_next(target: str) -> str:
    """Only a path on this site (no ``//host``): log-in never redirects elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "login.html", None, next=_safe_next(next), error=None, username="")


def _refused(
    request: Request, code: int, error: str, username: str, next: str, retry_after: int | None
) -> Response:
    resp = page(
        request, "login.html", None, next=_safe_next(next), error=error, username=username.strip()[:64]
    )
    resp.status_code = code
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def _failed(
    request: Request, store: Store, username: str, reason: str, result: LoginResult | None = None
) -> None:
    """Log and audit a refused log-in: the typed name only as a pseudonym in the logs; in the audit
    log the account's name when it exists (an administrator must see who is being guessed)."""
    settings = request.app.state.settings
    ip = client_ip(request)
    ref = user_ref(username, settings.session_secret.get_secret_value())
    log.warning("login failed", extra={"user_ref": ref, "ip": ip, "reason": reason})
    known = store.user_by_name(username) if reason not in ("throttled_ip", "busy") else None
    who = Actor(known.username, known.role, ip) if known else Actor("(unknown)", "-", ip)
    store.audit(who, AuditAction.login_failed, target=None if known else f"ref:{ref}", detail=reason)


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    store: Store = request.app.state.store
    guard: LoginGuard = request.app.state.login_guard
    ip = client_ip(request)
    name = username.strip()
    # 1. per address, before anything else (no database, no hash)
    wait = guard.admit_ip(ip)
    if wait is not None:
        LOGINS.labels(outcome="throttled_ip").inc()
        if guard.first_refusal("ip", ip):
            await run_in_threadpool(_failed, request, store, name, "throttled_ip")
        return _refused(request, 429, THROTTLED.format(s=wait), name, next, wait)
    await run_in_threadpool(check_csrf, request, csrf_token_)
    # 2. per user name
    wait = guard.admit_user(name)
    if wait is not None:
        LOGINS.labels(outcome="throttled_user").inc()
        if guard.first_refusal("user", guard.user_key(name)):
            await run_in_threadpool(_failed, request, store, name, "throttled_user")
        return _refused(request, 429, THROTTLED.format(s=wait), name, next, wait)
    # 3. one of a few hashing slots, or 503 at once
    try:
        async with guard.slot():
            result = await run_in_threadpool(authenticate, store, name, password)
    except Busy:
        # The attempt still counts against the address: a flood must not keep the pool full for free.
        LOGINS.labels(outcome="busy").inc()
        if guard.first_refusal("busy", ip):
            await run_in_threadpool(_failed, request, store, name, "busy")
        return _refused(request, 503, BUSY, name, next, 2)
    if result.user is None:
        guard.failed(name)
        LOGINS.labels(outcome=result.reason or "bad_password").inc()
        await run_in_threadpool(_failed, request, store, name, result.reason or "bad_password", result)
        return _refused(request, 401, BAD_CREDENTIALS, name, next, None)
    user = result.user
    guard.succeeded(ip, name)
    await run_in_threadpool(start_session, request, user)
    await run_in_threadpool(store.audit, actor(request, user), AuditAction.login)
    LOGINS.labels(outcome="ok").inc()
    log.info("login", extra={"username": user.username, "role": user.role, "ip": ip})
    target = _safe_next(next)
    return RedirectResponse(Role(user.role).home if target == "/" else target, status.HTTP_303_SEE_OTHER)


@router.post("/logout")
def logout(request: Request, csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> Response:
    check_csrf(request, csrf_token_)
    auth = end_session(request)
    if auth is not None:
        request.app.state.store.audit(actor(request, auth.user), AuditAction.logout)
    return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)


@router.get("/")
def home(user: CurrentUser) -> Response:
    return RedirectResponse(Role(user.role).home, status.HTTP_303_SEE_OTHER)
