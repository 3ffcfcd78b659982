"""A day's figures (supervisors, QA, admins; a team's supervisor sees the team's calls)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter

from .. import schemas
from ..deps import Overseer, StoreDep

router = APIRouter(prefix="/api", tags=["metrics"])


@router.get("/metrics", response_model=schemas.Metrics)
def api_metrics(user: Overseer, store: StoreDep, day: date | None = None) -> Any:
    """``day``: the site's date (``DASAN_CONSOLE_TIMEZONE``); today's by default."""
    return store.metrics(user, day or store.today())
