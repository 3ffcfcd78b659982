"""Console users (passwords are hashed by :mod:`console.auth` before they get here).

Deactivating a user or changing a password ends all of that user's sessions in the same
transaction; re-creating an existing user (``--reset``) never re-activates it silently.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..models import SessionRecord, User
from ..vocabulary import Role
from .base import Conflict, NotFound, StoreBase, rowcount


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
        """New password (and role/team) for an existing user; its sessions end. A deactivated user
        stays deactivated (``activate_user`` re-activates, on purpose)."""
        with self.sessions.begin() as db:
            user = self._user(db, username)
            user.password_hash, user.role, user.team = password_hash, Role(role), team
            if display_name:
                user.display_name = display_name
            db.execute(delete(SessionRecord).where(SessionRecord.user_id == user.id))
            db.flush()
            return user

    def set_active(self, username: str, active: bool) -> tuple[User, int]:
        """Activate or deactivate a user; deactivating ends its sessions. Returns the user and how
        many sessions ended."""
        with self.sessions.begin() as db:
            user = self._user(db, username)
            user.active = active
            ended = 0
            if not active:
                ended = rowcount(db.execute(delete(SessionRecord).where(SessionRecord.user_id == user.id)))
            db.flush()
            return user, ended

    def change_password(self, username: str, password_hash: str) -> tuple[User, int]:
        """A new password hash; every session of the user ends (returns how many)."""
        with self.sessions.begin() as db:
            user = self._user(db, username)
            user.password_hash = password_hash
            ended = rowcount(db.execute(delete(SessionRecord).where(SessionRecord.user_id == user.id)))
            db.flush()
            return user, ended

    @staticmethod
    def _user(db: Session, username: str) -> User:
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(username)
        return user

    def user_by_name(self, username: str) -> User | None:
        with self.sessions() as db:
            return db.scalar(select(User).where(User.username == username))

    def user_by_id(self, user_id: int) -> User | None:
        with self.sessions() as db:
            return db.get(User, user_id)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """A rehash of the same password (argon2 parameters changed): sessions stay."""
        with self.sessions.begin() as db:
            user = db.get(User, user_id)
            if user is not None:
                user.password_hash = password_hash

    def list_users(self) -> Sequence[User]:
        with self.sessions() as db:
            return db.scalars(select(User).order_by(User.role, User.username)).all()
