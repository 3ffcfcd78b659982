"""Who may see and do what: the one access policy of the console.

Every route, page, websocket handshake and store query asks here. The rule for calls is written
once, as a :class:`CallScope` (equalities on ``calls`` columns), and that one definition drives
both the SQL condition the queries filter with and the check of a single loaded call, so the
list a user is shown and the calls that user may open cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, true

from .models import Call, Summary, User
from .vocabulary import Role, SummaryStatus

# Who may use which part of the console (the route dependencies in console/deps.py).
OVERSEERS = (Role.supervisor, Role.qa, Role.admin)  # live board, metrics, search across counselors
REVIEW_READERS = (Role.supervisor, Role.qa)  # the review queue (QA reads it, read-only)
REVIEWERS = (Role.supervisor,)  # approve / edit / reject summaries
ADMINS = (Role.admin,)  # users and the audit log
COUNSELORS = (Role.counselor,)  # the desk: feedback on suggestions, submitting summaries
OPERATORS = (Role.admin, Role.qa)  # the API docs and Prometheus metrics on the public port
KB_READERS = (Role.counselor, Role.supervisor, Role.qa)  # the regulation search


def role_of(user: User) -> Role | None:
    try:
        return Role(user.role)
    except ValueError:
        return None  # a role this version does not know sees nothing


@dataclass(frozen=True)
class CallScope:
    """The calls a user may open: those whose columns equal ``match``; ``None``: no call at all."""

    match: tuple[tuple[str, Any], ...] | None

    def where(self) -> ColumnElement[bool]:
        """The SQL condition on ``Call``."""
        if self.match is None:
            return false()
        if not self.match:
            return true()
        return and_(*(getattr(Call, column) == value for column, value in self.match))

    def admits(self, call: Call) -> bool:
        """The same condition on one loaded call (a NULL column equals nothing, as in SQL)."""
        if self.match is None:
            return False
        return all(
            (actual := getattr(call, column)) is not None and actual == value for column, value in self.match
        )


NO_CALLS = CallScope(None)
ALL_CALLS = CallScope(())


def call_scope(user: User) -> CallScope:
    """Counselors: their own calls. Supervisors: their team's; a supervisor without a team sees no
    call (a missing team is an administration mistake, not a licence to see every team; the pages
    say so). QA and admins: every call, read-only."""
    role = role_of(user)
    if role is Role.counselor:
        return CallScope((("counselor_id", user.username),))
    if role is Role.supervisor:
        return CallScope((("team", user.team),)) if user.team else NO_CALLS
    if role in (Role.qa, Role.admin):
        return ALL_CALLS
    return NO_CALLS


def history_scope(user: User) -> CallScope:
    """Whose earlier calls with the same caller a viewer of a call is shown (caller history):
    counselors and supervisors, their team's calls (a counselor without a team: their own; a
    supervisor without a team: none); QA and admins, every call. Only approved summaries are shown
    (the store's query), so a counselor reads a teammate's reviewed summary, never the call itself."""
    role = role_of(user)
    if role in (Role.counselor, Role.supervisor) and user.team:
        return CallScope((("team", user.team),))
    if role is Role.counselor:
        return CallScope((("counselor_id", user.username),))
    if role in (Role.qa, Role.admin):
        return ALL_CALLS
    return NO_CALLS


def scope_notice(user: User) -> str | None:
    """What the pages tell a user whose scope is empty by configuration."""
    if role_of(user) is Role.supervisor and not user.team:
        return "팀이 지정되지 않아 볼 수 있는 통화가 없습니다. 시스템 관리자에게 팀 지정을 요청하세요."
    return None


def visible_calls(user: User) -> ColumnElement[bool]:
    """SQL condition on ``Call`` for the calls a user may open."""
    return call_scope(user).where()


def can_see_call(user: User, call: Call) -> bool:
    return call_scope(user).admits(call)


def owns_call(user: User, call: Call) -> bool:
    """The counselor on the call: the only one who acts on it (feedback, submitting the summary)."""
    return role_of(user) is Role.counselor and call.counselor_id == user.username


def can_read_summary(user: User, summary: Summary) -> bool:
    """A counselor may not read a summary while it is under review (of a call they may see)."""
    return not (role_of(user) is Role.counselor and summary.status == SummaryStatus.submitted)


def sees_review_history(user: User) -> bool:
    """The replay page shows reviewers' decisions and comments to everyone but counselors."""
    return role_of(user) is not Role.counselor


def may_read_raw(user: User, raw_text_roles: Collection[Role]) -> bool:
    """Unmasked transcript text (each read is audited by the caller)."""
    return user.role in raw_text_roles
