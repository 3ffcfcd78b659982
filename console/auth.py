"""Passwords (argon2), server-side sessions, CSRF and roles.

The session cookie (Starlette's signed ``SessionMiddleware`` cookie, ``HttpOnly``) carries only a
random token (``sid``); the session itself is a row in ``sessions`` keyed by the token's SHA-256
(:mod:`console.store.sessions`), holding the user, the CSRF token, the idle and absolute limits.
Before log-in the cookie holds only the log-in form's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request, status
from fastapi.requests import HTTPConnection

from .models import SessionRecord, User
from .store import Actor, Store
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


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    reason: str | None  # why it failed: unknown_user, bad_password, inactive


def authenticate(store: Store, username: str, password: str) -> LoginResult:
    """Check a password (one argon2 verification whatever the outcome: no enumeration by timing)."""
    user = store.user_by_name(username)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return LoginResult(None, "unknown_user" if user is None else "bad_password")
    if user is None:
        return LoginResult(None, "unknown_user")
    if not user.active:
        return LoginResult(None, "inactive")
    if _hasher.check_needs_rehash(user.password_hash):
        store.set_password_hash(user.id, hash_password(password))
    return LoginResult(user, None)


def user_ref(username: str, secret: str) -> str:
    """A stable pseudonym of a typed user name for logs (it may be a password typed in the wrong box)."""
    return hmac.new(secret.encode(), username.encode(), hashlib.sha256).hexdigest()[:12]


# --------------------------------------------------------------------------- sessions


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Authenticated:
    """A valid session: its user, its row, and the hash that names it (for re-checks)."""

    user: User
    session: SessionRecord

    @property
    def sid_hash(self) -> str:
        return self.session.id


def client_ip(conn: HTTPConnection) -> str:
    """The client's address (uvicorn resolves X-Forwarded-For from trusted proxies only)."""
    return conn.client.host if conn.client else "unknown"


def actor(conn: HTTPConnection, user: User) -> Actor:
    return Actor(user.username, user.role, client_ip(conn))


def resolve(conn: HTTPConnection) -> Authenticated | None:
    """The request's valid session, looked up once per request (``None`` if there is none)."""
    if hasattr(conn.state, "auth"):  # resolved before in this request
        cached: Authenticated | None = conn.state.auth
        return cached
    found: Authenticated | None = None
    token = conn.session.get("sid")
    if isinstance(token, str) and token:
        settings = conn.app.state.settings
        row = conn.app.state.store.session_user(token_hash(token), settings.session_idle_s)
        if row is not None:
            found = Authenticated(*row)
        else:
            conn.session.pop("sid", None)  # ended: the browser's cookie is cleared too
    conn.state.auth = found
    return found


def start_session(request: Request, user: User) -> Authenticated:
    """A fresh session for ``user`` (a new token: no session fixation)."""
    settings = request.app.state.settings
    token = secrets.token_urlsafe(32)
    row = request.app.state.store.create_session(
        token_hash(token),
        user.id,
        secrets.token_urlsafe(24),
        settings.session_max_age_s,
        client_ip(request),
        request.headers.get("user-agent"),
    )
    request.session.clear()
    request.session["sid"] = token
    auth = Authenticated(user, row)
    request.state.auth = auth
    return auth


def end_session(request: Request) -> Authenticated | None:
    """Log-out: the server's record is deleted, then the browser's cookie."""
    auth = resolve(request)
    if auth is not None:
        request.app.state.store.delete_session(auth.sid_hash)
    request.session.clear()
    request.state.auth = None
    return auth


# --------------------------------------------------------------------------- CSRF


def csrf_token(request: Request) -> str:
    """The session's CSRF token; before log-in, the log-in form's (kept in the cookie)."""
    auth = resolve(request)
    if auth is not None:
        return auth.session.csrf
    tok = request.session.get("csrf")
    if not tok:
        tok = secrets.token_urlsafe(24)
        request.session["csrf"] = tok
    return tok


def check_csrf(request: Request, submitted: str | None) -> None:
    auth = resolve(request)
    expected = auth.session.csrf if auth is not None else request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF 토큰이 없거나 맞지 않습니다")


async def require_csrf(request: Request) -> None:
    """For JSON API writes: the token travels in the X-CSRF-Token header."""
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(check_csrf, request, request.headers.get(CSRF_HEADER))


# --------------------------------------------------------------------------- users and roles


class LoginRequired(Exception):
    """Raised by page dependencies; the app turns it into a redirect to /login."""


def current_user(request: Request) -> User:
    auth = resolve(request)
    if auth is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "로그인이 필요합니다")
        raise LoginRequired()
    return auth.user


def require_roles(*roles: Role) -> Callable[[Request], User]:
    roles = tuple(Role(r) for r in roles)  # a misspelt role fails here, at start-up

    def dep(request: Request) -> User:
        user = current_user(request)
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "이 기능을 쓸 권한이 없습니다")
        return user

    return dep


def websocket_auth(conn: HTTPConnection) -> Authenticated | None:
    """The session of a websocket handshake (cookie), after an Origin check against CSWSH."""
    origin = conn.headers.get("origin")
    host = conn.headers.get("host")
    if origin and host and origin.split("://", 1)[-1] != host:
        return None
    return resolve(conn)


def session_still_valid(store: Store, auth: Authenticated, idle_s: int) -> bool:
    """For open websockets: the session has not been revoked or expired and the user is active."""
    return store.session_user(auth.sid_hash, idle_s) is not None
