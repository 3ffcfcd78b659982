"""The recorder's write path: every event once, with the call's next ``seq``.

``record_many(events)`` is the recorder's one write: idempotent on ``event_id`` (a unique column
on every table it writes; a redelivered event is recognised and ignored), and it gives each new
event the call's next ``seq`` so that websockets resume and replays play without gaps. Besides the
call's log (``call_events``), each event type updates its own table: one writer per type, in a
table keyed by the event's class.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import select, update
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

from ..models import Call, CallEvent, ErasedCall, KeywordUpdate, Segment, SuggestionRow, Summary, utc
from ..projection import clean, payload_of, summary_content
from ..vocabulary import SummaryStatus
from .base import OwnerConflict, Recorded, StoreBase

log = logging.getLogger("dasan.console")

ERASED_SKIPPED = Counter(
    "dasan_console_erased_skipped_total", "Events of erased calls not recorded again (replayed from Kafka)"
)


@dataclass(frozen=True)
class NewEvent:
    """One event being stored: the transaction, its call's row, and what the log got."""

    db: Session
    call: Call
    seq: int
    at: datetime
    payload: dict[str, Any]
    now: datetime


# Who a call belongs to: the counselor and team who may see it, and the caller whose history it joins.
OWNER_FIELDS = ("counselor_id", "team", "caller_key")


def _call_started(new: NewEvent, ev: CallStarted) -> None:
    call = new.call
    if call.started_at is not None:
        # A second start for a call already started: a redelivery under a new event id keeps the
        # owner; one that changes it is a forgery (or a gateway bug) and must not move the call,
        # its transcript and summary to another desk or join it to another caller's history.
        changed = [f for f in OWNER_FIELDS if getattr(call, f) != getattr(ev, f)]
        if changed:
            raise OwnerConflict(ev.call_id, changed)
        return  # the same owner again: the call keeps what its first start said
    call.counselor_id = ev.counselor_id
    call.team = ev.team
    call.queue = ev.queue
    call.category = (ev.category or call.category or "")[:64] or None
    call.caller_number_masked = ev.caller_number_masked
    call.caller_key = ev.caller_key
    call.source = ev.source.value
    call.started_at = utc(ev.started_at)


def _call_ended(new: NewEvent, ev: CallEnded) -> None:
    call = new.call
    call.ended_at = utc(ev.ended_at)
    call.end_reason = ev.reason.value
    started = call.started_at
    if ev.duration_s is not None:
        call.duration_s = ev.duration_s
    else:
        call.duration_s = max(0.0, (call.ended_at - started).total_seconds()) if started else None


def _segment(new: NewEvent, ev: TranscriptSegment) -> None:
    # The same segment revision again under a new event id (an ASR worker re-decoding after a
    # takeover, a producer retrying with new ids): kept in the call's log, stored once. Checked
    # by its natural key (autoflush makes an earlier copy in this batch visible too); inserting it
    # failed the batch on uq_segments_revision, retried it, and dead-lettered a good event.
    if new.db.scalar(
        select(Segment.id).where(
            Segment.call_id == ev.call_id,
            Segment.segment_id == ev.segment_id,
            Segment.revision == ev.revision,
            Segment.is_final == ev.is_final,
        )
    ):
        return
    new.db.add(
        Segment(
            event_id=ev.event_id,
            call_id=ev.call_id,
            segment_id=ev.segment_id,
            seq=new.seq,
            revision=ev.revision,
            is_final=ev.is_final,
            channel=ev.channel.value,
            start_s=ev.start_s,
            end_s=ev.end_s,
            text_masked=new.payload["text"],
            text_raw=clean(ev.text),
            confidence=ev.confidence,
            source=ev.source.value,
            at=new.at,
        )
    )
    if ev.source.value == "scripted":
        new.call.source = "scripted"


def _keywords(new: NewEvent, ev: KeywordsUpdated) -> None:
    keywords = new.payload["keywords"]
    new.db.add(
        KeywordUpdate(event_id=ev.event_id, call_id=ev.call_id, seq=new.seq, keywords=keywords, at=new.at)
    )
    new.call.topic = ", ".join(keywords[:4])[:200] or new.call.topic


