"""Live cards in whole calls, scored turn by turn (``dasan eval assist`` on calls whose caller turns
carry ``relevant_article_ids``).

Each call is played through the service's own per-call logic — :class:`~assist.tracker.CallTracker`
(masking, evidence, debounce, no-repeat) and :meth:`Assistant.suggest_many` — with a scripted clock:
each turn is a final segment of its channel, a few seconds of audio long, and the tracker is ticked
past its debounce after each one, as the service's loop would be. No broker and no sleeps: the same
code, at full speed.

What a counselor sees after a labelled caller turn is the card that turn triggered, or, when it
triggered none (too little evidence, a repeat of what is shown), the card still on screen. Measured on
turns labelled with articles (in scope):
- ``hit_at_1``: the card's primary citation (its top article) is one of the labelled articles;
- ``hit_at_3``: one of the card's first three articles is;
- ``citation_precision``: share of the articles cited by the cards' drafts that are labelled
  (each new card counted once);
- ``abstained_in_scope``: share of in-scope turns with no card, or an abstaining one.
On turns labelled ``[]`` (nothing to show: "마포구 망원동이요"): ``shown_when_none_expected``, the
share of them that put a *new* non-abstaining card on screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streaming.events import Channel, Suggestion, TranscriptSegment

from .assistant import Assistant
from .tracker import CallTracker

SECONDS_PER_CHAR = 0.12  # speaking time of a turn's audio


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


@dataclass
class Played:
    """A call played through the tracker: for every citizen turn, (the card on screen after it,
    whether that turn made a new card); and the cards as the summary request carries them."""

    screens: dict[int, tuple[Suggestion | None, bool]]
    cards: list[tuple[int, tuple[str, ...]]]


def play_call(assistant: Assistant, call: dict[str, Any]) -> Played:
    tracker = CallTracker(assistant.settings, assistant.evidence_terms)
    cid = str(call["id"])
    debounce = assistant.settings.debounce_ms / 1000
    now = 1000.0
    audio = 0.0
    on_screen: Suggestion | None = None
    out: dict[int, tuple[Suggestion | None, bool]] = {}
    for i, turn in enumerate(call["turns"]):
        caller = turn["speaker"] in ("citizen", "caller")
        dur = max(1.0, len(turn["text"]) * SECONDS_PER_CHAR)
        seg = TranscriptSegment(
            call_id=cid,
            segment_id=f"{cid}-t{i}",
            channel=Channel.caller if caller else Channel.counselor,
            start_s=audio,
            end_s=audio + dur,
            text=turn["text"],
            is_final=True,
            asr_model="eval",
        )
        audio += dur + 0.8
        now += dur + 0.8
        tracker.apply(seg, now)
        new = False
        for t in (now, now + debounce + 0.01):
            plan = tracker.due(t)
            results = assistant.suggest_many(plan.suggest) if plan.suggest else []
            for req in plan.alone:
                results += assistant.suggest_many([req])
            for res in results:
                events = tracker.events_for(res)
                tracker.record(res, events)
                for ev in events:
                    if isinstance(ev, Suggestion):
                        on_screen = ev
                        new = new or seg.segment_id in ev.trigger_segment_ids
        now += debounce + 0.01
        if caller:
            out[i] = (on_screen, new)
    st = tracker.calls.get(cid)
    return Played(out, st.card_positions() if st is not None else [])


def cited_articles(s: Suggestion) -> list[str]:
    by_pid = {p.passage_id: p.doc_id for p in s.passages}
    return list(dict.fromkeys(by_pid[c] for sent in s.draft.sentences for c in sent.citations if c in by_pid))


def evaluate_turns(assistant: Assistant, calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    labelled = [c for c in calls if any("relevant_article_ids" in t for t in c["turns"])]
    n = h1 = h3 = abst = none_n = none_shown = 0
    cites = cites_ok = 0
    counted: set[str] = set()
    per_turn = []
    for call in labelled:
        played = play_call(assistant, call)
        for i, (card, new) in played.screens.items():
            turn = call["turns"][i]
            if "relevant_article_ids" not in turn:
                continue
            rel = set(turn["relevant_article_ids"])
            shown = card is not None and not card.draft.abstained and bool(card.passages)
            top = [p.doc_id for p in card.passages] if (card is not None and shown) else []
            if rel:
                n += 1
                h1 += bool(top[:1] and top[0] in rel)
                h3 += bool(rel.intersection(top[:3]))
                abst += not shown
                if card is not None and shown and card.suggestion_id not in counted:
                    counted.add(card.suggestion_id)
                    cited = cited_articles(card)
                    cites += len(cited)
                    cites_ok += sum(1 for d in cited if d in rel)
            else:
                none_n += 1
                none_shown += bool(new and shown)
            per_turn.append(
                {
                    "call": call["id"],
                    "turn": i,
                    "relevant": sorted(rel),
                    "shown": top[:3],
                    "new_card": new,
                    "abstained": card.draft.abstain_reason
                    if card is not None and card.draft.abstained
                    else None,
                }
            )
    return {
        "calls": len(labelled),
        "n": n,
        "hit_at_1": _ratio(h1, n),
        "hit_at_3": _ratio(h3, n),
        "citation_precision": _ratio(cites_ok, cites),
        "citations": cites,
        "abstained_in_scope": _ratio(abst, n),
        "none_expected": none_n,
        "shown_when_none_expected": _ratio(none_shown, none_n),
        "per_turn": per_turn,
    }
