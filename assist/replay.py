"""Replay: past calls through a candidate assist, and what changed against the cards shown live.

Pure logic, no Kafka and no database (``dasan replay`` in :mod:`dasan.replay` reads the calls, the
live cards and the counselors' feedback, and writes the report):

- :func:`replay_calls` runs recorded call events through the same :class:`assist.tracker.CallTracker`
  and :class:`assist.assistant.Assistant` the service uses, on a **scripted clock** (each event's
  ``produced_at``): debounce, no-repeat and summary rules behave as they did live, at full speed.
  Every event it makes has its own ids (``run_id`` namespace) and ``provenance.variant =
  "replay:<run id>"``, so published anywhere it never collides with a production card.
- :func:`align` pairs the live cards of a call with the candidate's by trigger segment (the most
  shared trigger segments) and labels each pair: ``same``, ``changed`` (another citation),
  ``now_abstains``, ``now_answers``, ``dropped`` (live only) or ``new`` (candidate only).
- :func:`totals` counts them: agreement, abstention change, regressions (a changed/dropped/abstaining
  card that the counselor had 👍 or copied), fixes (the same on a 👎 card), stage latencies.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from streaming.events import CallEnded, CallStarted, CallSummary, Event, Suggestion, TranscriptSegment

from .assistant import Assistant, SuggestRequest, SuggestResult
from .call_state import SummaryRequest, SummaryResult
from .summary import Summarizer
from .tracker import CallTracker, namespaced

STAGES = ("masking", "keywords", "retrieval", "draft", "total")
CHANGED = ("changed", "now_abstains", "dropped")
"""Statuses in which the counselor would no longer see the live card's citation."""
STATUS_LABEL = {
    "same": "같음",
    "changed": "근거 변경",
    "now_abstains": "이제 보류",
    "now_answers": "이제 답변",
    "dropped": "사라짐",
    "new": "새 카드",
}


# --------------------------------------------------------------------------- cards


@dataclass
class Card:
    """One suggestion card, from a live event, a stored payload or a replay."""

    suggestion_id: str
    trigger_segment_ids: list[str]
    abstained: bool
    cited: list[str]  # doc ids the draft cites, in order (the top passage when it cites none)
    citations: list[str]  # the citation lines of the passages shown
    draft: str
    latency: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return () if self.abstained else tuple(self.cited)

    @classmethod
    def of(cls, ev: Suggestion | Mapping[str, Any]) -> Card:
        """From a ``Suggestion`` event or the console's stored payload of one (``projection``)."""
        if isinstance(ev, Suggestion):
            d: Mapping[str, Any] = ev.model_dump(mode="json")
            latency = {f"{k[:-3]}": v for k, v in d["latency"].items() if k.endswith("_ms")}
        else:
            d = ev
            latency = {"total": float(d.get("latency_ms") or 0.0)}
        passages = list(d.get("passages") or [])
        doc_of = {p["passage_id"]: p["doc_id"] for p in passages}
        draft = d.get("draft") or {}
        abstained = bool(draft.get("abstained")) or not passages
        cited: list[str] = []
        for s in draft.get("sentences") or []:
            for c in s.get("citations") or []:
                doc = doc_of.get(c)
                if doc and doc not in cited:
                    cited.append(doc)
        if not cited and passages:
            cited = [passages[0]["doc_id"]]
        return cls(
            suggestion_id=str(d["suggestion_id"]),
            trigger_segment_ids=list(d.get("trigger_segment_ids") or []),
            abstained=abstained,
            cited=cited,
            citations=[p.get("citation", p["doc_id"]) for p in passages[:3]],
            draft=(
                str(draft.get("abstain_reason") or "")
                if abstained
                else " ".join(s.get("text", "") for s in draft.get("sentences") or [])
            ),
            latency=latency,
            provenance=d.get("provenance"),
        )


@dataclass
class Judgement:
    """What the counselor did with a live card: the last vote (``up``/``down``), copies, the reason."""

    vote: str | None = None
    copied: int = 0
    reason: str | None = None

    @property
    def positive(self) -> bool:
        return self.vote == "up" or (self.copied > 0 and self.vote != "down")

    @property
    def negative(self) -> bool:
        return self.vote == "down"


def judgements(rows: Iterable[Mapping[str, Any]]) -> dict[str, Judgement]:
    """Feedback rows (``suggestion_id``, ``kind`` vote|copy, ``value``, ``reason``, in time order) → per card."""
    out: dict[str, Judgement] = {}
    for r in rows:
        j = out.setdefault(str(r["suggestion_id"]), Judgement())
        if r.get("kind") == "copy":
            j.copied += 1
        elif r.get("kind") == "vote":
            j.vote, j.reason = r.get("value"), r.get("reason")
    return out


