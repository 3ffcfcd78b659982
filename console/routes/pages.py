"""The server-rendered pages (everything but log-in): the desk and call views, replay, the live
board, the review queue and form, search, stats and user administration.

The pages' own JavaScript reads the JSON API and the live websocket for everything that changes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import schemas
from ..access import OPERATORS, can_read_summary, owns_call, sees_review_history
from ..auth import CSRF_FIELD, check_csrf, generate_password, hash_password
from ..deps import (
    Admin,
    Audited,
    Counselor,
    CurrentUser,
    Overseer,
    Reviewer,
    ReviewReader,
    SettingsDep,
    StoreDep,
    readable_summary,
    search_target,
    visible_call,
)
from ..rendering import call_view, page, parse_day
from ..store import NotFound
from ..vocabulary import REVIEWER_ACTIONS, AuditAction, ReviewAction, SummaryStatus
from .users import new_password, set_active

router = APIRouter(include_in_schema=False)


@router.get("/desk", response_class=HTMLResponse)
def desk(request: Request, user: Counselor) -> HTMLResponse:
    return page(request, "call.html", user, call=None, mode="desk", readonly=False)


@router.get("/calls/{call_id}", response_class=HTMLResponse)
def call_page(
    request: Request, call_id: str, user: CurrentUser, store: StoreDep, audit: Audited
) -> HTMLResponse:
    call = visible_call(store, user, call_id)
    audit(AuditAction.call_view, call_id, detail="page")
    readonly = not owns_call(user, call)
    return page(request, "call.html", user, call=call_view(call), mode="call", readonly=readonly)


@router.get("/calls/{call_id}/replay", response_class=HTMLResponse)
def replay_page(
    request: Request, call_id: str, user: CurrentUser, store: StoreDep, audit: Audited
) -> HTMLResponse:
    call = visible_call(store, user, call_id)
    audit(AuditAction.call_view, call_id, detail="replay page (summary, review history, feedback)")
    sm = store.summary_for_call(call_id)
    history = store.review_history(sm.summary_id) if sm and sees_review_history(user) else []
    return page(
        request,
        "replay.html",
        user,
        call=call_view(call),
        summary=schemas.SummaryOut.model_validate(sm).model_dump()
        if sm and can_read_summary(user, sm)
        else None,
        history=history,
        feedback=store.feedback_for_call(call_id),
    )


@router.get("/board", response_class=HTMLResponse)
def board_page(request: Request, user: Overseer) -> HTMLResponse:
    return page(request, "board.html", user)


@router.get("/reviews", response_class=HTMLResponse)
def reviews_page(
    request: Request,
    user: ReviewReader,
    store: StoreDep,
    settings: SettingsDep,
    audit: Audited,
    status_: Annotated[str, Query(alias="status")] = SummaryStatus.submitted,
    offset: int = 0,
) -> HTMLResponse:
    if SummaryStatus.parse(status_) is None:
        raise HTTPException(400, "알 수 없는 상태")
    rows, total = store.review_queue(user, status_, offset, settings.page_size)
    audit(AuditAction.search, target=f"reviews status={status_}", detail=f"total={total} offset={offset}")
    return page(
        request,
        "reviews.html",
        user,
        rows=rows,
        total=total,
        status=status_,
        offset=offset,
        limit=settings.page_size,
    )


@router.get("/reviews/{summary_id}", response_class=HTMLResponse)
def review_page(
    request: Request, summary_id: str, user: ReviewReader, store: StoreDep, audit: Audited
) -> HTMLResponse:
    sm, call = readable_summary(store, user, summary_id)
    audit(AuditAction.review_view, call.call_id, target=summary_id)
    return page(
        request,
        "review.html",
        user,
        sm=sm,
        call=call_view(call),
        segments=store.final_segments(call.call_id),
        history=store.review_history(summary_id),
        feedback=store.feedback_for_call(call.call_id),
    )


@router.post("/reviews/{summary_id}")
async def review_form(request: Request, summary_id: str, user: Reviewer, store: StoreDep) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD, "")))
    action = str(form.get("action", ""))
    if action not in REVIEWER_ACTIONS:
        raise HTTPException(400, "알 수 없는 작업")
    sm, _call = await run_in_threadpool(readable_summary, store, user, summary_id)
    content = None
    if action == ReviewAction.edit:
        content = _content_from_form(form, sm.content)
    comment = str(form.get("comment", "")).strip() or None
    await run_in_threadpool(store.review_action, summary_id, user.username, action, comment, content)
    return RedirectResponse(f"/reviews/{quote(summary_id)}", status.HTTP_303_SEE_OTHER)


def _lines(value: Any) -> list[str]:
    return [x.strip() for x in str(value or "").splitlines() if x.strip()]


def _content_from_form(form: Any, current: dict[str, Any]) -> dict[str, Any]:
    """The review form's fields (one item a line; actions as ``kind: text``) over the current content."""
    actions = []
    for line in _lines(form.get("actions")):
        kind, sep, text = line.partition(":")
        actions.append(
            {"kind": kind.strip(), "text": text.strip()} if sep else {"kind": "안내", "text": line}
        )
    content = dict(current)
    content.update(
        category=str(form.get("category") or current.get("category", ""))[:64],
        call_reason=str(form.get("call_reason") or "")[:2000],
        key_facts=_lines(form.get("key_facts")),
        counselor_answers=_lines(form.get("counselor_answers")),
        actions=actions,
    )
    return schemas.SummaryContent.model_validate(content).model_dump()


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    user: CurrentUser,
    store: StoreDep,
    settings: SettingsDep,
    audit: Audited,
    day_from: str = "",
    day_to: str = "",
    counselor: str = "",
    category: str = "",
    keyword: str = "",
    q: str = "",
    offset: int = 0,
) -> HTMLResponse:
    calls, total = store.list_calls(
        user,
        day_from=parse_day(day_from),
        day_to=parse_day(day_to),
        counselor=counselor or None,
        category=category or None,
        keyword=keyword or None,
        q=q or None,
        offset=max(0, offset),
        limit=settings.page_size,
    )
    params = {
        "day_from": day_from,
        "day_to": day_to,
        "counselor": counselor,
        "category": category,
        "keyword": keyword,
        "q": q,
    }
    audit(AuditAction.search, target=search_target(params), detail=f"total={total} offset={offset} (page)")
    return page(
        request,
        "search.html",
        user,
        calls=[call_view(c) for c in calls],
        total=total,
        offset=offset,
        limit=settings.page_size,
        params=params,
    )


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, user: Overseer, store: StoreDep, day: str = "") -> HTMLResponse:
    shadow = store.shadow_agreement(store.now() - timedelta(hours=24)) if user.role in OPERATORS else []
    return page(
        request, "stats.html", user, m=store.metrics(user, parse_day(day) or store.today()), shadow=shadow
    )


