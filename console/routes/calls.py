"""The calls API: search and lists (scoped to what the user may see), one call, its log, its
transcript (masked; unmasked only for the raw-text roles, by POST, audited) and the caller's history.

Every read of a call's content and every search writes an audit row (:class:`console.deps.Auditor`).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse

from .. import schemas
from ..access import may_read_raw
from ..deps import (
    Audited,
    Counselor,
    Csrf,
    CurrentUser,
    Overseer,
    SettingsDep,
    StoreDep,
    search_target,
    visible_call,
)
from ..vocabulary import AuditAction

log = logging.getLogger("dasan.console")

router = APIRouter(prefix="/api", tags=["calls"])


@router.get("/calls", response_model=schemas.Page[schemas.CallOut])
def api_calls(
    user: CurrentUser,
    store: StoreDep,
    audit: Audited,
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
    filters: dict[str, Any] = {
        "active": active,
        "day_from": day_from,
        "day_to": day_to,
        "counselor": counselor,
        "category": category,
        "keyword": keyword,
        "q": q,
    }
    calls, total = store.list_calls(user, offset=offset, limit=limit, **filters)
    audit(AuditAction.search, target=search_target(filters), detail=f"total={total} offset={offset}")
    return {"items": calls, "total": total, "offset": offset, "limit": limit}


@router.get("/board", response_model=list[schemas.BoardRow])
def api_board(user: Overseer, store: StoreDep) -> Any:
    # Not audited: polled every few seconds, and it shows the ongoing calls' metadata and the
    # latest (masked) draft answer, no transcript; opening a call from it is audited.
    return store.board(user)


@router.get("/calls/{call_id}", response_model=schemas.CallOut)
def api_call(call_id: str, user: CurrentUser, store: StoreDep, audit: Audited) -> Any:
    call = visible_call(store, user, call_id)
    audit(AuditAction.call_view, call_id)
    return call


@router.get("/calls/{call_id}/events", response_model=list[schemas.EventOut])
def api_events(
    call_id: str,
    user: CurrentUser,
    store: StoreDep,
    audit: Audited,
    after: Annotated[int, Query(ge=0, description="Last seq seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Any:
    visible_call(store, user, call_id)
    items = store.events_after(call_id, after, limit)
    audit(AuditAction.call_events, call_id, detail=f"after={after} n={len(items)}")
    return items


def _segments(store: Any, call_id: str, raw: bool) -> list[dict[str, Any]]:
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


@router.get("/calls/{call_id}/transcript", response_model=list[schemas.SegmentOut])
def api_transcript(
    call_id: str,
    user: CurrentUser,
    store: StoreDep,
    audit: Audited,
    raw: Annotated[bool, Query(description="No longer served by GET: use POST /transcript/raw")] = False,
) -> Any:
    """The masked transcript (final segments)."""
    if raw:
        raise HTTPException(
            status.HTTP_405_METHOD_NOT_ALLOWED,
            "원문은 POST /api/calls/{call_id}/transcript/raw 로 요청합니다 (열람은 감사 기록에 남습니다)",
        )
    visible_call(store, user, call_id)
    audit(AuditAction.transcript, call_id)
    return _segments(store, call_id, raw=False)


@router.post("/calls/{call_id}/transcript/raw", response_model=list[schemas.SegmentOut], dependencies=[Csrf])
def api_raw_transcript(
    call_id: str, user: CurrentUser, store: StoreDep, settings: SettingsDep, audit: Audited
) -> Any:
    """The unmasked transcript: roles in DASAN_CONSOLE_RAW_TEXT_ROLES only; every read is audited.

    A POST (with the CSRF token) rather than a GET: a read that writes an audit row in the reader's
    name is an action. A GET could be triggered by a link on another site, prefetched, replayed
    from history or cached, and its URL lands in proxy and browser logs.
    """
    visible_call(store, user, call_id)
    if not may_read_raw(user, settings.raw_text_roles):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "원문(마스킹 해제) 열람 권한이 없습니다")
    audit(AuditAction.raw_transcript, call_id, detail="POST /api/calls/{id}/transcript/raw")
    log.info("raw transcript read", extra={"call_id": call_id, "username": user.username})
    return JSONResponse(_segments(store, call_id, raw=True), headers={"Cache-Control": "no-store"})


@router.get("/calls/{call_id}/history", response_model=list[schemas.CallerHistoryEntry])
def api_history(call_id: str, user: CurrentUser, store: StoreDep, audit: Audited) -> Any:
    """The same caller's earlier calls (keyed hash of the number) with approved summaries only, of
    the calls the viewer's role and team allow (:func:`console.access.history_scope`)."""
    entries = store.caller_history(user, visible_call(store, user, call_id))
    audit(
        AuditAction.caller_history,
        call_id,
        detail=f"calls={','.join(e['call_id'] for e in entries)[:1800]}" if entries else "calls=",
    )
    return entries


@router.get("/active-call", response_model=schemas.CallOut | None)
def api_active_call(user: Counselor, store: StoreDep) -> Any:
    """The counselor's newest ongoing call (the desk follows it; polled, not audited: its own call's
    record only, and opening it is audited by the websocket)."""
    calls, _ = store.list_calls(user, active=True, limit=1)
    return calls[0] if calls else None
