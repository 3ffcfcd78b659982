"""Payloads of the JSON API (documented in the OpenAPI schema at /docs).

The ``…Out`` models are read straight from the ORM rows (``from_attributes``): routes return rows
and FastAPI serialises them through ``response_model``; pages and the store's dict-returning
queries call ``model_validate(row).model_dump()``. Timestamps travel as ISO 8601 strings in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .vocabulary import ReviewAction, Role, SummaryStatus, Vote

T = TypeVar("T")


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


Timestamp = Annotated[str, BeforeValidator(_iso)]


class FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


class CallOut(FromRow):
    call_id: str
    counselor_id: str | None
    team: str | None
    category: str | None
    topic: str | None
    caller_number_masked: str | None
    source: str = Field(description="asr | scripted (a simulated call)")
    started_at: Timestamp | None
    ended_at: Timestamp | None
    duration_s: float | None
    active: bool = Field(description="Started and not ended yet")
    last_seq: int


class BoardRow(CallOut):
    elapsed_s: float | None
    latest_suggestion: str | None


class EventOut(BaseModel):
    seq: int = Field(description="Per-call sequence number, 1, 2, 3 … without gaps")
    at: str
    event: dict[str, Any] = Field(description="Masked event as the browser shows it")


class SegmentOut(BaseModel):
    segment_id: str
    channel: str
    start_s: float
    end_s: float
    text: str
    masked: bool


class SummaryContent(BaseModel):
    category: str = Field(max_length=64)
    call_reason: str = Field(max_length=2000)
    key_facts: list[str] = Field(default_factory=list, max_length=50)
    counselor_answers: list[str] = Field(default_factory=list, max_length=50)
    actions: list[dict[str, str]] = Field(default_factory=list, max_length=50)
    regulations_cited: list[str] = Field(default_factory=list, max_length=50)
    entities: dict[str, list[str]] = Field(default_factory=dict)
    keywords: list[str] = Field(default_factory=list, max_length=20)
    generator: str = "edited"


class SummaryOut(FromRow):
    summary_id: str
    call_id: str
    status: SummaryStatus = Field(description="draft | submitted (under review) | approved | rejected")
    edited: bool
    category: str
    content: dict[str, Any]
    original: dict[str, Any]
    created_at: Timestamp | None
    updated_at: Timestamp | None


class ReviewItem(BaseModel):
    summary: SummaryOut
    call: CallOut


class HistoryEntry(FromRow):
    action: str
    actor: str
    comment: str | None
    content: dict[str, Any] | None
    at: Timestamp | None


class SubmitIn(BaseModel):
    content: SummaryContent | None = Field(default=None, description="Edited summary; omitted: as generated")


class ReviewIn(BaseModel):
    action: Literal[ReviewAction.approve, ReviewAction.edit, ReviewAction.reject]
    comment: str | None = Field(default=None, max_length=2000)
    content: SummaryContent | None = Field(default=None, description="Required for 'edit'")


class FeedbackIn(BaseModel):
    vote: Vote
    reason: str | None = Field(default=None, max_length=1000)


class FeedbackOut(FromRow):
    suggestion_id: str
    username: str
    kind: str
    value: str | None
    reason: str | None
    at: Timestamp | None


class ArticleOut(BaseModel):
    id: str
    citation: str | None
    law_name: str | None
    article_no: str | None
    article_title: str | None
    text: str | None
    effective_date: str | None
    law_go_kr_url: str | None
    kind: str | None


class KbSearchResult(BaseModel):
    record_id: str
    law_name: str
    article_no: str
    title: str | None
    citation: str
    applies_in: str = Field(description="대한민국, 서울특별시 or 서울특별시 <구>")
    effective_date: str | None
    sentence: str = Field(description="The matching sentence of the article")
    highlights: list[tuple[int, int]] = Field(description="[start, end) spans of query terms in the sentence")
    score: float
    local: bool = Field(description="The district's own ordinance")


class KbSearchOut(BaseModel):
    query: str = Field(description="The query as searched (masked)")
    district: str | None
    index_key: str = Field(description="Knowledge-base version (index key) that answered")
    results: list[KbSearchResult]


class AppendixOut(BaseModel):
    record_id: str
    label: str
    title: str | None


class ArticleVersionOut(ArticleOut):
    jurisdiction: str | None = None
    versions: list[str | None] = Field(default_factory=list, description="Effective dates of every version")
    newer_version: str | None = Field(default=None, description="Effective date of a later version")
    in_force: bool | None = None
    appendices: list[AppendixOut] = Field(default_factory=list)
    index_key: str | None = Field(default=None, description="Knowledge-base version that served it")


class KbVersionOut(BaseModel):
    index_key: str | None
    records: int | None = None
    available: bool


class UserOut(FromRow):
    id: int
    username: str
    role: Role
    team: str | None
    display_name: str | None
    active: bool


class UserIn(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.\-]{2,64}$")
    role: Role
    team: str | None = Field(default=None, max_length=64)
    display_name: str | None = Field(default=None, max_length=64)
    password: str | None = Field(default=None, min_length=10, max_length=200)


class UserCreated(UserOut):
    password: str | None = Field(description="The generated password, shown once")


class PasswordIn(BaseModel):
    password: str | None = Field(
        default=None, min_length=10, max_length=200, description="The new password; omitted: one is generated"
    )


class AuditEntry(FromRow):
    id: int
    username: str
    role: str
    action: str
    call_id: str | None
    target: str | None
    detail: str | None
    ip: str | None
    at: Timestamp | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null: no more")


class CallerHistoryEntry(BaseModel):
    """An earlier call of the same caller, with its approved summary."""

    call_id: str
    started_at: Timestamp | None
    counselor_id: str | None
    category: str
    summary: dict[str, Any]


class Metrics(BaseModel):
    day: str
    calls: int
    avg_handle_time_s: float | None
    suggestions: int
    thumbs_up: int
    thumbs_down: int
    thumbs_up_rate: float | None
    drafts_copied: int
    draft_copy_rate: float | None
    summaries_approved: int
    summaries_approved_without_edit: int
    approved_without_edit_rate: float | None
    summaries_pending: int
