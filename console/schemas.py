"""Payloads of the JSON API (documented in the OpenAPI schema at /docs)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from .vocabulary import ReviewAction, Role, SummaryStatus, Vote

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


class CallOut(BaseModel):
    call_id: str
    counselor_id: str | None
    team: str | None
    category: str | None
    topic: str | None
    caller_number_masked: str | None
    source: str = Field(description="asr | scripted (a simulated call)")
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    active: bool
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


class SummaryOut(BaseModel):
    summary_id: str
    call_id: str
    status: SummaryStatus = Field(description="draft | submitted (under review) | approved | rejected")
    edited: bool
    category: str
    content: dict[str, Any]
    original: dict[str, Any]
    created_at: str | None
    updated_at: str | None


class ReviewItem(BaseModel):
    summary: SummaryOut
    call: CallOut


class HistoryEntry(BaseModel):
    action: str
    actor: str
    comment: str | None
    content: dict[str, Any] | None
    at: str | None


class SubmitIn(BaseModel):
    content: SummaryContent | None = Field(default=None, description="Edited summary; omitted: as generated")


class ReviewIn(BaseModel):
    action: Literal[ReviewAction.approve, ReviewAction.edit, ReviewAction.reject]
    comment: str | None = Field(default=None, max_length=2000)
    content: SummaryContent | None = Field(default=None, description="Required for 'edit'")


class FeedbackIn(BaseModel):
    vote: Vote
    reason: str | None = Field(default=None, max_length=1000)


class FeedbackOut(BaseModel):
    suggestion_id: str
    username: str
    kind: str
    value: str | None
    reason: str | None
    at: str | None


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


class UserOut(BaseModel):
    id: int
    username: str
    role: str
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
