"""The audit log (admins): every read of call content, search, live stream, log-in and
administrative action, newest first, a page at a time (cursor ``before``), filtered by user,
action, call and date. Reading it is audited too."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from .. import schemas
from ..deps import Admin, Audited, StoreDep
from ..vocabulary import AuditAction

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/audit", response_model=schemas.AuditPage)
def api_audit(
    user: Admin,
    store: StoreDep,
    audit: Audited,
    username: Annotated[str | None, Query(alias="user", max_length=64)] = None,
    action: Annotated[AuditAction | None, Query()] = None,
    call_id: Annotated[str | None, Query(max_length=64)] = None,
    day_from: date | None = None,
    day_to: date | None = None,
    before: Annotated[
        int | None, Query(ge=1, description="Cursor: `next_before` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    items, next_before = store.audit_page(
        username=username,
        action=action,
        call_id=call_id,
        day_from=day_from,
        day_to=day_to,
        before=before,
        limit=limit,
    )
    filters = {"user": username, "action": action, "call_id": call_id, "day_from": day_from, "day_to": day_to}
    audit(
        AuditAction.audit_read,
        call_id,
        target=";".join(f"{k}={v}" for k, v in filters.items() if v)[:128] or None,
        detail=f"before={before} n={len(items)}",
    )
    return {"items": items, "next_before": next_before}
