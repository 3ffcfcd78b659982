"""Retention and erasure: how data leaves the store.

``purge_*`` delete what is older than a cutoff, table by table (the retention job,
:mod:`console.retention`, decides the cutoffs from the settings). ``erase_calls`` removes calls
and everything recorded about them at once (``dasan privacy erase``), rewrites the call ids in the
audit log to the erasure's id, and leaves a tombstone (the SHA-256 of the call id) so that the
recorder does not record the call again from Kafka while the topics still hold it.

Deletes name every child table explicitly (children first) rather than relying on ``ON DELETE
CASCADE`` alone: the counts are reported, and SQLite enforces cascades only with its pragma on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session

from ..models import (
    AuditLog,
    Call,
    CallEvent,
    ErasedCall,
    Feedback,
    KeywordUpdate,
    Segment,
    SuggestionRow,
    Summary,
    SummaryReview,
)
from .audit import Audit
from .base import rowcount

CHUNK = 500


def call_hash(call_id: str) -> str:
    return hashlib.sha256(call_id.encode()).hexdigest()


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _delete_calls(db: Session, ids: Sequence[str]) -> dict[str, int]:
    """Delete the calls ``ids`` and every row recorded about them; counts per table."""
    counts = dict.fromkeys(
        (
            "feedback",
            "summary_reviews",
            "summaries",
            "suggestions",
            "keyword_updates",
            "segments",
            "call_events",
            "calls",
        ),
        0,
    )
    for part in _chunks(list(ids)):
        summaries = select(Summary.summary_id).where(Summary.call_id.in_(part))
        suggestions = select(SuggestionRow.suggestion_id).where(SuggestionRow.call_id.in_(part))
        counts["feedback"] += rowcount(
            db.execute(
                delete(Feedback).where(
                    or_(Feedback.call_id.in_(part), Feedback.suggestion_id.in_(suggestions))
                )
            )
        )
        counts["summary_reviews"] += rowcount(
            db.execute(delete(SummaryReview).where(SummaryReview.summary_id.in_(summaries)))
        )
        for name, model in (
            ("summaries", Summary),
            ("suggestions", SuggestionRow),
            ("keyword_updates", KeywordUpdate),
            ("segments", Segment),
            ("call_events", CallEvent),
            ("calls", Call),
        ):
            counts[name] += rowcount(db.execute(delete(model).where(model.call_id.in_(part))))
    return counts


class Retention(Audit):
    # ------------------------------------------------------------------ retention
    def purge_raw(self, cutoff: datetime) -> int:
        """Erase unmasked transcript text recorded before ``cutoff``; returns rows erased."""
        with self.sessions.begin() as db:
            return rowcount(
                db.execute(
                    update(Segment)
                    .where(Segment.at < cutoff, Segment.text_raw != "")
                    .values(text_raw="")
                    .execution_options(synchronize_session=False)
                )
            )

    def purge_transcripts(self, cutoff: datetime) -> dict[str, int]:
        """The call's log, transcript segments, keyword updates and suggestions (with their
        feedback) recorded before ``cutoff``; the call and its summary stay."""
        with self.sessions.begin() as db:
            old = select(SuggestionRow.suggestion_id).where(SuggestionRow.at < cutoff)
            return {
                "feedback": rowcount(db.execute(delete(Feedback).where(Feedback.suggestion_id.in_(old)))),
                "suggestions": rowcount(db.execute(delete(SuggestionRow).where(SuggestionRow.at < cutoff))),
                "keyword_updates": rowcount(
                    db.execute(delete(KeywordUpdate).where(KeywordUpdate.at < cutoff))
                ),
                "segments": rowcount(db.execute(delete(Segment).where(Segment.at < cutoff))),
                "call_events": rowcount(db.execute(delete(CallEvent).where(CallEvent.recorded_at < cutoff))),
            }

    def purge_feedback(self, cutoff: datetime) -> int:
        with self.sessions.begin() as db:
            return rowcount(db.execute(delete(Feedback).where(Feedback.at < cutoff)))

    def forget_caller_keys(self, cutoff: datetime) -> int:
        """Calls started before ``cutoff`` lose their caller key and masked number (they leave
        every caller history); the number is also taken out of their ``call_started`` log entry."""
        started = func.coalesce(Call.started_at, Call.first_seen_at)
        with self.sessions.begin() as db:
            ids = list(
                db.scalars(
                    select(Call.call_id).where(
                        started < cutoff,
                        or_(Call.caller_key.is_not(None), Call.caller_number_masked.is_not(None)),
                    )
                )
            )
            for part in _chunks(ids):
                db.execute(
                    update(Call)
                    .where(Call.call_id.in_(part))
                    .values(caller_key=None, caller_number_masked=None)
                )
                for ev in db.scalars(
                    select(CallEvent).where(CallEvent.call_id.in_(part), CallEvent.type == "call_started")
                ):
                    ev.payload = {**ev.payload, "caller_number_masked": None}
            return len(ids)

    def purge_calls(self, cutoff: datetime) -> dict[str, int]:
        """Calls last active before ``cutoff``, with their summaries, reviews and everything else."""
        last = func.coalesce(Call.ended_at, Call.started_at, Call.first_seen_at)
        with self.sessions.begin() as db:
            ids = list(db.scalars(select(Call.call_id).where(last < cutoff)))
            return _delete_calls(db, ids) if ids else {"calls": 0}

    def purge_audit(self, cutoff: datetime) -> int:
        with self.unlocked_audit("retention") as db:
            return rowcount(db.execute(delete(AuditLog).where(AuditLog.at < cutoff)))

    def purge_erased(self, cutoff: datetime) -> int:
        """Tombstones of erased calls older than the longest topic retention (Kafka no longer has them)."""
        with self.sessions.begin() as db:
            return rowcount(db.execute(delete(ErasedCall).where(ErasedCall.erased_at < cutoff)))

    # ------------------------------------------------------------------ erasure
    def calls_of_caller(self, key: str) -> list[Call]:
        with self.sessions() as db:
            return list(db.scalars(select(Call).where(Call.caller_key == key).order_by(Call.first_seen_at)))

    def erase_calls(self, ids: Sequence[str], erasure_id: str, *, dry_run: bool = False) -> dict[str, int]:
        """Remove the calls ``ids`` and everything recorded about them, in one transaction; the
        audit rows that named them keep who read what and when, with the call id replaced by
        ``erased:<erasure_id>``. Returns the rows removed or rewritten per table (``dry_run``: the
        same work, rolled back)."""
        tag = f"erased:{erasure_id}"
        with self.unlocked_audit("erase", commit=not dry_run) as db:
            counts = _delete_calls(db, ids)
            now = self.now()
            for cid in ids:
                if db.get(ErasedCall, call_hash(cid)) is None:
                    db.add(ErasedCall(call_hash=call_hash(cid), erased_at=now))
            rewritten = 0
            for part in _chunks(list(ids)):
                rewritten += rowcount(
                    db.execute(update(AuditLog).where(AuditLog.call_id.in_(part)).values(call_id=tag))
                )
            # Ids named in other columns (a caller history read lists the calls it showed).
            for cid in ids:
                like = f"%{cid}%"
                mention: ColumnElement[bool] = or_(AuditLog.detail.like(like), AuditLog.target.like(like))
                for row in db.scalars(select(AuditLog).where(mention)):
                    row.detail = row.detail.replace(cid, tag) if row.detail else row.detail
                    row.target = row.target.replace(cid, tag) if row.target else row.target
                    rewritten += 1
            counts["audit_log (call id rewritten)"] = rewritten
            return counts

    def erased(self, call_ids: Iterable[str]) -> set[str]:
        """Which of ``call_ids`` were erased (and must not be recorded again)."""
        by_hash = {call_hash(c): c for c in call_ids}
        if not by_hash:
            return set()
        with self.sessions() as db:
            found = db.scalars(select(ErasedCall.call_hash).where(ErasedCall.call_hash.in_(list(by_hash))))
            return {by_hash[h] for h in found}
