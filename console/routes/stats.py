"""A day's figures (supervisors, QA, admins; a team's supervisor sees the team's calls), and the
agreement of shadow assists with production per hour (QA and admins)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from .. import schemas
from ..deps import Operator, Overseer, StoreDep

router = APIRouter(prefix="/api", tags=["metrics"])


@router.get("/metrics", response_model=schemas.Metrics)
def api_metrics(user: Overseer, store: StoreDep, day: date | None = None) -> Any:
    """``day``: the site's date (``DASAN_CONSOLE_TIMEZONE``); today's by default."""
    return store.metrics(user, day or store.today())


@router.get("/shadow/agreement")
def api_shadow_agreement(
    user: Operator,
    store: StoreDep,
    hours: int = Query(default=24, ge=1, le=24 * 14),
    call_id: Annotated[list[str] | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    """Per shadow assist and hour of the last ``hours``: production cards of the calls it followed,
    how many it matched by trigger segment, how many it showed the same (same articles, or both
    abstaining), and the agreement rate. No card text: doc ids only. ``call_id`` (repeatable):
    only those calls (QA comparing a replay of them)."""
    return store.shadow_agreement(store.now() - timedelta(hours=hours), call_ids=call_id)
