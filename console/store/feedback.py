"""Suggestions and what counselors did with them: 👍/👎 votes (the last one counts) and copies."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..models import Feedback, SuggestionRow
from ..projection import masked
from ..schemas import FeedbackOut
from ..vocabulary import FeedbackKind
from .base import StoreBase


class FeedbackStore(StoreBase):
    def get_suggestion(self, suggestion_id: str) -> SuggestionRow:
        return self.one(
            select(SuggestionRow).where(SuggestionRow.suggestion_id == suggestion_id), suggestion_id
        )

    def add_feedback(
        self,
        suggestion: SuggestionRow,
        username: str,
        kind: FeedbackKind | str,
        value: str | None,
        reason: str | None,
    ) -> Feedback:
        """A vote replaces the user's earlier vote on the suggestion; every copy is a new row. The
        reason (typed by the counselor) is masked before it is stored."""
        with self.sessions.begin() as db:
            row = None
            if kind == FeedbackKind.vote:
                row = db.scalar(
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
                db.add(row)
            row.value = value
            row.reason = masked(reason) if reason else reason
            row.at = self.now()
            db.flush()
            return row

    def feedback_for_call(self, call_id: str) -> list[dict[str, Any]]:
        with self.sessions() as db:
            rows = db.scalars(select(Feedback).where(Feedback.call_id == call_id).order_by(Feedback.at)).all()
        return [FeedbackOut.model_validate(f).model_dump() for f in rows]
