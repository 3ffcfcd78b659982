"""A day's figures for the stats page: calls, handle time, suggestion feedback, summary review."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, func, select, true

from ..access import visible_calls
from ..models import Call, Feedback, SuggestionRow, Summary, User
from ..vocabulary import FeedbackKind, SummaryStatus, Vote
from .base import StoreBase


class Metrics(StoreBase):
    def metrics(self, user: User, day: date) -> dict[str, Any]:
        """Figures of the calls the user may see that started on ``day`` (the site's date).

        One statement, one round trip: four one-row aggregates (calls, suggestions, feedback,
        summaries), each reading its table once, side by side.
        """
        start = self.day_start(day)
        end = self.day_start(day + timedelta(days=1))
        scope = and_(visible_calls(user), Call.started_at >= start, Call.started_at < end)
        ids = select(Call.call_id).where(scope)
        calls = (
            select(func.count().label("calls"), func.avg(Call.duration_s).label("aht"))
            .where(scope)
            .subquery()
        )
        suggestions = (
            select(func.count().label("suggestions")).where(SuggestionRow.call_id.in_(ids)).subquery()
        )
        vote = Feedback.kind == FeedbackKind.vote
        feedback = (
            select(
                func.count().filter(and_(vote, Feedback.value == Vote.up)).label("up"),
                func.count().filter(and_(vote, Feedback.value == Vote.down)).label("down"),
                func.count(func.distinct(Feedback.suggestion_id))
                .filter(Feedback.kind == FeedbackKind.copy)
                .label("copied"),
            )
            .where(Feedback.call_id.in_(ids))
            .subquery()
        )
        approved = Summary.status == SummaryStatus.approved
        summaries = (
            select(
                func.count().filter(approved).label("approved"),
                func.count().filter(and_(approved, Summary.edited.is_(False))).label("approved_clean"),
                func.count().filter(Summary.status == SummaryStatus.submitted).label("pending"),
            )
            .where(Summary.call_id.in_(ids))
            .subquery()
        )
        stmt = select(calls, suggestions, feedback, summaries).select_from(
            calls.join(suggestions, true()).join(feedback, true()).join(summaries, true())
        )
        with self.sessions() as db:
            m = db.execute(stmt).one()
        n_sugg, up, down, copied = m.suggestions, m.up, m.down, m.copied
        return {
            "day": day.isoformat(),
            "calls": m.calls,
            "avg_handle_time_s": round(float(m.aht), 1) if m.aht is not None else None,
            "suggestions": n_sugg,
            "thumbs_up": up,
            "thumbs_down": down,
            "thumbs_up_rate": round(up / (up + down), 3) if up + down else None,
            "drafts_copied": copied,
            "draft_copy_rate": round(copied / n_sugg, 3) if n_sugg else None,
            "summaries_approved": m.approved,
            "summaries_approved_without_edit": m.approved_clean,
            "approved_without_edit_rate": round(m.approved_clean / m.approved, 3) if m.approved else None,
            "summaries_pending": m.pending,
        }
