"""The console web app: wiring only. Routes live in :mod:`console.routes`, their dependencies in
:mod:`console.deps`, the access policy in :mod:`console.access`, pages in :mod:`console.rendering`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from streaming.settings import KafkaSettings

from .assist_client import AssistClient
from .corpus import Corpus
from .db import make_engine, migrate
from .hub import Hub
from .login_guard import LoginGuard
from .recorder import Recorder
from .rendering import add_error_handlers
from .retention import RetentionJob
from .routes import ROUTERS
from .settings import ConsoleSettings
from .store import Store

STATIC = Path(__file__).resolve().parent / "static"
access_log = logging.getLogger("dasan.console.access")
# Pages run no inline script: all call text is inserted with textContent, never as HTML.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def create_app(
    settings: ConsoleSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    with_recorder: bool = True,
    with_retention: bool | None = None,
    store: Store | None = None,
) -> FastAPI:
    """``with_retention``: run the retention job in this process (default: with the recorder)."""
    if with_retention is None:
        with_retention = with_recorder
    settings = settings or ConsoleSettings()
    if store is None:
        engine = make_engine(settings)
        if settings.migrate_on_start:
            migrate(engine, settings)
        store = Store(engine, settings.timezone)
    hub = Hub(settings.ws_queue_max)
    recorder = Recorder(store, hub, kafka, settings.recorder_group) if with_recorder else None
    retention = RetentionJob(store, settings) if with_retention else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        if recorder is not None:
            recorder.start()
        if retention is not None:
            retention.start()
        try:
            yield
        finally:
            if retention is not None:
                await run_in_threadpool(retention.stop)
            if recorder is not None:
                await run_in_threadpool(recorder.stop)

    app = FastAPI(
        title="Dasan Assist console",
        description="상담 화면, 검토, 품질관리(QA) API. 모든 텍스트는 마스킹되어 제공됩니다.",
        version="1.0",
        lifespan=lifespan,
        # Served by console.routes.ops behind an admin or QA log-in instead.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # What the dependencies (console.deps) hand to the routes.
    app.state.settings = settings
    app.state.store = store
    app.state.hub = hub
    app.state.recorder = recorder
    app.state.kafka = kafka or KafkaSettings()
    app.state.corpus = Corpus(settings.corpus_path)
    app.state.assist = AssistClient(settings.assist_url, settings.assist_timeout_s)
    app.state.login_guard = LoginGuard(settings)
    app.state.ws_per_user = Counter()
    app.state.retention = retention

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie="dasan_session",
        max_age=settings.session_max_age_s,
        same_site=settings.cookie_samesite,
        https_only=settings.secure_cookies,
    )

    query_key = settings.session_secret.get_secret_value().encode()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        resp: Response = await call_next(request)
        resp.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            # Pages and JSON carry call text, transcripts and one-time passwords: never cached.
            resp.headers.setdefault("Cache-Control", "no-store")
        _log_access(request, resp.status_code, started, query_key)
        return resp

    add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app


def _log_access(request: Request, status: int, started: float, key: bytes) -> None:
    """The access log (uvicorn's own is off): the path, never the query string, which carries
    search terms such as a caller's number (``/api/calls?q=010…``); a keyed hash of it tells
    repeated queries apart without revealing them."""
    query = request.url.query
    extra: dict[str, Any] = {
        "method": request.method,
        "path": request.url.path,
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 1),
        "client": request.client.host if request.client else None,
    }
    if query:
        extra["query_hash"] = hmac.new(key, query.encode(), hashlib.sha256).hexdigest()[:12]
    access_log.info("%s %s %s", request.method, request.url.path, status, extra=extra)
