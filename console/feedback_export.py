"""Counselors' judgements as evaluation data (``dasan feedback export``).

Each suggestion a counselor judged becomes one line in the format of
``../shared/eval-dev/utterances.jsonl``: the caller's words that triggered it (masked, from the
store's final segments) as ``utterance``; the articles a 👍 or copied card cited as
``relevant_article_ids``; the articles a 👎 card cited as ``known_wrong_article_ids`` (the
evaluation counts how often a configuration still puts them first). Approved summaries, with the
reviewer's edits, are exported the same way as reference summaries (``calls.jsonl`` format).
Only masked text leaves the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from .models import Call, Feedback, Segment, SuggestionRow, Summary
from .projection import masked
from .vocabulary import FeedbackKind, SummaryStatus


def cited_docs(payload: Mapping[str, Any]) -> list[str]:
    """The articles a stored suggestion shows as its answer: those its draft cites (else its top passage)."""
    passages = payload.get("passages") or []
    draft = payload.get("draft") or {}
    if draft.get("abstained") or not passages:
        return []
    doc_of = {p["passage_id"]: p["doc_id"] for p in passages}
    out: list[str] = []
    for s in draft.get("sentences") or []:
        for c in s.get("citations") or []:
            if doc_of.get(c) and doc_of[c] not in out:
                out.append(doc_of[c])
    return out or [passages[0]["doc_id"]]


def eval_items(store: Any, since: datetime | None = None) -> list[dict[str, Any]]:
    """One evaluation item per judged suggestion (the last vote counts; a copy without a 👎 is 👍)."""
    with store.sessions() as db:
        q = select(Feedback).order_by(Feedback.at)
        if since is not None:
            q = q.where(Feedback.at >= since)
        rows = list(db.scalars(q))
        verdict: dict[str, dict[str, Any]] = {}
        for f in rows:
            v = verdict.setdefault(
                f.suggestion_id, {"vote": None, "copied": 0, "call_id": f.call_id, "at": f.at}
            )
            if f.kind == FeedbackKind.copy:
                v["copied"] += 1
            else:
                v["vote"] = f.value
            v["at"] = max(v["at"], f.at)
        if not verdict:
            return []
        sugs = {
            s.suggestion_id: s
            for s in db.scalars(select(SuggestionRow).where(SuggestionRow.suggestion_id.in_(list(verdict))))
        }
        call_ids = {s.call_id for s in sugs.values()}
        texts: dict[tuple[str, str], str] = {}
        for seg in db.scalars(
            select(Segment).where(
                Segment.call_id.in_(list(call_ids)), Segment.is_final, Segment.channel == "caller"
            )
        ):
            texts[(seg.call_id, seg.segment_id)] = seg.text_masked
        topics = {
            c.call_id: c.category for c in db.scalars(select(Call).where(Call.call_id.in_(list(call_ids))))
        }
    out = []
    for sid, v in verdict.items():
        sug = sugs.get(sid)
        if sug is None:
            continue
        docs = cited_docs(sug.payload)
        utterance = " ".join(
            texts[(sug.call_id, t)]
            for t in sug.payload.get("trigger_segment_ids") or []
            if (sug.call_id, t) in texts
        ).strip()
        if not docs or not utterance:
            continue  # an abstention, or a card whose caller text is gone (retention, erasure)
        positive = v["vote"] == "up" or (v["copied"] and v["vote"] != "down")
        negative = v["vote"] == "down"
        if not (positive or negative):
            continue
        out.append(
            {
                "id": f"FB-{sid}",
                "utterance": masked(utterance),
                "topic": topics.get(sug.call_id),
                "relevant_article_ids": docs if positive else [],
                "known_wrong_article_ids": docs if negative else [],
                "keywords": list(sug.payload.get("keywords") or []),
                "source": {
                    "type": "counselor_feedback",
                    "suggestion_id": sid,
                    "call_id": sug.call_id,
                    "vote": v["vote"],
                    "copied": v["copied"],
                    "at": v["at"].isoformat(),
                },
            }
        )
    return out


def reference_summaries(store: Any, since: datetime | None = None) -> list[dict[str, Any]]:
    """Approved summaries (with the reviewer's edits) as ``calls.jsonl`` lines: the call's masked turns
    and ``reference_summary`` — for ``dasan eval assist``."""
    with store.sessions() as db:
        q = select(Summary).where(Summary.status == SummaryStatus.approved)
        if since is not None:
            q = q.where(Summary.updated_at >= since)
        summaries = list(db.scalars(q))
        out = []
        for s in summaries:
            segs = db.scalars(
                select(Segment)
                .where(Segment.call_id == s.call_id, Segment.is_final)
                .order_by(Segment.start_s)
            )
            turns = [
                {"speaker": "citizen" if seg.channel == "caller" else "counselor", "text": seg.text_masked}
                for seg in segs
            ]
            c = s.content
            out.append(
                {
                    "id": f"FS-{s.call_id}",
                    "topic": c.get("category"),
                    "turns": turns,
                    "reference_summary": {
                        "category": c.get("category"),
                        "call_reason": c.get("call_reason"),
                        "key_facts": list(c.get("key_facts") or []),
                        "action_taken": [
                            *(c.get("counselor_answers") or []),
                            *(a.get("text", "") for a in c.get("actions") or [] if isinstance(a, dict)),
                        ],
                        "regulations_cited": list(c.get("regulations_cited") or []),
                    },
                    "source": {
                        "type": "approved_summary",
                        "edited": bool(s.edited),
                        "summary_id": s.summary_id,
                    },
                }
            )
    return out


def counts(items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    items = list(items)
    return {
        "items": len(items),
        "relevant": sum(bool(i["relevant_article_ids"]) for i in items),
        "known_wrong": sum(bool(i["known_wrong_article_ids"]) for i in items),
    }
