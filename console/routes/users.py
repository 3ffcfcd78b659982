"""Users: who am I (anyone); list, create, deactivate / activate, new password and end sessions
(admins). Every administrative action is audited; deactivating and a new password end the user's
sessions at once (open websockets close at their next check)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from .. import schemas
from ..auth import generate_password, hash_password
from ..deps import Admin, Audited, Csrf, CurrentUser, StoreDep
from ..store import Store
from ..vocabulary import AuditAction

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/me", response_model=schemas.UserOut)
def me(user: CurrentUser) -> Any:
    return user


@router.get("/users", response_model=list[schemas.UserOut])
def api_users(user: Admin, store: StoreDep) -> Any:
    return store.list_users()


@router.post("/users", response_model=schemas.UserCreated, status_code=201, dependencies=[Csrf])
def api_add_user(body: schemas.UserIn, user: Admin, store: StoreDep, audit: Audited) -> Any:
    password = body.password or generate_password()
    created = store.add_user(body.username, hash_password(password), body.role, body.team, body.display_name)
    audit(AuditAction.user_create, target=created.username, detail=f"role={created.role} team={created.team}")
    out = {
        **schemas.UserOut.model_validate(created).model_dump(mode="json"),
        "password": None if body.password else password,
    }
    return JSONResponse(out, status_code=201, headers={"Cache-Control": "no-store"})


def set_active(store: Store, admin: Any, username: str, active: bool, audit: Any) -> Any:
    if not active and username == admin.username:
        raise HTTPException(status.HTTP_409_CONFLICT, "자기 계정은 중지할 수 없습니다")
    user, ended = store.set_active(username, active)
    audit(
        AuditAction.user_activate if active else AuditAction.user_deactivate,
        target=username,
        detail=f"sessions_ended={ended}",
    )
    return user


@router.post("/users/{username}/deactivate", response_model=schemas.UserOut, dependencies=[Csrf])
def api_deactivate(username: str, user: Admin, store: StoreDep, audit: Audited) -> Any:
    """The user can no longer log in; every session ends now."""
    return set_active(store, user, username, False, audit)


@router.post("/users/{username}/activate", response_model=schemas.UserOut, dependencies=[Csrf])
def api_activate(username: str, user: Admin, store: StoreDep, audit: Audited) -> Any:
    return set_active(store, user, username, True, audit)


def new_password(store: Store, username: str, password: str | None, audit: Any) -> tuple[Any, str | None]:
    chosen = password or generate_password()
    user, ended = store.change_password(username, hash_password(chosen))
    audit(AuditAction.user_password, target=username, detail=f"sessions_ended={ended}")
    return user, None if password else chosen


@router.post("/users/{username}/password", response_model=schemas.UserCreated, dependencies=[Csrf])
def api_password(
    username: str, user: Admin, store: StoreDep, audit: Audited, body: schemas.PasswordIn | None = None
) -> Any:
    """A new password (generated and returned once if none is given); the user's sessions end."""
    changed, generated = new_password(store, username, body.password if body else None, audit)
    out = {**schemas.UserOut.model_validate(changed).model_dump(mode="json"), "password": generated}
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


@router.delete("/users/{username}/sessions", dependencies=[Csrf])
def api_end_sessions(username: str, user: Admin, store: StoreDep, audit: Audited) -> Any:
    """Log the user out everywhere (the account stays active)."""
    target = store.user_by_name(username)
    if target is None:
        raise HTTPException(404, f"찾을 수 없습니다: {username}")
    ended = store.revoke_sessions(target.id)
    audit(AuditAction.user_sessions_revoke, target=username, detail=f"sessions_ended={ended}")
    return {"username": username, "sessions_ended": ended}
