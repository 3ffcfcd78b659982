"""Users: who am I (anyone), list and create users (admins; a generated password is returned once)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .. import schemas
from ..auth import generate_password, hash_password
from ..deps import Admin, Csrf, CurrentUser, StoreDep

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/me", response_model=schemas.UserOut)
def me(user: CurrentUser) -> Any:
    return user


@router.get("/users", response_model=list[schemas.UserOut])
def api_users(user: Admin, store: StoreDep) -> Any:
    return store.list_users()


@router.post("/users", response_model=schemas.UserCreated, status_code=201, dependencies=[Csrf])
def api_add_user(body: schemas.UserIn, user: Admin, store: StoreDep) -> Any:
    password = body.password or generate_password()
    created = store.add_user(body.username, hash_password(password), body.role, body.team, body.display_name)
    return {
        **schemas.UserOut.model_validate(created).model_dump(),
        "password": None if body.password else password,
    }
