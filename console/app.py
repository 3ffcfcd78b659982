"""The console web app: pages (Jinja2 + a little plain JS), the JSON API and the live websocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request, WebSocket, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.websockets import WebSocketDisconnect, WebSocketState

from streaming.settings import KafkaSettings

from . import schemas
from .access import (
    ADMINS,
    COUNSELORS,
    OVERSEERS,
    REVIEW_READERS,
    REVIEWERS,
    can_read_summary,
    can_see_call,
    may_read_raw,
    owns_call,
    sees_review_history,
)
from .auth import (
    CSRF_FIELD,
    LoginRequired,
    authenticate,
    check_csrf,
    csrf_token,
    current_user,
    generate_password,
    hash_password,
    login_session,
    require_csrf,
    require_roles,
    websocket_user,
)
from .corpus import Corpus
from .db import make_engine, migrate
from .hub import WS_DROPPED, Hub
from .models import Call, Summary, User
from .recorder import Recorder, broker_reachable
from .settings import ConsoleSettings
from .store import Conflict, NotFound, Store
from .vocabulary import (
    ACTION_LABEL,
    REVIEWER_ACTIONS,
    ROLE_LABEL,
    STATUS_LABEL,
    FeedbackKind,
    ReviewAction,
    Role,
    SummaryStatus,
)

log = logging.getLogger("dasan.console")
HERE = Path(__file__).resolve().parent

AnyUser = Annotated[User, Depends(current_user)]
Reviewer = Annotated[User, Depends(require_roles(*REVIEWERS))]
Overseer = Annotated[User, Depends(require_roles(*OVERSEERS))]
ReviewReader = Annotated[User, Depends(require_roles(*REVIEW_READERS))]
Admin = Annotated[User, Depends(require_roles(*ADMINS))]
Counselor = Annotated[User, Depends(require_roles(*COUNSELORS))]
Csrf = Depends(require_csrf)


def create_app(
    settings: ConsoleSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    with_recorder: bool = True,
    store: Store | None = None,
) -> FastAPI:
    settings = settings or ConsoleSettings()
    if store is None:
        engine = make_engine(settings)
        if settings.migrate_on_start:
            migrate(engine, settings)
        store = Store(engine, settings.timezone)
    hub = Hub(settings.ws_queue_max)
    recorder = (
        Recorder(store, hub, kafka, settings.recorder_group, raw_retention_days=settings.raw_retention_days)
        if with_recorder
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        if recorder is not None:
            recorder.start()
        try:
            yield
        finally:
            if recorder is not None:
                await run_in_threadpool(recorder.stop)

    app = FastAPI(
        title="Dasan Assist console",
        description="상담 화면, 검토, 품질관리(QA) API. 모든 텍스트는 마스킹되어 제공됩니다.",
        version="1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.hub = hub
    app.state.recorder = recorder
    app.state.kafka = kafka or KafkaSettings()
    app.state.corpus = Corpus(settings.corpus_path)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie="dasan_session",
        max_age=settings.session_max_age_s,
        same_site=settings.cookie_samesite,
        https_only=settings.secure_cookies,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(ROLE_LABEL=ROLE_LABEL, STATUS_LABEL=STATUS_LABEL, ACTION_LABEL=ACTION_LABEL)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        resp: Response = await call_next(request)
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        return resp

    # ------------------------------------------------------------------ errors
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status.HTTP_303_SEE_OTHER)

    @app.exception_handler(NotFound)
    async def _nf(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, f"찾을 수 없습니다: {exc}")

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        return _error(request, 409, str(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))

    def _error(request: Request, code: int, detail: str) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": detail}, status_code=code)
        user = _maybe_user(request)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"code": code, "detail": detail, "user": user, "csrf": csrf_token(request)},
            code,
        )

    def _maybe_user(request: Request) -> User | None:
        try:
            return current_user(request)
        except (LoginRequired, HTTPException):
            return None

    def page(request: Request, name: str, user: User | None, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {"user": user, "csrf": csrf_token(request), "settings": settings, **ctx}
        )

    # ------------------------------------------------------------------ helpers
    def call_for(user: User, call_id: str) -> Call:
        call = store.get_call(call_id)
        if not can_see_call(user, call):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "이 통화를 볼 권한이 없습니다")
        return call

    def summary_for(user: User, summary_id: str) -> tuple[Summary, Call]:
        sm = store.get_summary(summary_id)
        call = call_for(user, sm.call_id)
        if not can_read_summary(user, sm):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "검토 중인 요약은 검토가 끝난 뒤에 볼 수 있습니다")
        return sm, call

    # ------------------------------------------------------------------ operations
    @app.get("/healthz", tags=["ops"], response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        checks: dict[str, Any] = {}
        try:
            store.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {exc.__class__.__name__}"
        checks["broker"] = "ok" if broker_reachable(app.state.kafka) else "unreachable"
        if recorder is not None:
            checks["recorder"] = "ok" if recorder.healthy() else "not polling"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def prom() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ log-in
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return page(request, "login.html", None, next=_safe_next(next), error=None, username="")

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        check_csrf(request, csrf_token_)
        user = authenticate(store, username.strip(), password)
        if user is None:
            resp = page(
                request,
                "login.html",
                None,
                next=_safe_next(next),
                error="아이디 또는 비밀번호가 맞지 않습니다.",
                username=username.strip()[:64],
            )
            resp.status_code = 401
            return resp
        login_session(request, user)
        log.info("login", extra={"username": user.username, "role": user.role})
        target = _safe_next(next)
        return RedirectResponse(Role(user.role).home if target == "/" else target, status.HTTP_303_SEE_OTHER)

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> Response:
        check_csrf(request, csrf_token_)
        request.session.clear()
        return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)

    @app.get("/", include_in_schema=False)
    def home(user: AnyUser) -> Response:
        return RedirectResponse(Role(user.role).home, status.HTTP_303_SEE_OTHER)

    # ------------------------------------------------------------------ pages
    @app.get("/desk", response_class=HTMLResponse, include_in_schema=False)
    def desk(request: Request, user: Counselor) -> HTMLResponse:
        return page(request, "call.html", user, call=None, mode="desk", readonly=False)

    @app.get("/calls/{call_id}", response_class=HTMLResponse, include_in_schema=False)
    def call_page(request: Request, call_id: str, user: AnyUser) -> HTMLResponse:
        call = call_for(user, call_id)
        readonly = not owns_call(user, call)
        return page(request, "call.html", user, call=_call_view(call), mode="call", readonly=readonly)

    @app.get("/calls/{call_id}/replay", response_class=HTMLResponse, include_in_schema=False)
    def replay_page(request: Request, call_id: str, user: AnyUser) -> HTMLResponse:
        call = call_for(user, call_id)
        sm = store.summary_for_call(call_id)
        history = store.review_history(sm.summary_id) if sm and sees_review_history(user) else []
        return page(
            request,
            "replay.html",
            user,
            call=_call_view(call),
            summary=schemas.SummaryOut.model_validate(sm).model_dump()
            if sm and can_read_summary(user, sm)
            else None,
            history=history,
            feedback=store.feedback_for_call(call_id),
        )

    @app.get("/board", response_class=HTMLResponse, include_in_schema=False)
    def board_page(request: Request, user: Overseer) -> HTMLResponse:
        return page(request, "board.html", user)

    @app.get("/reviews", response_class=HTMLResponse, include_in_schema=False)
    def reviews_page(
        request: Request,
        user: ReviewReader,
        status_: Annotated[str, Query(alias="status")] = SummaryStatus.submitted,
        offset: int = 0,
    ) -> HTMLResponse:
        if SummaryStatus.parse(status_) is None:
            raise HTTPException(400, "알 수 없는 상태")
        rows, total = store.review_queue(user, status_, offset, settings.page_size)
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

    @app.get("/reviews/{summary_id}", response_class=HTMLResponse, include_in_schema=False)
    def review_page(request: Request, summary_id: str, user: ReviewReader) -> HTMLResponse:
        sm, call = summary_for(user, summary_id)
        return page(
            request,
            "review.html",
            user,
            sm=sm,
            call=_call_view(call),
            segments=store.final_segments(call.call_id),
            history=store.review_history(summary_id),
            feedback=store.feedback_for_call(call.call_id),
        )

    @app.post("/reviews/{summary_id}", include_in_schema=False)
    async def review_form(request: Request, summary_id: str, user: Reviewer) -> Response:
        form = await request.form()
        check_csrf(request, str(form.get(CSRF_FIELD, "")))
        action = str(form.get("action", ""))
        if action not in REVIEWER_ACTIONS:
            raise HTTPException(400, "알 수 없는 작업")
        sm, _call = await run_in_threadpool(summary_for, user, summary_id)
        content = None
        if action == ReviewAction.edit:
            content = _content_from_form(form, sm.content)
        comment = str(form.get("comment", "")).strip() or None
        await run_in_threadpool(store.review_action, summary_id, user.username, action, comment, content)
        return RedirectResponse(f"/reviews/{quote(summary_id)}", status.HTTP_303_SEE_OTHER)

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(
        request: Request,
        user: AnyUser,
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
            day_from=_date(day_from),
            day_to=_date(day_to),
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
        return page(
            request,
            "search.html",
            user,
            calls=[_call_view(c) for c in calls],
            total=total,
            offset=offset,
            limit=settings.page_size,
            params=params,
        )

    @app.get("/stats", response_class=HTMLResponse, include_in_schema=False)
    def stats_page(request: Request, user: Overseer, day: str = "") -> HTMLResponse:
        d = _date(day) or store.today()
        return page(request, "stats.html", user, m=store.metrics(user, d))

    @app.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def users_page(request: Request, user: Admin) -> HTMLResponse:
        return page(request, "users.html", user, users=store.list_users(), created=None)

    @app.post("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def users_add(
        request: Request,
        user: Admin,
        username: Annotated[str, Form()],
        role: Annotated[str, Form()],
        team: Annotated[str, Form()] = "",
        csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    ) -> HTMLResponse:
        check_csrf(request, csrf_token_)
        body = schemas.UserIn(username=username.strip(), role=role, team=team.strip() or None)  # type: ignore[arg-type]
        password = generate_password()
        store.add_user(body.username, hash_password(password), body.role, body.team)
        return page(request, "users.html", user, users=store.list_users(), created=(body.username, password))

    # ------------------------------------------------------------------ API: calls
    @app.get("/api/me", tags=["users"], response_model=schemas.UserOut)
    def me(user: AnyUser) -> Any:
        return user

    @app.get("/api/calls", tags=["calls"], response_model=schemas.Page[schemas.CallOut])
    def api_calls(
        user: AnyUser,
        active: bool | None = None,
        day_from: date | None = None,
        day_to: date | None = None,
        counselor: str | None = None,
        category: str | None = None,
        keyword: str | None = Query(default=None, max_length=100),
        q: Annotated[
            str | None, Query(max_length=200, description="Full-text search in transcripts and summaries")
        ] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Any:
        calls, total = store.list_calls(
            user,
            active=active,
            day_from=day_from,
            day_to=day_to,
            counselor=counselor,
            category=category,
            keyword=keyword,
            q=q,
            offset=offset,
            limit=limit,
        )
        return {"items": calls, "total": total, "offset": offset, "limit": limit}

    @app.get("/api/board", tags=["calls"], response_model=list[schemas.BoardRow])
    def api_board(user: Overseer) -> Any:
        return store.board(user)

    @app.get("/api/calls/{call_id}", tags=["calls"], response_model=schemas.CallOut)
    def api_call(call_id: str, user: AnyUser) -> Any:
        return call_for(user, call_id)

    @app.get("/api/calls/{call_id}/events", tags=["calls"], response_model=list[schemas.EventOut])
    def api_events(
        call_id: str,
        user: AnyUser,
        after: Annotated[int, Query(ge=0, description="Last seq seen")] = 0,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    ) -> Any:
        call_for(user, call_id)
        return store.events_after(call_id, after, limit)

    @app.get("/api/calls/{call_id}/transcript", tags=["calls"], response_model=list[schemas.SegmentOut])
    def api_transcript(
        call_id: str,
        user: AnyUser,
        raw: Annotated[
            bool, Query(description="Unmasked text: only roles in DASAN_CONSOLE_RAW_TEXT_ROLES; audited")
        ] = False,
    ) -> Any:
        call_for(user, call_id)
        if raw:
            if not may_read_raw(user, settings.raw_text_roles):
                raise HTTPException(status.HTTP_403_FORBIDDEN, "원문(마스킹 해제) 열람 권한이 없습니다")
            store.audit(user, "raw_transcript", call_id, "GET /api/calls/{id}/transcript?raw=true")
            log.info("raw transcript read", extra={"call_id": call_id, "username": user.username})
        return [
            {
                "segment_id": s.segment_id,
                "channel": s.channel,
                "start_s": s.start_s,
                "end_s": s.end_s,
                "text": s.text_raw if raw and s.text_raw else s.text_masked,
                "masked": not (raw and s.text_raw),
            }
            for s in store.final_segments(call_id)
        ]

    @app.get("/api/calls/{call_id}/history", tags=["calls"], response_model=list[schemas.CallerHistoryEntry])
    def api_history(call_id: str, user: AnyUser) -> Any:
        """The same caller's earlier calls (keyed hash of the number) with approved summaries only."""
        return store.caller_history(call_for(user, call_id))

    @app.get("/api/calls/{call_id}/summary", tags=["summaries"], response_model=schemas.SummaryOut | None)
    def api_call_summary(call_id: str, user: AnyUser) -> Any:
        call_for(user, call_id)
        sm = store.summary_for_call(call_id)
        if sm is None:
            return None
        return summary_for(user, sm.summary_id)[0]

    @app.get("/api/calls/{call_id}/feedback", tags=["feedback"], response_model=list[schemas.FeedbackOut])
    def api_call_feedback(call_id: str, user: AnyUser) -> Any:
        call_for(user, call_id)
        return store.feedback_for_call(call_id)

    @app.get("/api/active-call", tags=["calls"], response_model=schemas.CallOut | None)
    def api_active_call(user: Counselor) -> Any:
        """The counselor's newest ongoing call (the desk follows it)."""
        calls, _ = store.list_calls(user, active=True, limit=1)
        return calls[0] if calls else None

    # ------------------------------------------------------------------ API: feedback
    @app.post(
        "/api/suggestions/{suggestion_id}/feedback",
        tags=["feedback"],
        response_model=schemas.FeedbackOut,
        dependencies=[Csrf],
    )
    def api_feedback(suggestion_id: str, body: schemas.FeedbackIn, user: Counselor) -> Any:
        sug = store.get_suggestion(suggestion_id)
        call = call_for(user, sug.call_id)
        if not owns_call(user, call):
            raise HTTPException(403, "자기 통화의 제안에만 평가할 수 있습니다")
        return store.add_feedback(
            sug, user.username, FeedbackKind.vote, body.vote, (body.reason or "").strip() or None
        )

    @app.post(
        "/api/suggestions/{suggestion_id}/copied",
        tags=["feedback"],
        response_model=schemas.FeedbackOut,
        dependencies=[Csrf],
    )
    def api_copied(suggestion_id: str, user: Counselor) -> Any:
        sug = store.get_suggestion(suggestion_id)
        call_for(user, sug.call_id)
        return store.add_feedback(sug, user.username, FeedbackKind.copy, None, None)

    # ------------------------------------------------------------------ API: summaries and review
    @app.get("/api/summaries/{summary_id}", tags=["summaries"], response_model=schemas.SummaryOut)
    def api_summary(summary_id: str, user: AnyUser) -> Any:
        return summary_for(user, summary_id)[0]

    @app.get(
        "/api/summaries/{summary_id}/history", tags=["summaries"], response_model=list[schemas.HistoryEntry]
    )
    def api_summary_history(summary_id: str, user: AnyUser) -> Any:
        summary_for(user, summary_id)
        return store.review_history(summary_id)

    @app.post(
        "/api/summaries/{summary_id}/submit",
        tags=["summaries"],
        response_model=schemas.SummaryOut,
        dependencies=[Csrf],
    )
    def api_submit(summary_id: str, body: schemas.SubmitIn, user: Counselor) -> Any:
        sm, call = summary_for(user, summary_id)
        if not owns_call(user, call):
            raise HTTPException(403, "자기 통화의 요약만 제출할 수 있습니다")
        content = body.content.model_dump() if body.content else None
        return store.review_action(summary_id, user.username, ReviewAction.submit, None, content)

    @app.get("/api/reviews", tags=["summaries"], response_model=schemas.Page[schemas.ReviewItem])
    def api_reviews(
        user: ReviewReader,
        status_: Annotated[SummaryStatus, Query(alias="status")] = SummaryStatus.submitted,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Any:
        rows, total = store.review_queue(user, status_, offset, limit)
        items = [{"summary": sm, "call": c} for sm, c in rows]
        return {"items": items, "total": total, "offset": offset, "limit": limit}

    @app.post(
        "/api/summaries/{summary_id}/review",
        tags=["summaries"],
        response_model=schemas.SummaryOut,
        dependencies=[Csrf],
    )
    def api_review(summary_id: str, body: schemas.ReviewIn, user: Reviewer) -> Any:
        summary_for(user, summary_id)
        if body.action == ReviewAction.edit and body.content is None:
            raise HTTPException(422, "'edit' needs content")
        content = body.content.model_dump() if body.content else None
        return store.review_action(summary_id, user.username, body.action, body.comment, content)

    # ------------------------------------------------------------------ API: articles, metrics, users
    @app.get("/api/articles", tags=["knowledge"], response_model=schemas.ArticleOut)
    def api_article(
        id: Annotated[str, Query(max_length=200, description="Corpus record id (passage doc_id)")],
        user: AnyUser,
    ) -> Any:
        art = app.state.corpus.article(id)
        if art is None:
            raise NotFound(id)
        return art

    @app.get("/api/metrics", tags=["metrics"], response_model=schemas.Metrics)
    def api_metrics(user: Overseer, day: date | None = None) -> Any:
        return store.metrics(user, day or store.today())

    @app.get("/api/users", tags=["users"], response_model=list[schemas.UserOut])
    def api_users(user: Admin) -> Any:
        return store.list_users()

    @app.post(
        "/api/users", tags=["users"], response_model=schemas.UserCreated, status_code=201, dependencies=[Csrf]
    )
    def api_add_user(body: schemas.UserIn, user: Admin) -> Any:
        password = body.password or generate_password()
        u = store.add_user(body.username, hash_password(password), body.role, body.team, body.display_name)
        return {
            **schemas.UserOut.model_validate(u).model_dump(),
            "password": None if body.password else password,
        }

    @app.get("/api/audit", tags=["users"], response_model=list[schemas.AuditEntry])
    def api_audit(user: Admin, call_id: str | None = None) -> Any:
        return store.audit_entries(call_id)

    # ------------------------------------------------------------------ websocket
    @app.websocket("/ws/calls/{call_id}")
    async def ws_call(ws: WebSocket, call_id: str, after: int = 0) -> None:
        """Live events of one call: first everything after ``after`` from the store, then live.

        Messages: ``{"type":"events","items":[{seq,at,event}…]}`` and ``{"type":"status",…}``.
        A client that falls behind is closed with code 1013 and resumes with ``after=<last seq>``.
        """
        user = await run_in_threadpool(websocket_user, ws)
        if user is None:
            await ws.close(code=4401)
            return
        try:
            call = await run_in_threadpool(store.get_call, call_id)
        except NotFound:
            await ws.close(code=4404)
            return
        if not can_see_call(user, call):
            await ws.close(code=4403)
            return
        await ws.accept()
        await _stream(ws, call_id, max(0, after))

    async def _stream(ws: WebSocket, call_id: str, after: int) -> None:
        sub = hub.subscribe(call_id)  # before reading the store: nothing committed in between is missed
        last = after
        reader = asyncio.create_task(_drain_client(ws))
        overflow = asyncio.ensure_future(sub.overflowed.wait())

        async def send(msg: dict[str, Any]) -> None:
            await asyncio.wait_for(ws.send_json(msg), settings.ws_send_timeout_s)

        async def catch_up() -> None:
            nonlocal last
            while True:
                items = await run_in_threadpool(store.events_after, call_id, last, settings.ws_batch_max)
                if not items:
                    return
                await send({"type": "events", "items": items})
                last = items[-1]["seq"]
                if len(items) < settings.ws_batch_max:
                    return

        try:
            await catch_up()
            await send(_status(last))
            while not reader.done():
                if sub.overflowed.is_set():
                    log.warning("websocket client fell behind, closing it", extra={"call_id": call_id})
                    return  # closed below with 1013: the client resumes from its last seq
                get = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait(
                    {get, reader, overflow},
                    timeout=settings.ws_heartbeat_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if get not in done:
                    get.cancel()
                    if reader in done or sub.overflowed.is_set():
                        continue
                    await catch_up()  # events recorded by another instance, if any
                    await send(_status(last))
                    continue
                msg = get.result()
                if msg["seq"] <= last:
                    continue
                if msg["seq"] == last + 1:
                    await send({"type": "events", "items": [msg]})
                    last = msg["seq"]
                else:
                    await catch_up()
        except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                WS_DROPPED.labels(reason="send_timeout").inc()
                log.warning("websocket send timed out, dropping client", extra={"call_id": call_id})
        finally:
            hub.unsubscribe(sub)
            reader.cancel()
            overflow.cancel()
            if ws.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=1013, reason="resume"), settings.ws_send_timeout_s)

    async def _drain_client(ws: WebSocket) -> None:
        with contextlib.suppress(Exception):
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return

    def _status(last: int) -> dict[str, Any]:
        rec_ok = recorder.healthy() if recorder is not None else None
        return {
            "type": "status",
            "last_seq": last,
            "recorder_ok": rec_ok,
            "at": store.now().isoformat(),
        }

    return app


# --------------------------------------------------------------------------- small helpers


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _date(s: str | None) -> date | None:
    if not s:
        return None
    try:
        return date.fromisoformat(s)
    except ValueError as exc:
        raise HTTPException(400, f"날짜 형식이 잘못되었습니다: {s}") from exc


def _lines(value: Any) -> list[str]:
    return [x.strip() for x in str(value or "").splitlines() if x.strip()]


def _content_from_form(form: Any, current: dict[str, Any]) -> dict[str, Any]:
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


def _call_view(call: Call) -> dict[str, Any]:
    """A call as the page templates read it: the API's JSON shape."""
    return schemas.CallOut.model_validate(call).model_dump()
