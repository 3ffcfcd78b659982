"""The review workflow of call summaries: submit, approve / edit / reject, with full history.

The statuses and which action may follow which are :data:`console.vocabulary.TRANSITIONS`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from ..access import visible_calls
from ..models import Call, Summary, SummaryReview, User
from ..projection import mask_content, masked
from ..schemas import HistoryEntry
from ..vocabulary import TRANSITIONS, ReviewAction, SummaryStatus
from .base import Conflict, NotFound, StoreBase


class Reviews(StoreBase):
    def get_summary(self, summary_id: str) -> Summary:
        return self.one(select(Summary).where(Summary.summary_id == summary_id), summary_id)

    def summary_for_call(self, call_id: str) -> Summary | None:
        with self.sessions() as db:
            return db.scalar(
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
        """``submit`` (counselor, from draft or rejected), ``approve`` / ``edit`` / ``reject`` (reviewer).

        What people typed (the edited content, the comment) is masked before it is stored."""
        try:
            action = ReviewAction(action)
        except ValueError:
            raise ValueError(f"unknown action {action}") from None
        allowed_from, leads_to = TRANSITIONS[action]
        if action is ReviewAction.reject and not (comment and comment.strip()):
            raise Conflict("반려할 때는 사유(코멘트)가 필요합니다")
        comment = masked(comment) if comment else comment
        content = mask_content(content) if content is not None else None
        with self.sessions.begin() as db:
            row = db.scalar(select(Summary).where(Summary.summary_id == summary_id).with_for_update())
            if row is None:
                raise NotFound(summary_id)
            if row.status not in allowed_from:
                raise Conflict(f"요약 상태가 '{row.status}'이므로 '{action}' 할 수 없습니다")
            if content is not None and content != row.content:
                row.content = content
                row.edited = True
            row.status = leads_to
            row.updated_at = self.now()
            db.add(
                SummaryReview(
                    summary_id=summary_id,
                    action=action,
                    actor=actor,
                    comment=comment,
                    content=row.content if content is not None else None,
                    at=row.updated_at,
                )
            )
            db.flush()
            return row

    def review_history(self, summary_id: str) -> list[dict[str, Any]]:
        with self.sessions() as db:
            rows = db.scalars(
                select(SummaryReview).where(SummaryReview.summary_id == summary_id).order_by(SummaryReview.id)
            ).all()
        return [HistoryEntry.model_validate(r).model_dump() for r in rows]

    def review_queue(
        self, user: User, status: str = SummaryStatus.submitted, offset: int = 0, limit: int = 50
    ) -> tuple[list[tuple[Summary, Call]], int]:
        """Summaries in ``status`` of the calls the user may see, oldest change first."""
        where = and_(Summary.status == status, visible_calls(user))
        with self.sessions() as db:
            base = select(Summary, Call).join(Call, Call.call_id == Summary.call_id).where(where)
            total = db.scalar(select(func.count()).select_from(base.subquery())) or 0
            rows = db.execute(base.order_by(Summary.updated_at).offset(offset).limit(limit)).all()
        return [(sm, c) for sm, c in rows], total
