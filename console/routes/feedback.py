"""Feedback on suggestions: 👍/👎 with a reason and draft copies (the counselor of the call only),
and the feedback a call received. Reasons are masked by the store before they are kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from .. import schemas
from ..access import owns_call
from ..deps import Audited, Counselor, Csrf, CurrentUser, StoreDep, visible_call
from ..vocabulary import AuditAction, FeedbackKind

router = APIRouter(prefix="/api", tags=["feedback"])


@router.get("/calls/{call_id}/feedback", response_model=list[schemas.FeedbackOut])
def api_call_feedback(call_id: str, user: CurrentUser, store: StoreDep, audit: Audited) -> Any:
    visible_call(store, user, call_id)
    audit(AuditAction.feedback_view, call_id)
    return store.feedback_for_call(call_id)


@router.post("/suggestions/{suggestion_id}/feedback", response_model=schemas.FeedbackOut, dependencies=[Csrf])
def api_feedback(suggestion_id: str, body: schemas.FeedbackIn, user: Counselor, store: StoreDep) -> Any:
    sug = store.get_suggestion(suggestion_id)
    call = visible_call(store, user, sug.call_id)
    if not owns_call(user, call):
        raise HTTPException(403, "자기 통화의 제안에만 평가할 수 있습니다")
    return store.add_feedback(
        sug, user.username, FeedbackKind.vote, body.vote, (body.reason or "").strip() or None
    )


@router.post("/suggestions/{suggestion_id}/copied", response_model=schemas.FeedbackOut, dependencies=[Csrf])
def api_copied(suggestion_id: str, user: Counselor, store: StoreDep) -> Any:
    sug = store.get_suggestion(suggestion_id)
    visible_call(store, user, sug.call_id)
    return store.add_feedback(sug, user.username, FeedbackKind.copy, None, None)
