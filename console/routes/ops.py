"""Operations: liveness, readiness (database, broker, recorder) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import StoreDep
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
def prom() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
