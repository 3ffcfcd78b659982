"""Passwords (argon2), sessions (signed cookie via Starlette's SessionMiddleware), CSRF and roles."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request, WebSocket, status

from .models import User
from .store import Store
from .vocabulary import Role

_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist (same cost: no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("dummy-password-for-timing")

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def authenticate(store: Store, username: str, password: str) -> User | None:
    user = store.user_by_name(username)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        store.set_password_hash(user.id, hash_password(password))
    return user


# --------------------------------------------------------------------------- sessions and CSRF


def csrf_token(request: Request) -> str:
    tok = request.session.get("csrf")
    if not tok:
        tok = secrets.token_urlsafe(24)
        request.session["csrf"] = tok
    return tok


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF 토큰이 없거나 맞지 않습니다")


async def require_csrf(request: Request) -> None:
    """For JSON API writes: the token travels in the X-CSRF-Token header."""
    check_csrf(request, request.headers.get(CSRF_HEADER))


def login_session(request: Request, user: User) -> None:
    request.session.clear()
    request.session["uid"] = user.id
    request.session["csrf"] = secrets.token_urlsafe(24)


def session_user(store: Store, session: dict[str, Any]) -> User | None:
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None
    user = store.user_by_id(uid)
    return user if user and user.active else None


class LoginRequired(Exception):
    """Raised by page dependencies; the app turns it into a redirect to /login."""


def current_user(request: Request) -> User:
    user = session_user(request.app.state.store, request.session)
    if user is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "로그인이 필요합니다")
        raise LoginRequired()
    return user


def require_roles(*roles: Role) -> Callable[[Request], User]:
    roles = tuple(Role(r) for r in roles)  # a misspelt role fails here, at start-up

    def dep(request: Request) -> User:
        user = current_user(request)
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "이 기능을 쓸 권한이 없습니다")
        return user

    return dep


def websocket_user(ws: WebSocket) -> User | None:
    """The user of a websocket handshake (session cookie), after an Origin check against CSWSH."""
    origin = ws.headers.get("origin")
    host = ws.headers.get("host")
    if origin and host and origin.split("://", 1)[-1] != host:
        return None
    return session_user(ws.app.state.store, ws.session)
