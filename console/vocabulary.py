"""The console's words: roles, summary statuses and review actions, feedback kinds.

One definition each (``StrEnum``, as :class:`streaming.events.Channel`), with the Korean label the
pages show and, for summaries, the one transition table the review workflow follows. Members are
``str``: they compare equal to the strings stored in the database and sent in JSON.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class LabelledEnum(StrEnum):
    """Members are declared as ``name = "value", "label"``; the value is what is stored and sent."""

    label: str

    # ``label`` has a default only for the type checker, which reads a lookup such as ``Role("qa")``
    # as a call of this constructor; every member declares its label (checked here).
    def __new__(cls, value: str, label: str | None = None) -> Self:
        if label is None:
            raise TypeError(f"{cls.__name__}.{value}: a member needs a label")
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def parse(cls, value: str) -> Self | None:
        """The member named ``value``, or ``None`` (``value in SomeEnum`` raises on 3.11)."""
        try:
            return cls(value)
        except ValueError:
            return None


class Role(LabelledEnum):
    """What a console user is; :mod:`console.access` says what each may see and do."""

    counselor = "counselor", "상담사"
    supervisor = "supervisor", "관리자(슈퍼바이저)"
    qa = "qa", "품질관리(QA)"
    admin = "admin", "시스템 관리자"

    @property
    def home(self) -> str:
        """The page a user of this role lands on after log-in."""
        return _ROLE_HOMES[self]


_ROLE_HOMES = {
    Role.counselor: "/desk",
    Role.supervisor: "/board",
    Role.qa: "/search",
    Role.admin: "/admin/users",
}


class SummaryStatus(LabelledEnum):
    """``draft`` (the counselor may edit) → ``submitted`` (under review) → ``approved`` | ``rejected``."""

    draft = "draft", "작성 중"
    submitted = "submitted", "검토 대기"
    approved = "approved", "승인"
    rejected = "rejected", "반려"


class ReviewAction(LabelledEnum):
    """What happens to a summary: the counselor submits it, a reviewer decides."""

    submit = "submit", "제출"
    approve = "approve", "승인"
    edit = "edit", "수정 후 승인"  # approve with the reviewer's corrections
    reject = "reject", "반려"


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


class AuditAction(StrEnum):
    """What an audit row records (``audit_log.action``)."""

    # log-in
    login = "login"
    login_failed = "login_failed"
    logout = "logout"
    # reads of call content (each names the call)
    call_view = "call_view"  # a call's page or record
    call_events = "call_events"  # the call's event log (replay, catch-up)
    transcript = "transcript"  # masked transcript
    raw_transcript = "raw_transcript"  # unmasked transcript (raw-text roles only)
    summary_view = "summary_view"  # a summary or its review history
    review_view = "review_view"  # the review page (summary and transcript)
    feedback_view = "feedback_view"
    caller_history = "caller_history"  # the caller's earlier calls
    live_stream = "live_stream"  # a websocket opened on the call
    search = "search"  # a search or list of calls (target: the filters, masked)
    kb_search = "kb_search"  # a search of the regulations (target: the query, masked)
    # administration
    user_create = "user_create"
    user_deactivate = "user_deactivate"
    user_activate = "user_activate"
    user_password = "user_password"
    user_sessions_revoke = "user_sessions_revoke"
    audit_read = "audit_read"
    erase = "erase"
    retention = "retention"


# Seoul's districts: the regulation search's district filter (a call that names one preselects it).
DISTRICTS = (
    "종로구", "중구", "용산구", "성동구", "광진구", "동대문구", "중랑구", "성북구", "강북구", "도봉구",
    "노원구", "은평구", "서대문구", "마포구", "양천구", "강서구", "구로구", "금천구", "영등포구", "동작구",
    "관악구", "서초구", "강남구", "송파구", "강동구",
)  # fmt: skip
