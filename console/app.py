"""The console web app: wiring only. Routes live in :mod:`console.routes`, their dependencies in
:mod:`console.deps`, the access policy in :mod:`console.access`, pages in :mod:`console.rendering`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from streaming.settings import KafkaSettings

from .corpus import Corpus
from .db import make_engine, migrate
from .hub import Hub
from .recorder import Recorder
from .rendering import add_error_handlers
from .routes import ROUTERS
from .settings import ConsoleSettings
from .store import Store

STATIC = Path(__file__).resolve().parent / "static"
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
    # What the dependencies (console.deps) hand to the routes.
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

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        resp: Response = await call_next(request)
        resp.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        return resp

    add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app
