"""What a browser receives for each recorded event: a plain JSON payload with masked text only.

``payload_of(event)`` is what ``call_events.payload`` stores and what websockets and replays send;
every text in it is masked. Transcript segments go through :data:`CONVERSATIONS`, a
:class:`streaming.privacy.ConversationMasker` with memory per call and channel (a number said across
segments is masked in each of them; finals are keyed by segment id, so a retried or redelivered
segment gets the same text); every other text through :func:`streaming.privacy.mask_text`. One
projection per event type, in a table keyed by the event's class (the event types the console records).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from streaming.events import (
    CallEnded,
    CallStarted,
    CallSummary,
    Event,
    KeywordsUpdated,
    Suggestion,
    TranscriptSegment,
)
from streaming.privacy import ConversationMasker, mask_text

CONVERSATIONS = ConversationMasker()
"""The recorder's transcript masking state (one per process; bounded, forgotten at CallEnded)."""


def clean(text: str) -> str:
    """NUL characters are not text (and PostgreSQL refuses them)."""
    return text.replace("\x00", "")


def masked(text: str) -> str:
    return mask_text(clean(text))


@functools.lru_cache(maxsize=2048)
def masked_passage(text: str) -> str:
    """A regulation snippet on a card, masked. The same articles recur on card after card and call
    after call, and masking a long snippet costs tens of milliseconds (the name analyser): remembered,
    bounded (≈ 2,048 snippets of at most 2,000 characters)."""
    return masked(text)


def summary_content(ev: CallSummary) -> dict[str, Any]:
    """A summary's content as stored (``summaries.content``) and shown: masked."""
    return {
        "category": ev.category,
        "call_reason": masked(ev.call_reason),
        "key_facts": [masked(x) for x in ev.key_facts],
        "counselor_answers": [masked(x) for x in ev.counselor_answers],
        "actions": [{"kind": a.kind.value, "text": masked(a.text)} for a in ev.actions],
        "regulations_cited": list(ev.regulations_cited),
        "entities": {k: [masked(v) for v in vs] for k, vs in ev.entities.items()},
        "keywords": list(ev.keywords),
        "generator": ev.generator,
    }


def mask_content(content: dict[str, Any]) -> dict[str, Any]:
    """A summary's content typed or edited by a person (counselor's submit, reviewer's edit), masked
    like the generated one before it is stored: people paste numbers and names too."""
    out = dict(content)
    for key in ("category", "call_reason"):
        if isinstance(out.get(key), str):
            out[key] = masked(out[key])
    for key in ("key_facts", "counselor_answers", "keywords"):
        if isinstance(out.get(key), list):
            out[key] = [masked(x) if isinstance(x, str) else x for x in out[key]]
    if isinstance(out.get("actions"), list):
        out["actions"] = [
            {k: masked(v) if isinstance(v, str) else v for k, v in a.items()} if isinstance(a, dict) else a
            for a in out["actions"]
        ]
    if isinstance(out.get("entities"), dict):
        out["entities"] = {
            k: [masked(v) if isinstance(v, str) else v for v in vs] if isinstance(vs, list) else vs
            for k, vs in out["entities"].items()
        }
    return out


def _call_started(ev: CallStarted) -> dict[str, Any]:
    return {
        "type": "call_started",
        "counselor_id": ev.counselor_id,
        "team": ev.team,
        "category": ev.category,
        "queue": ev.queue,
        "caller_number_masked": ev.caller_number_masked,
        "source": ev.source.value,
        "started_at": ev.started_at.isoformat(),
    }


def masked_segment(ev: TranscriptSegment) -> str:
    """A segment's text masked with the memory of its call and channel (partials use it, finals join it)."""
    return CONVERSATIONS.mask(
        ev.call_id,
        ev.channel.value,
        clean(ev.text),
        at=ev.end_s,
        key=ev.segment_id if ev.is_final else None,
        remember=ev.is_final,
    )


def _call_ended(ev: CallEnded) -> dict[str, Any]:
    CONVERSATIONS.end_call(ev.call_id)
    return {
        "type": "call_ended",
        "ended_at": ev.ended_at.isoformat(),
        "reason": ev.reason.value,
        "duration_s": ev.duration_s,
    }


def _segment(ev: TranscriptSegment) -> dict[str, Any]:
    return {
        "type": "segment",
        "segment_id": ev.segment_id,
        "channel": ev.channel.value,
        "text": masked_segment(ev),
        "is_final": ev.is_final,
        "revision": ev.revision,
        "start_s": ev.start_s,
        "end_s": ev.end_s,
        "confidence": ev.confidence,
        "source": ev.source.value,
    }


def _keywords(ev: KeywordsUpdated) -> dict[str, Any]:
    return {"type": "keywords", "keywords": [masked(k) for k in ev.keywords]}


def _suggestion(ev: Suggestion) -> dict[str, Any]:
    return {
        "type": "suggestion",
        "suggestion_id": ev.suggestion_id,
        "trigger_segment_ids": list(ev.trigger_segment_ids),
        "keywords": [masked(k) for k in ev.keywords],
        "passages": [
            {
                "doc_id": p.doc_id,
                "passage_id": p.passage_id,
                "citation": clean(p.citation),
                "law_name": p.law_name,
                "article_no": p.article_no,
                "snippet": masked_passage(p.snippet),
                "effective_date": p.effective_date,
                "score": round(p.score, 4),
            }
            for p in ev.passages
        ],
        "draft": {
            "generator": ev.draft.generator,
            "abstained": ev.draft.abstained,
            "abstain_reason": ev.draft.abstain_reason,
            "sentences": [
                {"text": masked(s.text), "citations": list(s.citations)} for s in ev.draft.sentences
            ],
        },
        "latency_ms": round(ev.latency.total_ms, 1),
        "provenance": ev.provenance.model_dump(mode="json") if ev.provenance else None,
        "shed": ev.shed,
    }


def _summary(ev: CallSummary) -> dict[str, Any]:
    return {
        "type": "summary",
        "summary_id": ev.summary_id,
        **summary_content(ev),
        "provenance": ev.provenance.model_dump(mode="json") if ev.provenance else None,
    }


PROJECTIONS: dict[type[Event], Callable[[Any], dict[str, Any]]] = {
    CallStarted: _call_started,
    CallEnded: _call_ended,
    TranscriptSegment: _segment,
    KeywordsUpdated: _keywords,
    Suggestion: _suggestion,
    CallSummary: _summary,
}
RECORDED_TYPES = tuple(PROJECTIONS)


def payload_of(ev: Event) -> dict[str, Any]:
    """What a browser receives for an event: masked text only."""
    project = PROJECTIONS.get(type(ev))
    if project is None:
        raise TypeError(f"the console does not record {type(ev).__name__}")
    return project(ev)
