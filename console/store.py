"""Reads and writes of the store of record.

``record(event)`` is the recorder's one write: idempotent on ``event_id`` (a unique column on
every table it writes; a redelivered event is recognised and ignored), and it gives each new
event the call's next ``seq`` so that websockets resume and replays play without gaps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Select, and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from streaming.events import (
    CallEnded,
    CallStarted,
    CallSummary,
    Event,
    KeywordsUpdated,
    Suggestion,
    TranscriptSegment,
)
from streaming.privacy import mask_text

from .access import visible_calls
from .db import make_sessionmaker
from .models import (
    AuditLog,
    Call,
    CallEvent,
    Feedback,
    KeywordUpdate,
    Segment,
    SuggestionRow,
    Summary,
    SummaryReview,
    User,
    utc,
)
from .schemas import AuditEntry, CallerHistoryEntry, CallOut, FeedbackOut, HistoryEntry
from .vocabulary import TRANSITIONS, FeedbackKind, ReviewAction, SummaryStatus, Vote

log = logging.getLogger("dasan.console")


Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Recorded:
    call_id: str
    seq: int
    type: str
    at: datetime
    payload: dict[str, Any]

    def message(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.isoformat(), "event": self.payload}


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


# --------------------------------------------------------------------------- payloads (masked)


def _clean(text: str) -> str:
    """NUL characters are not text (and PostgreSQL refuses them)."""
    return text.replace("\x00", "")


def _m(text: str) -> str:
    return mask_text(_clean(text))


def summary_content(ev: CallSummary) -> dict[str, Any]:
    return {
        "category": ev.category,
        "call_reason": _m(ev.call_reason),
        "key_facts": [_m(x) for x in ev.key_facts],
        "counselor_answers": [_m(x) for x in ev.counselor_answers],
        "actions": [{"kind": a.kind.value, "text": _m(a.text)} for a in ev.actions],
        "regulations_cited": list(ev.regulations_cited),
        "entities": {k: [_m(v) for v in vs] for k, vs in ev.entities.items()},
        "keywords": list(ev.keywords),
        "generator": ev.generator,
    }


def payload_of(ev: Event) -> dict[str, Any]:
    """What a browser receives for an event: masked text only."""
    if isinstance(ev, CallStarted):
        return {
            "type": "call_started",
            "counselor_id": ev.counselor_id,
            "team": ev.team,
            "category": ev.category,
            "queue": ev.queue,
            "caller_number_masked": ev.caller_number_masked,
            "source": ev.source.value,
            "started_at": ev.started_at.isoformat(),
        }
    if isinstance(ev, CallEnded):
        return {
            "type": "call_ended",
            "ended_at": ev.ended_at.isoformat(),
            "reason": ev.reason.value,
            "duration_s": ev.duration_s,
        }
    if isinstance(ev, TranscriptSegment):
        return {
            "type": "segment",
            "segment_id": ev.segment_id,
            "channel": ev.channel.value,
            "text": _m(ev.text),
            "is_final": ev.is_final,
            "revision": ev.revision,
            "start_s": ev.start_s,
            "end_s": ev.end_s,
            "confidence": ev.confidence,
            "source": ev.source.value,
        }
    if isinstance(ev, KeywordsUpdated):
        return {"type": "keywords", "keywords": [_m(k) for k in ev.keywords]}
    if isinstance(ev, Suggestion):
        return {
            "type": "suggestion",
            "suggestion_id": ev.suggestion_id,
            "trigger_segment_ids": list(ev.trigger_segment_ids),
            "keywords": [_m(k) for k in ev.keywords],
            "passages": [
                {
                    "doc_id": p.doc_id,
                    "passage_id": p.passage_id,
                    "citation": _clean(p.citation),
                    "law_name": p.law_name,
                    "article_no": p.article_no,
                    "snippet": _m(p.snippet),
                    "effective_date": p.effective_date,
                    "score": round(p.score, 4),
                }
                for p in ev.passages
            ],
            "draft": {
                "generator": ev.draft.generator,
                "abstained": ev.draft.abstained,
                "abstain_reason": ev.draft.abstain_reason,
                "sentences": [
                    {"text": _m(s.text), "citations": list(s.citations)} for s in ev.draft.sentences
                ],
            },
            "latency_ms": round(ev.latency.total_ms, 1),
        }
    if isinstance(ev, CallSummary):
        return {"type": "summary", "summary_id": ev.summary_id, **summary_content(ev)}
    raise TypeError(f"the console does not record {type(ev).__name__}")


RECORDED_TYPES = (CallStarted, CallEnded, TranscriptSegment, KeywordsUpdated, Suggestion, CallSummary)


class Store:
    """``tz``: the site's time zone, for day boundaries (search by date, "today" in metrics).
    ``clock``: the current instant (aware); tests freeze it to hold at any hour."""

    def __init__(self, engine: Engine, tz: str = "Asia/Seoul", *, clock: Clock = system_clock) -> None:
        self.engine = engine
        self.sessions = make_sessionmaker(engine)
        self.tz = ZoneInfo(tz)
        self.clock = clock

    def now(self) -> datetime:
        return utc(self.clock())

    def today(self) -> date:
        """The site's date now (in Seoul the day starts at 15:00 UTC of the day before)."""
        return self.now().astimezone(self.tz).date()

    def day_start(self, day: date) -> datetime:
        """Midnight of ``day`` in the site's time zone, as the UTC instant stored values compare with."""
        return datetime.combine(day, time.min, self.tz).astimezone(UTC)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # ------------------------------------------------------------------ recording
    def record(self, ev: Event) -> Recorded | None:
        """Store one event; ``None`` if it was already stored (redelivery)."""
        done = self.record_many([ev])
        return done[0] if done else None

    def record_many(self, events: Sequence[Event]) -> list[Recorded]:
        """Store a batch in one transaction; returns the events that were new, in order.

        Event ids already stored (or repeated inside the batch) are skipped. Each call's new
        events get the next ``seq`` values with one ``UPDATE … RETURNING`` per call, which also
        serialises concurrent writers of the same call (the row lock is held to commit).
        """
        todo = [e for e in events if isinstance(e, RECORDED_TYPES)]
        if not todo:
            return []
        for _attempt in range(5):
            try:
                return self._record_batch(todo)
            except IntegrityError as exc:
                # A concurrent writer stored some of these events: look again.
                log.info(
                    "record conflict, retrying", extra={"call_id": todo[0].call_id, "error": str(exc)[:200]}
                )
        raise RuntimeError(f"could not record {len(todo)} events after retries")

    def _record_batch(self, todo: list[Event]) -> list[Recorded]:
        with self.sessions.begin() as s:
            ids = list({e.event_id for e in todo})
            stored: set[str] = set()
            for i in range(0, len(ids), 500):
                stored.update(
                    s.scalars(select(CallEvent.event_id).where(CallEvent.event_id.in_(ids[i : i + 500])))
                )
            new: list[Event] = []
            for e in todo:
                if e.event_id not in stored:
                    stored.add(e.event_id)
                    new.append(e)
            if not new:
                return []
            per_call: dict[str, int] = {}
            for e in new:
                per_call[e.call_id] = per_call.get(e.call_id, 0) + 1
            next_seq: dict[str, int] = {}
            calls: dict[str, Call] = {}
            for call_id, k in per_call.items():
                calls[call_id] = self._ensure_call(s, call_id)
                last = s.execute(
                    update(Call)
                    .where(Call.call_id == call_id)
                    .values(last_seq=Call.last_seq + k)
                    .returning(Call.last_seq)
                    .execution_options(synchronize_session=False)
                ).scalar_one()
                next_seq[call_id] = last - k + 1
            out: list[Recorded] = []
            recorded_at = self.now()
            for e in new:
                seq = next_seq[e.call_id]
                next_seq[e.call_id] = seq + 1
                payload = payload_of(e)
                at = utc(e.produced_at)
                s.add(
                    CallEvent(
                        call_id=e.call_id,
                        seq=seq,
                        event_id=e.event_id,
                        type=payload["type"],
                        at=at,
                        recorded_at=recorded_at,
                        payload=payload,
                    )
                )
                self._typed(s, calls[e.call_id], e, seq, at, payload)
                out.append(Recorded(e.call_id, seq, payload["type"], at, payload))
        return out

    def _ensure_call(self, s: Session, call_id: str) -> Call:
        call = s.get(Call, call_id)
        if call is None:
            call = Call(call_id=call_id, last_seq=0, source="asr", first_seen_at=self.now())
            s.add(call)
            s.flush()
        return call

    def _typed(
        self, s: Session, call: Call, ev: Event, seq: int, at: datetime, payload: dict[str, Any]
    ) -> None:
        if isinstance(ev, CallStarted):
            call.counselor_id = ev.counselor_id
            call.team = ev.team
            call.queue = ev.queue
            call.category = (ev.category or call.category or "")[:64] or None
            call.caller_number_masked = ev.caller_number_masked
            call.caller_key = ev.caller_key
            call.source = ev.source.value
            call.started_at = utc(ev.started_at)
        elif isinstance(ev, CallEnded):
            call.ended_at = utc(ev.ended_at)
            call.end_reason = ev.reason.value
            started = call.started_at
            call.duration_s = (
                ev.duration_s
                if ev.duration_s is not None
                else (
                    max(0.0, (call.ended_at - started).total_seconds()) if started and call.ended_at else None
                )
            )
        elif isinstance(ev, TranscriptSegment):
            s.add(
                Segment(
                    event_id=ev.event_id,
                    call_id=ev.call_id,
                    segment_id=ev.segment_id,
                    seq=seq,
                    revision=ev.revision,
                    is_final=ev.is_final,
                    channel=ev.channel.value,
                    start_s=ev.start_s,
                    end_s=ev.end_s,
                    text_masked=payload["text"],
                    text_raw=_clean(ev.text),
                    confidence=ev.confidence,
                    source=ev.source.value,
                    at=at,
                )
            )
            if ev.source.value == "scripted":
                call.source = "scripted"
        elif isinstance(ev, KeywordsUpdated):
            s.add(
                KeywordUpdate(
                    event_id=ev.event_id, call_id=ev.call_id, seq=seq, keywords=payload["keywords"], at=at
                )
            )
            call.topic = ", ".join(payload["keywords"][:4])[:200] or call.topic
        elif isinstance(ev, Suggestion):
            if s.scalar(select(SuggestionRow.id).where(SuggestionRow.suggestion_id == ev.suggestion_id)):
                return  # the same suggestion published again under a new event id: logged, not repeated
            s.add(
                SuggestionRow(
                    event_id=ev.event_id,
                    suggestion_id=ev.suggestion_id,
                    call_id=ev.call_id,
                    seq=seq,
                    abstained=ev.draft.abstained,
                    draft_text=" ".join(x["text"] for x in payload["draft"]["sentences"]),
                    payload=payload,
                    at=at,
                )
            )
            if payload["keywords"] and not call.topic:
                call.topic = ", ".join(payload["keywords"][:4])[:200]
        elif isinstance(ev, CallSummary):
            content = summary_content(ev)
            t = self.now()
            existing = s.scalar(select(Summary).where(Summary.summary_id == ev.summary_id))
            if existing is not None:
                # Regenerated (e.g. after a takeover): replaces a draft nobody has touched yet.
                if existing.status == SummaryStatus.draft and not existing.edited:
                    existing.original = existing.content = content
                    existing.category = ev.category[:64]
                    existing.updated_at = t
                return
            s.add(
                Summary(
                    event_id=ev.event_id,
                    summary_id=ev.summary_id,
                    call_id=ev.call_id,
                    seq=seq,
                    category=ev.category[:64],
                    original=content,
                    content=content,
                    status=SummaryStatus.draft,
                    edited=False,
                    created_at=t,
                    updated_at=t,
                )
            )
            call.category = ev.category[:64]

    # ------------------------------------------------------------------ calls
    def get_call(self, call_id: str) -> Call:
        with self.sessions() as s:
            call = s.get(Call, call_id)
            if call is None:
                raise NotFound(call_id)
            return call

    def events_after(self, call_id: str, after: int, limit: int = 500) -> list[dict[str, Any]]:
        with self.sessions() as s:
            rows = s.execute(
                select(CallEvent.seq, CallEvent.type, CallEvent.at, CallEvent.payload)
                .where(CallEvent.call_id == call_id, CallEvent.seq > after)
                .order_by(CallEvent.seq)
                .limit(limit)
            ).all()
        return [Recorded(call_id, r.seq, r.type, r.at, r.payload).message() for r in rows]

    def last_seq(self, call_id: str) -> int:
        with self.sessions() as s:
            return s.scalar(select(Call.last_seq).where(Call.call_id == call_id)) or 0

    def list_calls(
        self,
        user: User,
        *,
        active: bool | None = None,
        day_from: date | None = None,
        day_to: date | None = None,
        counselor: str | None = None,
        category: str | None = None,
        keyword: str | None = None,
        q: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[Call], int]:
        cond = [visible_calls(user)]
        if active is True:
            cond += [Call.ended_at.is_(None), Call.started_at.is_not(None)]
        elif active is False:
            cond.append(Call.ended_at.is_not(None))
        if day_from:
            cond.append(Call.started_at >= self.day_start(day_from))
        if day_to:
            cond.append(Call.started_at < self.day_start(day_to + timedelta(days=1)))
        if counselor:
            cond.append(Call.counselor_id == counselor)
        if category:
            cond.append(Call.category == category)
        if keyword:
            kw = f"%{_escape_like(keyword)}%"
            cond.append(
                or_(
                    Call.topic.ilike(kw, escape="\\"),
                    Call.call_id.in_(
                        select(KeywordUpdate.call_id).where(
                            func.cast(KeywordUpdate.keywords, _text_type()).ilike(kw, escape="\\")
                        )
                    ),
                )
            )
        if q:
            pat = f"%{_escape_like(q)}%"
            cond.append(
                or_(
                    Call.call_id.in_(
                        select(Segment.call_id).where(
                            Segment.is_final, Segment.text_masked.ilike(pat, escape="\\")
                        )
                    ),
                    Call.call_id.in_(
                        select(Summary.call_id).where(
                            func.cast(Summary.content, _text_type()).ilike(pat, escape="\\")
                        )
                    ),
                )
            )
        where = and_(*cond)
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Call).where(where)) or 0
            stmt: Select[Any] = (
                select(Call)
                .where(where)
                .order_by(Call.started_at.desc().nulls_last(), Call.call_id)
                .offset(offset)
                .limit(limit)
            )
            return list(s.scalars(stmt)), total

    def board(self, user: User, limit: int = 200) -> list[dict[str, Any]]:
        """Ongoing calls with their latest suggestion (two queries, whatever the number of calls)."""
        calls, _ = self.list_calls(user, active=True, limit=limit)
        latest: dict[str, str] = {}
        if calls:
            ids = [c.call_id for c in calls]
            newest = (
                select(SuggestionRow.call_id, func.max(SuggestionRow.seq).label("seq"))
                .where(SuggestionRow.call_id.in_(ids))
                .group_by(SuggestionRow.call_id)
                .subquery()
            )
            with self.sessions() as s:
                rows = s.execute(
                    select(SuggestionRow.call_id, SuggestionRow.draft_text).join(
                        newest,
                        and_(SuggestionRow.call_id == newest.c.call_id, SuggestionRow.seq == newest.c.seq),
                    )
                ).all()
            latest = {r.call_id: r.draft_text for r in rows}
        t = self.now()
        out = []
        for c in calls:
            started = c.started_at
            out.append(
                {
                    **CallOut.model_validate(c).model_dump(),
                    "elapsed_s": (t - started).total_seconds() if started else None,
                    "latest_suggestion": latest.get(c.call_id),
                }
            )
        return out

    def final_segments(self, call_id: str) -> list[Segment]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(Segment)
                    .where(Segment.call_id == call_id, Segment.is_final)
                    .order_by(Segment.start_s)
                )
            )

    def caller_history(self, call: Call, limit: int = 10) -> list[dict[str, Any]]:
        """Earlier calls of the same caller (by keyed hash) with their approved summaries only."""
        if not call.caller_key:
            return []
        with self.sessions() as s:
            rows = s.execute(
                select(Call, Summary)
                .join(Summary, Summary.call_id == Call.call_id)
                .where(
                    Call.caller_key == call.caller_key,
                    Call.call_id != call.call_id,
                    Summary.status == SummaryStatus.approved,
                )
                .order_by(Call.started_at.desc().nulls_last())
                .limit(limit)
            ).all()
        return [
            CallerHistoryEntry(
                call_id=c.call_id,
                started_at=c.started_at,
                counselor_id=c.counselor_id,
                category=sm.category,
                summary=sm.content,
            ).model_dump()
            for c, sm in rows
        ]

    # ------------------------------------------------------------------ suggestions and feedback
    def get_suggestion(self, suggestion_id: str) -> SuggestionRow:
        with self.sessions() as s:
            row = s.scalar(select(SuggestionRow).where(SuggestionRow.suggestion_id == suggestion_id))
            if row is None:
                raise NotFound(suggestion_id)
            return row

    def add_feedback(
        self, suggestion: SuggestionRow, username: str, kind: str, value: str | None, reason: str | None
    ) -> Feedback:
        with self.sessions.begin() as s:
            row = None
            if kind == FeedbackKind.vote:
                row = s.scalar(
                    select(Feedback).where(
                        Feedback.suggestion_id == suggestion.suggestion_id,
                        Feedback.username == username,
                        Feedback.kind == FeedbackKind.vote,
                    )
                )
            if row is None:
                row = Feedback(
                    suggestion_id=suggestion.suggestion_id,
                    call_id=suggestion.call_id,
                    username=username,
                    kind=kind,
                )
                s.add(row)
            row.value = value
            row.reason = reason
            row.at = self.now()
            s.flush()
            return row

    def feedback_for_call(self, call_id: str) -> list[dict[str, Any]]:
        with self.sessions() as s:
            rows = s.scalars(select(Feedback).where(Feedback.call_id == call_id).order_by(Feedback.at)).all()
        return [FeedbackOut.model_validate(f).model_dump() for f in rows]

    # ------------------------------------------------------------------ summaries and review
    def get_summary(self, summary_id: str) -> Summary:
        with self.sessions() as s:
            row = s.scalar(select(Summary).where(Summary.summary_id == summary_id))
            if row is None:
                raise NotFound(summary_id)
            return row

    def summary_for_call(self, call_id: str) -> Summary | None:
        with self.sessions() as s:
            return s.scalar(
                select(Summary).where(Summary.call_id == call_id).order_by(Summary.seq.desc()).limit(1)
            )

    def review_action(
        self,
        summary_id: str,
        actor: str,
        action: ReviewAction | str,
        comment: str | None,
        content: dict[str, Any] | None,
    ) -> Summary:
        """``submit`` (counselor, from draft or rejected), ``approve`` / ``edit`` / ``reject`` (reviewer)."""
        try:
            action = ReviewAction(action)
        except ValueError:
            raise ValueError(f"unknown action {action}") from None
        allowed_from, leads_to = TRANSITIONS[action]
        if action is ReviewAction.reject and not (comment and comment.strip()):
            raise Conflict("반려할 때는 사유(코멘트)가 필요합니다")
        with self.sessions.begin() as s:
            row = s.scalar(select(Summary).where(Summary.summary_id == summary_id).with_for_update())
            if row is None:
                raise NotFound(summary_id)
            if row.status not in allowed_from:
                raise Conflict(f"요약 상태가 '{row.status}'이므로 '{action}' 할 수 없습니다")
            if content is not None and content != row.content:
                row.content = content
                row.edited = True
            row.status = leads_to
            row.updated_at = self.now()
            s.add(
                SummaryReview(
                    summary_id=summary_id,
                    action=action,
                    actor=actor,
                    comment=comment,
                    content=row.content if content is not None else None,
                    at=row.updated_at,
                )
            )
            s.flush()
            return row

    def review_history(self, summary_id: str) -> list[dict[str, Any]]:
        with self.sessions() as s:
            rows = s.scalars(
                select(SummaryReview).where(SummaryReview.summary_id == summary_id).order_by(SummaryReview.id)
            ).all()
        return [HistoryEntry.model_validate(r).model_dump() for r in rows]

    def review_queue(
        self, user: User, status: str = SummaryStatus.submitted, offset: int = 0, limit: int = 50
    ) -> tuple[list[tuple[Summary, Call]], int]:
        where = and_(Summary.status == status, visible_calls(user))
        with self.sessions() as s:
            base = select(Summary, Call).join(Call, Call.call_id == Summary.call_id).where(where)
            total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
            rows = s.execute(base.order_by(Summary.updated_at).offset(offset).limit(limit)).all()
        return [(sm, c) for sm, c in rows], total

    # ------------------------------------------------------------------ users
    def add_user(
        self, username: str, password_hash: str, role: str, team: str | None, display_name: str | None = None
    ) -> User:
        with self.sessions.begin() as s:
            if s.scalar(select(User).where(User.username == username)) is not None:
                raise Conflict(f"user {username!r} already exists")
            u = User(
                username=username,
                password_hash=password_hash,
                role=role,
                team=team,
                display_name=display_name,
                active=True,
                created_at=self.now(),
            )
            s.add(u)
            s.flush()
            return u

    def reset_user(
        self, username: str, password_hash: str, role: str, team: str | None, display_name: str | None = None
    ) -> User:
        """New password (and role/team) for an existing user, re-activating it."""
        with self.sessions.begin() as s:
            u = s.scalar(select(User).where(User.username == username))
            if u is None:
                raise NotFound(username)
            u.password_hash, u.role, u.team, u.active = password_hash, role, team, True
            if display_name:
                u.display_name = display_name
            s.flush()
            return u

    def user_by_name(self, username: str) -> User | None:
        with self.sessions() as s:
            return s.scalar(select(User).where(User.username == username))

    def user_by_id(self, user_id: int) -> User | None:
        with self.sessions() as s:
            return s.get(User, user_id)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        with self.sessions.begin() as s:
            s.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))

    def list_users(self) -> Sequence[User]:
        with self.sessions() as s:
            return s.scalars(select(User).order_by(User.role, User.username)).all()

    def purge_raw(self, older_than: timedelta) -> int:
        """Erase unmasked transcript text recorded before ``now - older_than``; returns rows erased."""
        cutoff = self.now() - older_than
        with self.sessions.begin() as s:
            res = s.execute(
                update(Segment)
                .where(Segment.at < cutoff, Segment.text_raw != "")
                .values(text_raw="")
                .execution_options(synchronize_session=False)
            )
            return int(res.rowcount or 0)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ audit
    def audit(self, user: User, action: str, call_id: str | None, detail: str | None = None) -> None:
        with self.sessions.begin() as s:
            s.add(
                AuditLog(
                    username=user.username,
                    role=user.role,
                    action=action,
                    call_id=call_id,
                    detail=detail,
                    at=self.now(),
                )
            )

    def audit_entries(self, call_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self.sessions() as s:
            stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
            if call_id:
                stmt = stmt.where(AuditLog.call_id == call_id)
            rows = s.scalars(stmt).all()
        return [AuditEntry.model_validate(a).model_dump() for a in rows]

    # ------------------------------------------------------------------ metrics
    def metrics(self, user: User, day: date) -> dict[str, Any]:
        start = self.day_start(day)
        end = self.day_start(day + timedelta(days=1))
        scope = and_(visible_calls(user), Call.started_at >= start, Call.started_at < end)
        with self.sessions() as s:
            calls_today = s.scalar(select(func.count()).select_from(Call).where(scope)) or 0
            aht = s.scalar(select(func.avg(Call.duration_s)).where(scope, Call.duration_s.is_not(None)))
            ids = select(Call.call_id).where(scope)
            n_sugg = (
                s.scalar(
                    select(func.count()).select_from(SuggestionRow).where(SuggestionRow.call_id.in_(ids))
                )
                or 0
            )
            votes = dict(
                s.execute(
                    select(Feedback.value, func.count())
                    .where(Feedback.kind == FeedbackKind.vote, Feedback.call_id.in_(ids))
                    .group_by(Feedback.value)
                ).all()
            )
            copied = (
                s.scalar(
                    select(func.count(func.distinct(Feedback.suggestion_id))).where(
                        Feedback.kind == FeedbackKind.copy, Feedback.call_id.in_(ids)
                    )
                )
                or 0
            )
            approved = (
                s.scalar(
                    select(func.count())
                    .select_from(Summary)
                    .where(Summary.call_id.in_(ids), Summary.status == SummaryStatus.approved)
                )
                or 0
            )
            approved_clean = (
                s.scalar(
                    select(func.count())
                    .select_from(Summary)
                    .where(
                        Summary.call_id.in_(ids),
                        Summary.status == SummaryStatus.approved,
                        Summary.edited.is_(False),
                    )
                )
                or 0
            )
            pending = (
                s.scalar(
                    select(func.count())
                    .select_from(Summary)
                    .where(Summary.call_id.in_(ids), Summary.status == SummaryStatus.submitted)
                )
                or 0
            )
        up, down = votes.get(Vote.up, 0), votes.get(Vote.down, 0)
        return {
            "day": day.isoformat(),
            "calls": calls_today,
            "avg_handle_time_s": round(float(aht), 1) if aht is not None else None,
            "suggestions": n_sugg,
            "thumbs_up": up,
            "thumbs_down": down,
            "thumbs_up_rate": round(up / (up + down), 3) if up + down else None,
            "drafts_copied": copied,
            "draft_copy_rate": round(copied / n_sugg, 3) if n_sugg else None,
            "summaries_approved": approved,
            "summaries_approved_without_edit": approved_clean,
            "approved_without_edit_rate": round(approved_clean / approved, 3) if approved else None,
            "summaries_pending": pending,
        }


def _text_type() -> Any:
    from sqlalchemy import Text as _T

    return _T()


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
