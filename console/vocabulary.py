"""The console's words: roles, summary statuses and review actions, feedback kinds.

One definition each (``StrEnum``, as :class:`streaming.events.Channel`), with the Korean label the
pages show and, for summaries, the one transition table the review workflow follows. Members are
``str``: they compare equal to the strings stored in the database and sent in JSON.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a console user is; :mod:`console.access` says what each may see and do."""

    counselor = "counselor"
    supervisor = "supervisor"
    qa = "qa"
    admin = "admin"

    @property
    def label(self) -> str:
        return _ROLE_LABELS[self]

    @property
    def home(self) -> str:
        """The page a user of this role lands on after log-in."""
        return _ROLE_HOMES[self]


_ROLE_LABELS = {
    Role.counselor: "상담사",
    Role.supervisor: "관리자(슈퍼바이저)",
    Role.qa: "품질관리(QA)",
    Role.admin: "시스템 관리자",
}
_ROLE_HOMES = {
    Role.counselor: "/desk",
    Role.supervisor: "/board",
    Role.qa: "/search",
    Role.admin: "/admin/users",
}


class SummaryStatus(StrEnum):
    """``draft`` (the counselor may edit) → ``submitted`` (under review) → ``approved`` | ``rejected``."""

    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]

    @classmethod
    def parse(cls, value: str) -> SummaryStatus | None:
        """The member named ``value``, or ``None`` (``value in SummaryStatus`` raises on 3.11)."""
        try:
            return cls(value)
        except ValueError:
            return None


_STATUS_LABELS = {
    SummaryStatus.draft: "작성 중",
    SummaryStatus.submitted: "검토 대기",
    SummaryStatus.approved: "승인",
    SummaryStatus.rejected: "반려",
}


class ReviewAction(StrEnum):
    """What happens to a summary: the counselor submits it, a reviewer decides."""

    submit = "submit"
    approve = "approve"
    edit = "edit"  # approve with the reviewer's corrections
    reject = "reject"

    @property
    def label(self) -> str:
        return _ACTION_LABELS[self]


_ACTION_LABELS = {
    ReviewAction.submit: "제출",
    ReviewAction.approve: "승인",
    ReviewAction.edit: "수정 후 승인",
    ReviewAction.reject: "반려",
}

# The review workflow: action → (the statuses it may be taken from, the status it leads to).
TRANSITIONS: dict[ReviewAction, tuple[frozenset[SummaryStatus], SummaryStatus]] = {
    ReviewAction.submit: (frozenset({SummaryStatus.draft, SummaryStatus.rejected}), SummaryStatus.submitted),
    ReviewAction.approve: (frozenset({SummaryStatus.submitted}), SummaryStatus.approved),
    ReviewAction.edit: (frozenset({SummaryStatus.submitted}), SummaryStatus.approved),
    ReviewAction.reject: (frozenset({SummaryStatus.submitted}), SummaryStatus.rejected),
}
REVIEWER_ACTIONS = (ReviewAction.approve, ReviewAction.edit, ReviewAction.reject)


class FeedbackKind(StrEnum):
    """``vote``: 👍/👎 (one per user and suggestion, the last counts); ``copy``: the draft was copied."""

    vote = "vote"
    copy = "copy"


class Vote(StrEnum):
    up = "up"
    down = "down"


# For the templates, which look labels up by the stored string.
ROLE_LABEL = {r.value: r.label for r in Role}
STATUS_LABEL = {s.value: s.label for s in SummaryStatus}
ACTION_LABEL = {a.value: a.label for a in ReviewAction}
