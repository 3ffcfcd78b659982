"""The audit log (admins): who read unmasked transcripts, and when."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .. import schemas
from ..deps import Admin, StoreDep

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/audit", response_model=list[schemas.AuditEntry])
def api_audit(user: Admin, store: StoreDep, call_id: str | None = None) -> Any:
    return store.audit_entries(call_id)
