"""Shadow assists: their cards (``assist.suggestions.shadow``) and their agreement with production.

A shadow card is kept as its trigger segments and the articles it cites, nothing else (no text),
in ``shadow_suggestions``; it never enters a call's log, so no websocket ever sends it. Agreement
per hour: each production card of a call the shadow also followed is paired with the shadow card
sharing most of its trigger segments; they agree when both abstain or both cite the same articles.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from streaming.events import Event, Suggestion

from ..models import ShadowSuggestion, SuggestionRow, utc
from .base import StoreBase


def cited_of(passages: Sequence[Any], sentences: Sequence[Any], abstained: bool) -> list[str]:
    """Doc ids a card cites: those of its draft's citations, else its top passage; [] when abstaining."""
    if abstained or not passages:
        return []
    doc_of = {p["passage_id"]: p["doc_id"] for p in passages}
    out: list[str] = []
    for s in sentences:
        for c in s.get("citations") or []:
            if doc_of.get(c) and doc_of[c] not in out:
                out.append(doc_of[c])
    return out or [passages[0]["doc_id"]]


class Shadow(StoreBase):
    def record_shadow(self, events: Sequence[Event]) -> int:
        """Keep the shadow suggestions of a batch (others are ignored); returns how many were new."""
        sugs = [e for e in events if isinstance(e, Suggestion)]
        if not sugs:
            return 0
        with self.sessions.begin() as db:
            known = set(
                db.scalars(
                    select(ShadowSuggestion.event_id).where(
                        ShadowSuggestion.event_id.in_([e.event_id for e in sugs])
                    )
                )
            )
            new = 0
            for e in sugs:
                if e.event_id in known:
                    continue
                known.add(e.event_id)
                d = e.model_dump(mode="json")
                abstained = e.draft.abstained or not e.passages
                db.add(
                    ShadowSuggestion(
                        event_id=e.event_id,
                        call_id=e.call_id,
                        variant=(e.provenance.variant if e.provenance else "shadow:?")[:80],
                        suggestion_id=e.suggestion_id,
                        trigger_segment_ids=list(e.trigger_segment_ids),
                        abstained=abstained,
                        cited=cited_of(d["passages"], d["draft"]["sentences"], abstained),
                        at=e.produced_at,
                    )
                )
                new += 1
            return new

    def shadow_agreement(
        self, since: datetime, until: datetime | None = None, call_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Per shadow variant and hour (site time, of the production card): production cards compared,
        shadow cards matched, agreeing, and the agreement rate (of ``call_ids`` only, if given)."""
        until = until or self.now()
        cond = [ShadowSuggestion.at >= since - timedelta(hours=1), ShadowSuggestion.at < until]
        if call_ids is not None:
            cond.append(ShadowSuggestion.call_id.in_(list(call_ids)))
        with self.sessions() as db:
            shadow = list(db.scalars(select(ShadowSuggestion).where(*cond)))
            calls = sorted({s.call_id for s in shadow})
            prod = (
                list(
                    db.scalars(
                        select(SuggestionRow).where(
                            SuggestionRow.call_id.in_(calls),
                            SuggestionRow.at >= since,
                            SuggestionRow.at < until,
                        )
                    )
                )
                if calls
                else []
            )
        by_variant: dict[str, dict[str, list[ShadowSuggestion]]] = {}
        for s in shadow:
            by_variant.setdefault(s.variant, {}).setdefault(s.call_id, []).append(s)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for variant, per_call in sorted(by_variant.items()):
            used: set[int] = set()
            for p in sorted(prod, key=lambda r: r.at):
                cands = per_call.get(p.call_id)
                if not cands:
                    continue
                payload = p.payload
                trig = set(payload.get("trigger_segment_ids") or [])
                abstained = bool(payload.get("draft", {}).get("abstained")) or not payload.get("passages")
                cited = cited_of(
                    payload.get("passages") or [], payload.get("draft", {}).get("sentences") or [], abstained
                )
                best, best_n = None, 0
                for c in cands:
                    n = len(trig & set(c.trigger_segment_ids))
                    if c.id not in used and n > best_n:
                        best, best_n = c, n
                hour = utc(p.at).astimezone(self.tz).strftime("%Y-%m-%d %H:00")
                row = rows.setdefault(
                    (variant, hour),
                    {"variant": variant, "hour": hour, "production": 0, "matched": 0, "same": 0},
                )
                row["production"] += 1
                if best is None:
                    continue
                used.add(best.id)
                row["matched"] += 1
                if (abstained and best.abstained) or (
                    not abstained and not best.abstained and cited == best.cited
                ):
                    row["same"] += 1
        out = []
        for key in sorted(rows):
            r = rows[key]
            r["agreement"] = round(r["same"] / r["production"], 4) if r["production"] else None
            out.append(r)
        return out
