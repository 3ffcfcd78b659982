"""The calls API: search and lists (scoped to what the user may see), one call, its log, its
transcript (masked; unmasked only for the raw-text roles, audited) and the caller's history."""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from .. import schemas
from ..access import may_read_raw
from ..deps import Counselor, CurrentUser, Overseer, SettingsDep, StoreDep, visible_call

log = logging.getLogger("dasan.console")

router = APIRouter(prefix="/api", tags=["calls"])


@router.get("/calls", response_model=schemas.Page[schemas.CallOut])
def api_calls(
    user: CurrentUser,
    store: StoreDep,
    active: bool | None = None,
    day_from: date | None = None,
    day_to: date | None = None,
    counselor: str | None = None,
    category: str | None = None,
    keyword: str | None = Query(default=None, max_length=100),
    q: Annotated[
        str | None, Query(max_length=200, description="Full-text search in transcripts and summaries")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    calls, total = store.list_calls(
        user,
        active=active,
        day_from=day_from,
        day_to=day_to,
        counselor=counselor,
        category=category,
        keyword=keyword,
        q=q,
        offset=offset,
        limit=limit,
    )
    return {"items": calls, "total": total, "offset": offset, "limit": limit}


@router.get("/board", response_model=list[schemas.BoardRow])
def api_board(user: Overseer, store: StoreDep) -> Any:
    return store.board(user)


@router.get("/calls/{call_id}", response_model=schemas.CallOut)
def api_call(call_id: str, user: CurrentUser, store: StoreDep) -> Any:
    return visible_call(store, user, call_id)


@router.get("/calls/{call_id}/events", response_model=list[schemas.EventOut])
def api_events(
    call_id: str,
    user: CurrentUser,
    store: StoreDep,
    after: Annotated[int, Query(ge=0, description="Last seq seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Any:
    visible_call(store, user, call_id)
    return store.events_after(call_id, after, limit)


@router.get("/calls/{call_id}/transcript", response_model=list[schemas.SegmentOut])
def api_transcript(
    call_id: str,
    user: CurrentUser,
    store: StoreDep,
    settings: SettingsDep,
    raw: Annotated[
        bool, Query(description="Unmasked text: only roles in DASAN_CONSOLE_RAW_TEXT_ROLES; audited")
    ] = False,
) -> Any:
    visible_call(store, user, call_id)
    if raw:
        if not may_read_raw(user, settings.raw_text_roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "원문(마스킹 해제) 열람 권한이 없습니다")
        store.audit(user, "raw_transcript", call_id, "GET /api/calls/{id}/transcript?raw=true")
        log.info("raw transcript read", extra={"call_id": call_id, "username": user.username})
    return [
        {
            "segment_id": seg.segment_id,
            "channel": seg.channel,
            "start_s": seg.start_s,
            "end_s": seg.end_s,
            "text": seg.text_raw if raw and seg.text_raw else seg.text_masked,
            "masked": not (raw and seg.text_raw),
        }
        for seg in store.final_segments(call_id)
    ]


@router.get("/calls/{call_id}/history", response_model=list[schemas.CallerHistoryEntry])
def api_history(call_id: str, user: CurrentUser, store: StoreDep) -> Any:
    """The same caller's earlier calls (keyed hash of the number) with approved summaries only."""
    return store.caller_history(visible_call(store, user, call_id))


@router.get("/active-call", response_model=schemas.CallOut | None)
def api_active_call(user: Counselor, store: StoreDep) -> Any:
    """The counselor's newest ongoing call (the desk follows it)."""
    calls, _ = store.list_calls(user, active=True, limit=1)
    return calls[0] if calls else None
