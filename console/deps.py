"""The route dependencies: who is asking (and in which role), the store, the settings, and the two
checks that turn the access policy (:mod:`console.access`) into 403s for one call or summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.requests import HTTPConnection

from streaming.privacy import mask_text

from .access import (
    ADMINS,
    COUNSELORS,
    KB_READERS,
    OPERATORS,
    OVERSEERS,
    REVIEW_READERS,
    REVIEWERS,
    can_read_summary,
    can_see_call,
)
from .assist_client import AssistClient
from .auth import actor, current_user, require_csrf, require_roles
from .corpus import Corpus
from .models import Call, Summary, User
from .settings import ConsoleSettings
from .store import Store
from .vocabulary import AuditAction


def get_store(conn: HTTPConnection) -> Store:
    return conn.app.state.store


def get_settings(conn: HTTPConnection) -> ConsoleSettings:
    return conn.app.state.settings


def get_corpus(conn: HTTPConnection) -> Corpus:
    return conn.app.state.corpus


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ConsoleSettings, Depends(get_settings)]
CorpusDep = Annotated[Corpus, Depends(get_corpus)]

# The logged-in user (401 on the API, a redirect to /login on pages), and by role (403 otherwise).
CurrentUser = Annotated[User, Depends(current_user)]
Counselor = Annotated[User, Depends(require_roles(*COUNSELORS))]
Reviewer = Annotated[User, Depends(require_roles(*REVIEWERS))]
ReviewReader = Annotated[User, Depends(require_roles(*REVIEW_READERS))]
Overseer = Annotated[User, Depends(require_roles(*OVERSEERS))]
Admin = Annotated[User, Depends(require_roles(*ADMINS))]
# JSON writes carry the session's CSRF token in the X-CSRF-Token header.
Csrf = Depends(require_csrf)
Operator = Annotated[User, Depends(require_roles(*OPERATORS))]
KbReader = Annotated[User, Depends(require_roles(*KB_READERS))]


def get_assist(conn: HTTPConnection) -> AssistClient:
    return conn.app.state.assist


AssistDep = Annotated[AssistClient, Depends(get_assist)]


@dataclass(frozen=True)
class Auditor:
    """Writes the audit rows of one request: who (the logged-in user) and from where are filled in."""

    store: Store
    request: HTTPConnection
    user: User

    def __call__(
        self,
        action: AuditAction,
        call_id: str | None = None,
        *,
        target: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.store.audit(actor(self.request, self.user), action, call_id, target=target, detail=detail)


def get_auditor(request: Request, user: CurrentUser, store: StoreDep) -> Auditor:
    return Auditor(store, request, user)


Audited = Annotated[Auditor, Depends(get_auditor)]


def search_target(filters: dict[str, Any]) -> str:
    """A search as its audit row names it: ``q=…;counselor=…`` of the filters given, free text
    masked (a phone number searched for is personal data: the audit log records that a number was
    searched, not which one)."""
    parts = []
    for key, value in filters.items():
        if value is None or value == "":
            continue
        text = value.isoformat() if isinstance(value, date) else str(value)
        if key in ("q", "keyword", "counselor", "category"):
            text = mask_text(text)
        parts.append(f"{key}={text}")
    return ";".join(parts)[:128] or "(all)"


def visible_call(store: Store, user: User, call_id: str) -> Call:
    """The call, if the user may see it (404 if there is none, 403 if it is not theirs to see)."""
    call = store.get_call(call_id)
    if not can_see_call(user, call):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "이 통화를 볼 권한이 없습니다")
    return call


def readable_summary(store: Store, user: User, summary_id: str) -> tuple[Summary, Call]:
    """The summary and its call, if the user may see the call and read the summary now."""
    summary = store.get_summary(summary_id)
    call = visible_call(store, user, summary.call_id)
    if not can_read_summary(user, summary):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "검토 중인 요약은 검토가 끝난 뒤에 볼 수 있습니다")
    return summary, call
