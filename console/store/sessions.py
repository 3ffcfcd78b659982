"""Server-side sessions: one row per logged-in browser, keyed by the SHA-256 of the cookie's token.

A session is valid while its row exists, its absolute end (``expires_at``) has not passed, it was
used within the idle timeout, and its user is active. Log-out deletes the row; deactivating a user
or changing a password deletes all of theirs; expired rows are deleted when met and by the
retention job.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, or_, select, update

from ..models import SessionRecord, User
from .base import StoreBase, rowcount

# last_seen_at is written at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=60)


class Sessions(StoreBase):
    def create_session(
        self,
        sid_hash: str,
        user_id: int,
        csrf: str,
        lifetime_s: int,
        ip: str | None,
        user_agent: str | None,
    ) -> SessionRecord:
        now = self.now()
        with self.sessions.begin() as db:
            row = SessionRecord(
                id=sid_hash,
                user_id=user_id,
                csrf=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(seconds=lifetime_s),
                ip=(ip or "")[:64] or None,
                user_agent=(user_agent or "")[:200] or None,
            )
            db.add(row)
            return row

    def session_user(self, sid_hash: str, idle_s: int) -> tuple[User, SessionRecord] | None:
        """The user and session of a valid session, or ``None`` (an ended one is deleted on the way)."""
        now = self.now()
        with self.sessions() as db:
            found = db.execute(
                select(User, SessionRecord)
                .join(SessionRecord, SessionRecord.user_id == User.id)
                .where(SessionRecord.id == sid_hash)
            ).first()
        if found is None:
            return None
        user, sess = found
        if not user.active or sess.expires_at <= now or sess.last_seen_at + timedelta(seconds=idle_s) <= now:
            self.delete_session(sid_hash)
            return None
        if now - sess.last_seen_at >= TOUCH_EVERY:
            with self.sessions.begin() as db:
                db.execute(update(SessionRecord).where(SessionRecord.id == sid_hash).values(last_seen_at=now))
            sess.last_seen_at = now
        return user, sess

    def delete_session(self, sid_hash: str) -> bool:
        with self.sessions.begin() as db:
            return bool(rowcount(db.execute(delete(SessionRecord).where(SessionRecord.id == sid_hash))))

    def revoke_sessions(self, user_id: int) -> int:
        """End every session of a user; returns how many there were."""
        with self.sessions.begin() as db:
            res = db.execute(delete(SessionRecord).where(SessionRecord.user_id == user_id))
            return rowcount(res)

    def session_counts(self) -> dict[int, int]:
        """Open sessions per user id (for the users page)."""
        now = self.now()
        with self.sessions() as db:
            rows = db.execute(
                select(SessionRecord.user_id, func.count())
                .where(SessionRecord.expires_at > now)
                .group_by(SessionRecord.user_id)
            ).all()
        return {uid: n for uid, n in rows}

    def purge_sessions(self, idle_s: int) -> int:
        """Delete sessions past their absolute end or idle longer than ``idle_s`` (retention)."""
        now = self.now()
        with self.sessions.begin() as db:
            res = db.execute(
                delete(SessionRecord).where(
                    or_(
                        SessionRecord.expires_at <= now,
                        SessionRecord.last_seen_at <= now - timedelta(seconds=idle_s),
                    )
                )
            )
            return rowcount(res)