# --------------------------------------------------------------------------- alignment


@dataclass
class Pair:
    status: str
    live: Card | None
    candidate: Card | None
    feedback: Judgement | None = None

    @property
    def regression(self) -> bool:
        return self.status in CHANGED and self.feedback is not None and self.feedback.positive

    @property
    def fix(self) -> bool:
        return self.status in CHANGED and self.feedback is not None and self.feedback.negative


def _status(live: Card, cand: Card) -> str:
    if live.abstained and cand.abstained:
        return "same"
    if cand.abstained:
        return "now_abstains"
    if live.abstained:
        return "now_answers"
    return "same" if live.key == cand.key else "changed"


def align(
    live: Sequence[Card],
    candidate: Sequence[Card],
    feedback: Mapping[str, Judgement] | None = None,
    segment_order: Sequence[str] = (),
) -> list[Pair]:
    """Pair live and candidate cards of one call by trigger segment: each live card takes the unused
    candidate card sharing most of its trigger segments (the earliest on a tie). Pairs come back in
    the order of their first trigger segment in the call (``segment_order``; else live order)."""
    used: set[int] = set()
    pairs: list[Pair] = []
    for lc in live:
        mine = set(lc.trigger_segment_ids)
        best, best_n = None, 0
        for i, cc in enumerate(candidate):
            n = len(mine & set(cc.trigger_segment_ids))
            if i not in used and n > best_n:
                best, best_n = i, n
        fb = (feedback or {}).get(lc.suggestion_id)
        if best is None:
            pairs.append(Pair("dropped", lc, None, fb))
        else:
            used.add(best)
            pairs.append(Pair(_status(lc, candidate[best]), lc, candidate[best], fb))
    pairs += [Pair("new", None, cc) for i, cc in enumerate(candidate) if i not in used]
    pos = {s: i for i, s in enumerate(segment_order)}

    def first(p: Pair) -> float:
        card = p.live or p.candidate
        assert card is not None
        ids = [pos[s] for s in card.trigger_segment_ids if s in pos]
        return min(ids) if ids else float("inf")

    return sorted(pairs, key=first)  # stable: live order where the call's order is unknown


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


def latency_table(cards: Iterable[Card]) -> dict[str, dict[str, float | None]]:
    cards = list(cards)
    out: dict[str, dict[str, float | None]] = {}
    for stage in STAGES:
        vals = [c.latency[stage] for c in cards if stage in c.latency]
        if vals:
            out[stage] = {
                "p50_ms": round(statistics.median(vals), 2),
                "p95_ms": _pct(vals, 0.95),
                "n": len(vals),
            }
    return out


def totals(pairs: Sequence[Pair]) -> dict[str, Any]:
    counts = {s: 0 for s in STATUS_LABEL}
    for p in pairs:
        counts[p.status] += 1
    live = [p.live for p in pairs if p.live is not None]
    cand = [p.candidate for p in pairs if p.candidate is not None]
    judged = [p for p in pairs if p.feedback is not None and (p.feedback.positive or p.feedback.negative)]

    def rate(cards: list[Card]) -> float | None:
        return round(sum(c.abstained for c in cards) / len(cards), 4) if cards else None

    live_abs, cand_abs = rate(live), rate(cand)
    return {
        "pairs": len(pairs),
        "live_cards": len(live),
        "candidate_cards": len(cand),
        "status": counts,
        "agreement": round(counts["same"] / len(pairs), 4) if pairs else None,
        "abstention_live": live_abs,
        "abstention_candidate": cand_abs,
        "abstention_change": (
            round(cand_abs - live_abs, 4) if live_abs is not None and cand_abs is not None else None
        ),
        "judged_cards": len(judged),
        "regressions": sum(p.regression for p in pairs),
        "fixes": sum(p.fix for p in pairs),
        "latency_live": latency_table(live),
        "latency_candidate": latency_table(cand),
    }


def pair_dict(p: Pair) -> dict[str, Any]:
    return {
        "status": p.status,
        "label": STATUS_LABEL[p.status],
        "regression": p.regression,
        "fix": p.fix,
        "feedback": asdict(p.feedback) if p.feedback else None,
        "live": asdict(p.live) if p.live else None,
        "candidate": asdict(p.candidate) if p.candidate else None,
    }


# --------------------------------------------------------------------------- running calls


@dataclass
class CallRun:
    """What the candidate made of one call."""

    call_id: str
    suggestions: list[Suggestion] = field(default_factory=list)
    summary: CallSummary | None = None
    segment_order: list[str] = field(default_factory=list)
    errors: int = 0