def _users_page(request: Request, user: Any, store: Any, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("created", None)
    ctx.setdefault("notice", None)
    return page(request, "users.html", user, users=store.list_users(), sessions=store.session_counts(), **ctx)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, user: Admin, store: StoreDep) -> HTMLResponse:
    return _users_page(request, user, store)


@router.post("/admin/users", response_class=HTMLResponse)
def users_add(
    request: Request,
    user: Admin,
    store: StoreDep,
    audit: Audited,
    username: Annotated[str, Form()],
    role: Annotated[str, Form()],
    team: Annotated[str, Form()] = "",
    csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> HTMLResponse:
    check_csrf(request, csrf_token_)
    body = schemas.UserIn(username=username.strip(), role=role, team=team.strip() or None)
    password = generate_password()
    created = store.add_user(body.username, hash_password(password), body.role, body.team)
    audit(AuditAction.user_create, target=created.username, detail=f"role={created.role} team={created.team}")
    # The generated password is on this page once (no-store: the app sends it on every page).
    return _users_page(request, user, store, created=(body.username, password))


USER_ACTIONS = {
    "deactivate": "{u} 계정을 중지했습니다. 열린 세션 {n}개를 종료했습니다.",
    "activate": "{u} 계정을 다시 사용하도록 했습니다.",
    "sessions": "{u}의 세션 {n}개를 종료했습니다.",
}


@router.post("/admin/users/{username}/{action}", response_class=HTMLResponse)
def users_action(
    request: Request,
    username: str,
    action: str,
    user: Admin,
    store: StoreDep,
    audit: Audited,
    csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> HTMLResponse:
    """Deactivate / activate, a new password (shown once), end sessions: each audited."""
    check_csrf(request, csrf_token_)
    if action == "password":
        _user, generated = new_password(store, username, None, audit)
        return _users_page(request, user, store, created=(username, generated))
    if action in ("deactivate", "activate"):
        before = store.session_counts()
        target = set_active(store, user, username, action == "activate", audit)
        n = before.get(target.id, 0)
    elif action == "sessions":
        target = store.user_by_name(username)
        if target is None:
            raise NotFound(username)
        n = store.revoke_sessions(target.id)
        audit(AuditAction.user_sessions_revoke, target=username, detail=f"sessions_ended={n}")
    else:
        raise HTTPException(404, "알 수 없는 작업")
    return _users_page(request, user, store, notice=USER_ACTIONS[action].format(u=username, n=n))
