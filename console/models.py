"""The store of record: SQLAlchemy 2 models (the schema itself is created by Alembic migrations).

``call_events`` is the call's log as the browser sees it: every recorded event, masked, with a
per-call ``seq`` (1, 2, 3 … with no gaps) that websockets resume from and replay plays back.
The typed tables next to it are what queries, search, review and metrics read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and read back as an aware UTC datetime, on every database.

    PostgreSQL's ``timestamptz`` compares instants whatever the offset, but SQLite has no time
    zones: SQLAlchemy writes the *wall-clock* digits of an aware datetime and drops the offset,
    and compares those digits as text. An ``Asia/Seoul`` day boundary (``2026-03-11 00:00+09:00``)
    was compared as ``2026-03-11 00:00`` with calls stored in UTC, so between 15:00 and 24:00 UTC
    date search and "today's" metrics found nothing. Converting every value bound to these
    columns (stored values and the ones they are compared with) to UTC makes both agree.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)


TS = UTCDateTime()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    team: Mapped[str | None] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TS)


class Call(Base):
    __tablename__ = "calls"
    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    counselor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64), index=True)
    caller_number_masked: Mapped[str | None] = mapped_column(String(32))
    caller_key: Mapped[str | None] = mapped_column(String(128), index=True)
    source: Mapped[str] = mapped_column(String(16), default="asr")
    started_at: Mapped[datetime | None] = mapped_column(TS, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(TS)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    duration_s: Mapped[float | None] = mapped_column(Float)
    topic: Mapped[str | None] = mapped_column(String(200), doc="latest keywords, joined")
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(TS)

    @property
    def active(self) -> bool:
        """Started and not ended yet."""
        return self.ended_at is None and self.started_at is not None


class CallEvent(Base):
    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_id", "seq", name="uq_call_events_call_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(TS, doc="produced_at of the event (replay timing)")
    recorded_at: Mapped[datetime] = mapped_column(TS)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, doc="masked, as sent to browsers")


class Segment(Base):
    """Every revision of every transcript segment (partials for replay, the final for reading)."""

    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("call_id", "segment_id", "revision", "is_final", name="uq_segments_revision"),
        Index("ix_segments_call_final", "call_id", "is_final"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"))
    segment_id: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    is_final: Mapped[bool] = mapped_column(Boolean)
    channel: Mapped[str] = mapped_column(String(16))
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text_masked: Mapped[str] = mapped_column(Text)
    text_raw: Mapped[str] = mapped_column(Text, doc="unmasked ASR text: raw-text roles only, audited")
    confidence: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(TS)


class KeywordUpdate(Base):
    __tablename__ = "keyword_updates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    keywords: Mapped[list[Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(TS)


class SuggestionRow(Base):
    __tablename__ = "suggestions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    suggestion_id: Mapped[str] = mapped_column(String(80), unique=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    abstained: Mapped[bool] = mapped_column(Boolean)
    draft_text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(TS)


class Summary(Base):
    """A call summary from assist and its review state.

    status: ``draft`` (counselor may edit) → ``submitted`` (under review) → ``approved`` | ``rejected``.
    """

    __tablename__ = "summaries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    summary_id: Mapped[str] = mapped_column(String(80), unique=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(64), index=True)
    original: Mapped[dict[str, Any]] = mapped_column(JSON)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, doc="current text after edits")
    status: Mapped[str] = mapped_column(String(16), index=True)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)


class SummaryReview(Base):
    """History of a summary: submit / approve / edit / reject, who and when."""

    __tablename__ = "summary_reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    summary_id: Mapped[str] = mapped_column(
        ForeignKey("summaries.summary_id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    content: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(TS)


class ShadowSuggestion(Base):
    """A suggestion of a shadow assist (``assist.suggestions.shadow``): never in a call's log, never on
    a websocket; kept only to measure its agreement with production (doc ids, no text)."""

    __tablename__ = "shadow_suggestions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    variant: Mapped[str] = mapped_column(String(80), index=True)
    suggestion_id: Mapped[str] = mapped_column(String(80))
    trigger_segment_ids: Mapped[list[Any]] = mapped_column(JSON)
    abstained: Mapped[bool] = mapped_column(Boolean)
    cited: Mapped[list[Any]] = mapped_column(JSON, doc="doc ids the draft cites (the top passage if none)")
    at: Mapped[datetime] = mapped_column(TS, index=True)


class Feedback(Base):
    """👍/👎 (kind ``vote``, one per user and suggestion, last one counts) and draft copies (``copy``)."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suggestion_id: Mapped[str] = mapped_column(
        ForeignKey("suggestions.suggestion_id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str | None] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(TS)


class AuditLog(Base):
    """Who did or read what, when and from where: append-only (database triggers refuse UPDATE and
    DELETE outside the retention and erasure jobs, which unlock it inside their own transaction)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), index=True)
    call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(128), doc="the user, summary or search acted on")
    detail: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64), doc="client address")
    at: Mapped[datetime] = mapped_column(TS, index=True)


class AuditUnlock(Base):
    """A row here, inside the same transaction only, lets that transaction delete or rewrite audit
    rows: the retention job and the erasure of one caller insert it first and remove it before
    they commit. Every other transaction sees the table empty and the triggers refuse."""

    __tablename__ = "audit_unlock"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(32))


class ErasedCall(Base):
    """A call erased on request (``dasan privacy erase``): the SHA-256 of its id, so that the
    recorder does not bring it back from Kafka (a replay, a new consumer group) while the topics
    still hold its events. Kept until the longest topic retention has passed; the call id itself
    is not kept."""

    __tablename__ = "erased_calls"
    call_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(TS, index=True)


class SessionRecord(Base):
    """A logged-in browser. The cookie carries a random token; this row is keyed by its SHA-256, so
    the table alone does not let anyone log in. Deleting the row ends the session everywhere."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TS)
    last_seen_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS, index=True, doc="absolute end, whatever the activity")
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))
