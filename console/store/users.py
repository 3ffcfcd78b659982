"""Console users (passwords are hashed by :mod:`console.auth` before they get here)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update

from ..models import User
from ..vocabulary import Role
from .base import Conflict, NotFound, StoreBase


class Users(StoreBase):
    def add_user(
        self,
        username: str,
        password_hash: str,
        role: Role | str,
        team: str | None,
        display_name: str | None = None,
    ) -> User:
        with self.sessions.begin() as db:
            if db.scalar(select(User).where(User.username == username)) is not None:
                raise Conflict(f"user {username!r} already exists")
            user = User(
                username=username,
                password_hash=password_hash,
                role=Role(role),
                team=team,
                display_name=display_name,
                active=True,
                created_at=self.now(),
            )
            db.add(user)
            db.flush()
            return user

    def reset_user(
        self,
        username: str,
        password_hash: str,
        role: Role | str,
        team: str | None,
        display_name: str | None = None,
    ) -> User:
        """New password (and role/team) for an existing user, re-activating it."""
        with self.sessions.begin() as db:
            user = db.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(username)
            user.password_hash, user.role, user.team, user.active = password_hash, Role(role), team, True
            if display_name:
                user.display_name = display_name
            db.flush()
            return user

    def user_by_name(self, username: str) -> User | None:
        with self.sessions() as db:
            return db.scalar(select(User).where(User.username == username))

    def user_by_id(self, user_id: int) -> User | None:
        with self.sessions() as db:
            return db.get(User, user_id)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        with self.sessions.begin() as db:
            db.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))

    def list_users(self) -> Sequence[User]:
        with self.sessions() as db:
            return db.scalars(select(User).order_by(User.role, User.username)).all()
