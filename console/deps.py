"""The route dependencies: who is asking (and in which role), the store, the settings, and the two
checks that turn the access policy (:mod:`console.access`) into 403s for one call or summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.requests import HTTPConnection

from .access import (
    ADMINS,
    COUNSELORS,
    OVERSEERS,
    REVIEW_READERS,
    REVIEWERS,
    can_read_summary,
    can_see_call,
)
from .auth import current_user, require_csrf, require_roles
from .corpus import Corpus
from .models import Call, Summary, User
from .settings import ConsoleSettings
from .store import Store


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
