"""The audit log: who read or did what, about which call or target, when and from where.

Append-only: this module only inserts. Rows leave the table through the retention job
(:mod:`console.retention`) and an erasure (which rewrites the call ids of erased calls), both
inside :meth:`Audit.unlocked_audit`, the one transaction the database triggers let through.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, select, true
from sqlalchemy.orm import Session

from ..models import AuditLog, AuditUnlock
from ..schemas import AuditEntry
from .base import StoreBase


@dataclass(frozen=True)
class Actor:
    """Who acts: a console user (name and role) from an address, or a command-line operator."""

    username: str
    role: str
    ip: str | None = None


class Audit(StoreBase):
    def audit(
        self,
        actor: Actor,
        action: str,
        call_id: str | None = None,
        *,
        target: str | None = None,
        detail: str | None = None,
    ) -> None:
        with self.sessions.begin() as db:
            db.add(
                AuditLog(
                    username=actor.username[:64],
                    role=actor.role[:16],
                    action=str(action)[:32],
                    call_id=call_id,
                    target=target[:128] if target else None,
                    detail=detail[:2000] if detail else None,
                    ip=actor.ip[:64] if actor.ip else None,
                    at=self.now(),
                )
            )

    def audit_page(
        self,
        *,
        username: str | None = None,
        action: str | None = None,
        call_id: str | None = None,
        day_from: date | None = None,
        day_to: date | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of entries, newest first, and the cursor of the next page (``before``) or None.

        ``day_from``/``day_to``: the site's dates, inclusive. ``before``: an entry id from the
        previous page's cursor; paging by id stays right while new entries arrive.
        """
        cond: list[ColumnElement[bool]] = []
        if username:
            cond.append(AuditLog.username == username)
        if action:
            cond.append(AuditLog.action == action)
        if call_id:
            cond.append(AuditLog.call_id == call_id)
        if day_from:
            cond.append(AuditLog.at >= self.day_start(day_from))
        if day_to:
            cond.append(AuditLog.at < self.day_start(day_to + timedelta(days=1)))
        if before is not None:
            cond.append(AuditLog.id < before)
        with self.sessions() as db:
            rows = db.scalars(
                select(AuditLog).where(and_(true(), *cond)).order_by(AuditLog.id.desc()).limit(limit + 1)
            ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [AuditEntry.model_validate(a).model_dump() for a in rows]
        return items, (rows[-1].id if more and rows else None)

    def audit_entries(self, call_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest entries first (of one call, if given)."""
        return self.audit_page(call_id=call_id, limit=limit)[0]

    @contextlib.contextmanager
    def unlocked_audit(self, job: str, *, commit: bool = True) -> Iterator[Session]:
        """A transaction in which audit rows may be deleted or rewritten (retention, erasure only).
        ``commit=False`` rolls everything back at the end (a dry run that counts)."""
        with self.sessions() as db:
            try:
                unlock = AuditUnlock(job=job[:32])
                db.add(unlock)
                db.flush()
                yield db
                db.execute(delete(AuditUnlock).where(AuditUnlock.id == unlock.id))
                if commit:
                    db.commit()
                else:
                    db.rollback()
            except BaseException:
                db.rollback()
                raise