def _when(ev: Event) -> float:
    return ev.produced_at.timestamp()


def _namespaced(ev: Event, run_id: str) -> Event:
    return namespaced(ev, f"replay:{run_id}", "rp-")


class Replayer:
    """Runs calls through ``assistant`` on a scripted clock. ``summaries``: also write summaries."""

    def __init__(self, assistant: Assistant, run_id: str, *, summaries: bool = True) -> None:
        self.assistant = assistant
        self.settings = assistant.settings
        self.run_id = run_id
        self.summaries = summaries
        self.provenance = assistant.provenance.model_copy(update={"variant": f"replay:{run_id}"})
        self.tracker = CallTracker(self.settings, assistant.evidence_terms, provenance=self.provenance)
        self.summarizer = Summarizer(assistant)
        self.runs: dict[str, CallRun] = {}

    def run(self, events: Iterable[Event], *, together: bool = True) -> list[CallRun]:
        """``events``: lifecycle and transcript events of the calls (any order; sorted by ``produced_at``).

        ``together``: every call's clock starts at 0, as if all calls had started at the same moment.
        Calls do not share state, so each call's cards are what they would be on its own; what changes
        is that the segments of many calls fall due together and are retrieved in one batch (one
        encoder pass for up to ``batch_max`` queries) — the full-speed replay this is for."""
        kept = [e for e in events if isinstance(e, TranscriptSegment | CallEnded | CallStarted)]
        start: dict[str, float] = {}
        for e in kept:
            start[e.call_id] = min(start.get(e.call_id, _when(e)), _when(e))

        def clock(e: Event) -> float:
            return _when(e) - start[e.call_id] if together else _when(e)

        ordered = sorted(kept, key=clock)
        for ev in ordered:
            run = self.runs.setdefault(ev.call_id, CallRun(ev.call_id))
            if isinstance(ev, TranscriptSegment) and ev.is_final and ev.segment_id not in run.segment_order:
                run.segment_order.append(ev.segment_id)
            self._drain(clock(ev))
            self.tracker.apply(ev, clock(ev))
        if ordered:
            # past every debounce and summary grace: everything still waiting is due
            self._drain(clock(ordered[-1]) + 3600)
        return list(self.runs.values())

    def _drain(self, now: float) -> None:
        for _ in range(10_000):
            plan = self.tracker.due(now)
            if not plan.suggest and not plan.alone and not (self.summaries and plan.summarize):
                return
            reqs = [*plan.suggest, *plan.alone]
            if reqs:
                self._suggest(reqs, now)
            if self.summaries:
                for req in plan.summarize:
                    self._summarize(req, now)

    def _suggest(self, requests: list[SuggestRequest], now: float) -> None:
        try:
            results: list[SuggestResult] = self.assistant.suggest_many(requests)
        except Exception:
            for req in requests:
                self.runs[req.call_id].errors += 1
                self.tracker.failed(req, now)
            return
        for res in results:
            events = [_namespaced(e, self.run_id) for e in self.tracker.events_for(res)]
            self.tracker.record(res, events)
            run = self.runs[res.request.call_id]
            run.suggestions += [e for e in events if isinstance(e, Suggestion)]

    def _summarize(self, req: SummaryRequest, now: float) -> None:
        t0 = time.perf_counter()
        try:
            parts = self.summarizer.summarize(req.turns, req.cards)
        except Exception:
            self.runs[req.call_id].errors += 1
            self.tracker.failed(req, now)
            return
        result = SummaryResult(req, parts, (time.perf_counter() - t0) * 1000)
        events = [_namespaced(e, self.run_id) for e in self.tracker.events_for(result)]
        self.tracker.record(result, events)
        for e in events:
            if isinstance(e, CallSummary):
                self.runs[req.call_id].summary = e


def summary_view(content: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not content:
        return None
    return {
        "category": content.get("category"),
        "call_reason": content.get("call_reason"),
        "key_facts": list(content.get("key_facts") or []),
        "regulations_cited": list(content.get("regulations_cited") or []),
    }


def compare_summaries(reference: Mapping[str, Any] | None, candidate: CallSummary | None) -> dict[str, Any]:
    """A candidate summary beside the reference one (approved/edited, else the live one): same category,
    and the overlap (Jaccard) of the regulations cited."""
    if not reference or candidate is None:
        return {"category_same": None, "regulations_jaccard": None}
    a = set(reference.get("regulations_cited") or [])
    b = set(candidate.regulations_cited)
    return {
        "category_same": reference.get("category") == candidate.category,
        "regulations_jaccard": round(len(a & b) / len(a | b), 4) if a | b else 1.0,
    }
