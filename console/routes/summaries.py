"""Call summaries and their review: read (not while under review, for counselors), submit
(the counselor of the call), the review queue, and decisions (supervisors)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from .. import schemas
from ..access import owns_call
from ..deps import (
    Audited,
    Counselor,
    Csrf,
    CurrentUser,
    Reviewer,
    ReviewReader,
    StoreDep,
    readable_summary,
    visible_call,
)
from ..vocabulary import AuditAction, ReviewAction, SummaryStatus

router = APIRouter(prefix="/api", tags=["summaries"])


@router.get("/calls/{call_id}/summary", response_model=schemas.SummaryOut | None)
def api_call_summary(call_id: str, user: CurrentUser, store: StoreDep, audit: Audited) -> Any:
    visible_call(store, user, call_id)
    sm = store.summary_for_call(call_id)
    if sm is None:
        return None
    out = readable_summary(store, user, sm.summary_id)[0]
    audit(AuditAction.summary_view, call_id, target=sm.summary_id)
    return out


@router.get("/summaries/{summary_id}", response_model=schemas.SummaryOut)
def api_summary(summary_id: str, user: CurrentUser, store: StoreDep, audit: Audited) -> Any:
    sm, call = readable_summary(store, user, summary_id)
    audit(AuditAction.summary_view, call.call_id, target=summary_id)
    return sm


@router.get("/summaries/{summary_id}/history", response_model=list[schemas.HistoryEntry])
def api_summary_history(summary_id: str, user: CurrentUser, store: StoreDep, audit: Audited) -> Any:
    _sm, call = readable_summary(store, user, summary_id)
    audit(AuditAction.summary_view, call.call_id, target=summary_id, detail="review history")
    return store.review_history(summary_id)


@router.post("/summaries/{summary_id}/submit", response_model=schemas.SummaryOut, dependencies=[Csrf])
def api_submit(summary_id: str, body: schemas.SubmitIn, user: Counselor, store: StoreDep) -> Any:
    _sm, call = readable_summary(store, user, summary_id)
    if not owns_call(user, call):
        raise HTTPException(403, "자기 통화의 요약만 제출할 수 있습니다")
    content = body.content.model_dump() if body.content else None
    return store.review_action(summary_id, user.username, ReviewAction.submit, None, content)


@router.get("/reviews", response_model=schemas.Page[schemas.ReviewItem])
def api_reviews(
    user: ReviewReader,
    store: StoreDep,
    audit: Audited,
    status_: Annotated[SummaryStatus, Query(alias="status")] = SummaryStatus.submitted,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    rows, total = store.review_queue(user, status_, offset, limit)
    audit(AuditAction.search, target=f"reviews status={status_}", detail=f"total={total} offset={offset}")
    items = [{"summary": sm, "call": c} for sm, c in rows]
    return {"items": items, "total": total, "offset": offset, "limit": limit}


@router.post("/summaries/{summary_id}/review", response_model=schemas.SummaryOut, dependencies=[Csrf])
def api_review(summary_id: str, body: schemas.ReviewIn, user: Reviewer, store: StoreDep) -> Any:
    readable_summary(store, user, summary_id)
    if body.action == ReviewAction.edit and body.content is None:
        raise HTTPException(422, "'edit' needs content")
    content = body.content.model_dump() if body.content else None
    return store.review_action(summary_id, user.username, body.action, body.comment, content)
