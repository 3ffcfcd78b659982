"""Regulations for counselors: the search (``/api/search``), full articles for citation clicks and
search results (``/api/articles``, the exact version cited) and the knowledge-base version in use
(``/api/kb``).

The search and the versions come from the assist service's internal API over loopback
(:mod:`console.assist_client`): the same knowledge base as the cards, and no encoder in the
console. Queries are masked before they leave the console, and only the masked query is audited
(the access log has a keyed hash of the query string, never the text).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from streaming.privacy import mask_text

from .. import schemas
from ..assist_client import AssistUnavailable
from ..deps import AssistDep, Audited, CorpusDep, CurrentUser, KbReader
from ..store import NotFound
from ..vocabulary import AuditAction

log = logging.getLogger("dasan.console")
router = APIRouter(prefix="/api", tags=["knowledge"])

UNAVAILABLE = "규정 검색을 지금 사용할 수 없습니다 (상담 도우미 서비스 응답 없음)"


@router.get("/search", response_model=schemas.KbSearchOut)
def api_search(
    user: KbReader,
    assist: AssistDep,
    audit: Audited,
    q: Annotated[str, Query(min_length=1, max_length=200, description="What to look for")],
    law: Annotated[str | None, Query(max_length=100, description="Only this law or ordinance")] = None,
    district: Annotated[
        str | None,
        Query(max_length=20, description="The caller's district, e.g. 강남구: its ordinance first"),
    ] = None,
    topic: Annotated[str | None, Query(max_length=50, description="Only this topic tag")] = None,
    as_of: Annotated[date | None, Query(description="Rules in force on this day (default today)")] = None,
    k: Annotated[int, Query(ge=1, le=20)] = 8,
) -> Any:
    masked = mask_text(q)
    target = ";".join(
        f"{name}={value}"
        for name, value in (
            ("q", masked),
            ("law", law),
            ("district", district),
            ("topic", topic),
            ("as_of", as_of),
        )
        if value
    )[:128]
    try:
        answer = assist.search(
            q=masked, law=law, district=district, topic=topic, as_of=as_of.isoformat() if as_of else None, k=k
        )
    except AssistUnavailable as exc:
        log.warning("regulation search unavailable", extra={"error": str(exc)})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from exc
    if answer is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "검색어를 확인해 주세요")
    audit(AuditAction.kb_search, target=target, detail=f"n={len(answer['results'])} kb={answer['index_key']}")
    return {"query": masked, "district": district, **answer}


@router.get("/articles", response_model=schemas.ArticleVersionOut)
def api_article(
    id: Annotated[str, Query(max_length=200, description="Corpus record id (passage doc_id)")],
    user: CurrentUser,
    corpus: CorpusDep,
    assist: AssistDep,
    effective_date: Annotated[
        date | None, Query(description="The version that took effect on this day (the one cited)")
    ] = None,
) -> Any:
    """The exact version cited (record id + effective date), whether a newer one exists and the
    별표 it mentions; when the assist service is away, the corpus file's last record of the id
    (whatever its date: better the text than nothing while the service restarts)."""
    try:
        art = assist.article(id, effective_date.isoformat() if effective_date else None)
    except AssistUnavailable:
        art = None
        art = corpus.article(id)  # the corpus file's last record of this id
    if art is None:
        raise NotFound(id)
    return art


@router.get("/kb", response_model=schemas.KbVersionOut)
def api_kb(user: KbReader, assist: AssistDep) -> Any:
    """The knowledge-base version the assist service uses now (shown on the desk)."""
    try:
        info = assist.kb()
    except AssistUnavailable:
        return {"index_key": None, "available": False}
    return {"index_key": info.get("index_key"), "records": info.get("records"), "available": bool(info)}
