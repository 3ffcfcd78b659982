"""The audit log: who read what they may only read on record (unmasked transcripts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..models import AuditLog, User
from ..schemas import AuditEntry
from .base import StoreBase


class Audit(StoreBase):
    def audit(self, user: User, action: str, call_id: str | None, detail: str | None = None) -> None:
        with self.sessions.begin() as db:
            db.add(
                AuditLog(
                    username=user.username,
                    role=user.role,
                    action=action,
                    call_id=call_id,
                    detail=detail,
                    at=self.now(),
                )
            )

    def audit_entries(self, call_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest entries first."""
        with self.sessions() as db:
            stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
            if call_id:
                stmt = stmt.where(AuditLog.call_id == call_id)
            rows = db.scalars(stmt).all()
        return [AuditEntry.model_validate(a).model_dump() for a in rows]
