"""Operations: liveness and readiness (no log-in: probes), and behind an admin or QA log-in the
Prometheus metrics and the API documentation (they map the attack surface and expose internals;
Prometheus scrapes the internal port ``DASAN_CONSOLE_METRICS_PORT`` instead)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import Operator, StoreDep
from ..recorder import broker_reachable

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_class=PlainTextResponse)
def healthz() -> str:
    return "ok"


@router.get("/readyz")
def readyz(request: Request, store: StoreDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        store.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    checks["broker"] = "ok" if broker_reachable(request.app.state.kafka) else "unreachable"
    recorder = request.app.state.recorder
    if recorder is not None:
        checks["recorder"] = "ok" if recorder.healthy() else "not polling"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def prom(user: Operator) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, user: Operator) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
def docs(user: Operator) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Dasan Assist console API")
