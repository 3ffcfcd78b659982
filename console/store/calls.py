"""Reading calls: one call and its log, search, the live board, transcripts and caller history.

Every list is filtered by :func:`console.access.visible_calls`: a user is never shown a call the
access policy would not let them open.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, or_, select

from ..access import history_scope, visible_calls
from ..models import Call, CallEvent, KeywordUpdate, Segment, SuggestionRow, Summary, User
from ..schemas import CallerHistoryEntry, CallOut
from ..vocabulary import SummaryStatus
from .base import Recorded, StoreBase, escape_like


class CallQueries(StoreBase):
    def get_call(self, call_id: str) -> Call:
        return self.one(select(Call).where(Call.call_id == call_id), call_id)

    def events_after(self, call_id: str, after: int, limit: int = 500) -> list[dict[str, Any]]:
        """The call's log after ``after``, as websockets send it (``{seq, at, event}``)."""
        with self.sessions() as db:
            rows = db.execute(
                select(CallEvent.seq, CallEvent.type, CallEvent.at, CallEvent.payload)
                .where(CallEvent.call_id == call_id, CallEvent.seq > after)
                .order_by(CallEvent.seq)
                .limit(limit)
            ).all()
        return [Recorded(call_id, r.seq, r.type, r.at, r.payload).message() for r in rows]

    def last_seq(self, call_id: str) -> int:
        with self.sessions() as db:
            return db.scalar(select(Call.last_seq).where(Call.call_id == call_id)) or 0

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
        """Calls the user may see, newest first, and how many match in all.

        ``day_from``/``day_to``: dates in the site's time zone (inclusive). ``keyword``: in the
        call's topic or keyword updates. ``q``: full text of final segments and summaries (masked
        text only). Both are literal substrings (LIKE wildcards escaped), case-insensitive.
        """
        cond: list[ColumnElement[bool]] = [visible_calls(user)]
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
            kw = f"%{escape_like(keyword)}%"
            cond.append(
                or_(
                    Call.topic.ilike(kw, escape="\\"),
                    Call.call_id.in_(
                        select(KeywordUpdate.call_id).where(
                            cast(KeywordUpdate.keywords, Text).ilike(kw, escape="\\")
                        )
                    ),
                )
            )
        if q:
            pat = f"%{escape_like(q)}%"
            cond.append(
                or_(
                    Call.call_id.in_(
                        select(Segment.call_id).where(
                            Segment.is_final, Segment.text_masked.ilike(pat, escape="\\")
                        )
                    ),
                    Call.call_id.in_(
                        select(Summary.call_id).where(cast(Summary.content, Text).ilike(pat, escape="\\"))
                    ),
                )
            )
        where = and_(*cond)
        with self.sessions() as db:
            total = db.scalar(select(func.count()).select_from(Call).where(where)) or 0
            stmt: Select[Any] = (
                select(Call)
                .where(where)
                .order_by(Call.started_at.desc().nulls_last(), Call.call_id)
                .offset(offset)
                .limit(limit)
            )
            return list(db.scalars(stmt)), total

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
            with self.sessions() as db:
                rows = db.execute(
                    select(SuggestionRow.call_id, SuggestionRow.draft_text).join(
                        newest,
                        and_(SuggestionRow.call_id == newest.c.call_id, SuggestionRow.seq == newest.c.seq),
                    )
                ).all()
            latest = {r.call_id: r.draft_text for r in rows}
        now = self.now()
        return [
            {
                **CallOut.model_validate(c).model_dump(),
                "elapsed_s": (now - c.started_at).total_seconds() if c.started_at else None,
                "latest_suggestion": latest.get(c.call_id),
            }
            for c in calls
        ]

    def final_segments(self, call_id: str) -> list[Segment]:
        with self.sessions() as db:
            return list(
                db.scalars(
                    select(Segment)
                    .where(Segment.call_id == call_id, Segment.is_final)
                    .order_by(Segment.start_s)
                )
            )

    def caller_history(self, user: User, call: Call, limit: int = 10) -> list[dict[str, Any]]:
        """Earlier calls of the same caller (by keyed hash) with their approved summaries only, of
        the calls :func:`console.access.history_scope` lets ``user`` see."""
        if not call.caller_key:
            return []
        with self.sessions() as db:
            rows = db.execute(
                select(Call, Summary)
                .join(Summary, Summary.call_id == Call.call_id)
                .where(
                    Call.caller_key == call.caller_key,
                    Call.call_id != call.call_id,
                    Summary.status == SummaryStatus.approved,
                    history_scope(user).where(),
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
