"""Operations: liveness and readiness (no log-in: probes), answered by the shared
:func:`streaming.health.respond`, and behind an admin or QA log-in the Prometheus metrics and the
API documentation (they map the attack surface and expose internals). Prometheus scrapes the
internal port ``DASAN_CONSOLE_METRICS_PORT`` instead (:class:`streaming.health.HealthServer`:
``/healthz``, ``/readyz``, ``/metrics``, no log-in, never behind the ingress)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from streaming.health import broker_reachable, respond

from ..deps import Operator

router = APIRouter(tags=["ops"])


def readiness(app: Any) -> Any:
    """The console's readiness callback: database, broker, and the recorder polling (if it runs here)."""

    def ready() -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        try:
            app.state.store.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {exc.__class__.__name__}"
        checks["broker"] = "ok" if broker_reachable(app.state.kafka) else "unreachable"
        recorder = app.state.recorder
        if recorder is not None:
            checks["recorder"] = "ok" if recorder.healthy() else "not polling"
        return all(v == "ok" for v in checks.values()), {"checks": checks}

    return ready


def _answer(request: Request, path: str) -> Response:
    code, body, ctype = respond(path, readiness(request.app))
    return Response(body, status_code=code, media_type=ctype)


@router.get("/healthz")
def healthz(request: Request) -> Response:
    return _answer(request, "/healthz")


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    return await run_in_threadpool(_answer, request, "/readyz")


@router.get("/metrics", response_class=PlainTextResponse)
def prom(request: Request, user: Operator) -> Response:
    return _answer(request, "/metrics")


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, user: Operator) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
def docs(user: Operator) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Dasan Assist console API")