def _suggestion(new: NewEvent, ev: Suggestion) -> None:
    db, payload = new.db, new.payload
    if db.scalar(select(SuggestionRow.id).where(SuggestionRow.suggestion_id == ev.suggestion_id)):
        return  # the same suggestion published again under a new event id: logged, not repeated
    db.add(
        SuggestionRow(
            event_id=ev.event_id,
            suggestion_id=ev.suggestion_id,
            call_id=ev.call_id,
            seq=new.seq,
            abstained=ev.draft.abstained,
            draft_text=" ".join(x["text"] for x in payload["draft"]["sentences"]),
            payload=payload,
            at=new.at,
        )
    )
    if payload["keywords"] and not new.call.topic:
        new.call.topic = ", ".join(payload["keywords"][:4])[:200]


def _summary(new: NewEvent, ev: CallSummary) -> None:
    content = summary_content(ev)
    existing = new.db.scalar(select(Summary).where(Summary.summary_id == ev.summary_id))
    if existing is not None:
        # Regenerated (e.g. after a takeover): replaces a draft nobody has touched yet.
        if existing.status == SummaryStatus.draft and not existing.edited:
            existing.original = existing.content = content
            existing.category = ev.category[:64]
            existing.updated_at = new.now
        return
    new.db.add(
        Summary(
            event_id=ev.event_id,
            summary_id=ev.summary_id,
            call_id=ev.call_id,
            seq=new.seq,
            category=ev.category[:64],
            original=content,
            content=content,
            status=SummaryStatus.draft,
            edited=False,
            created_at=new.now,
            updated_at=new.now,
        )
    )
    new.call.category = ev.category[:64]


# What each recorded event type writes besides the call's log.
WRITERS: dict[type[Event], Callable[[NewEvent, Any], None]] = {
    CallStarted: _call_started,
    CallEnded: _call_ended,
    TranscriptSegment: _segment,
    KeywordsUpdated: _keywords,
    Suggestion: _suggestion,
    CallSummary: _summary,
}


class Recording(StoreBase):
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
        todo = [e for e in events if type(e) in WRITERS]
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
        with self.sessions.begin() as db:
            ids = list({e.event_id for e in todo})
            stored: set[str] = set()
            for i in range(0, len(ids), 500):
                stored.update(
                    db.scalars(select(CallEvent.event_id).where(CallEvent.event_id.in_(ids[i : i + 500])))
                )
            new: list[Event] = []
            for e in todo:
                if e.event_id not in stored:
                    stored.add(e.event_id)
                    new.append(e)
            if not new:
                return []
            new = self._not_erased(db, new)
            if not new:
                return []
            per_call: dict[str, int] = {}
            for e in new:
                per_call[e.call_id] = per_call.get(e.call_id, 0) + 1
            next_seq: dict[str, int] = {}
            calls: dict[str, Call] = {}
            for call_id, k in per_call.items():
                calls[call_id] = self._ensure_call(db, call_id)
                last = db.execute(
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
                db.add(
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
                WRITERS[type(e)](NewEvent(db, calls[e.call_id], seq, at, payload, recorded_at), e)
                out.append(Recorded(e.call_id, seq, payload["type"], at, payload))
        return out

    def _not_erased(self, db: Session, events: list[Event]) -> list[Event]:
        """Drop events of calls erased on request (``dasan privacy erase``) that Kafka still holds:
        a replay of the topics must not bring an erased call back. Counted and logged (by hash)."""
        hashes = {hashlib.sha256(e.call_id.encode()).hexdigest(): e.call_id for e in events}
        gone = set(db.scalars(select(ErasedCall.call_hash).where(ErasedCall.call_hash.in_(list(hashes)))))
        if not gone:
            return events
        erased_ids = {hashes[h] for h in gone}
        kept = [e for e in events if e.call_id not in erased_ids]
        ERASED_SKIPPED.inc(len(events) - len(kept))
        log.info(
            "events of erased calls not recorded",
            extra={"events": len(events) - len(kept), "call_hashes": sorted(gone)},
        )
        return kept

    def _ensure_call(self, db: Session, call_id: str) -> Call:
        call = db.get(Call, call_id)
        if call is None:
            call = Call(call_id=call_id, last_seq=0, source="asr", first_seen_at=self.now())
            db.add(call)
            db.flush()
        return call
