"""Which statute sentence a grounded draft says (``dasan eval sentences``).

A card's article can be right and its draft still read the wrong sentence of it (the demo's
DCALL01: for "그 60일을 넘기면요?" after the counselor explained the 60-day deadline, 「지방세법」
제20조's creditor-subrogation sentence instead of the deadline). This scores the sentence choice
against what the counselor actually answered, with no extra labels:

- every labelled caller turn of a call (``relevant_article_ids`` not empty) is suggested for as the
  service would (the conversation so far, masked); the turns whose top passage is a labelled article
  and has at least two sentences or items are the cases;
- the **reference** sentence of a case is the unit of that passage that shares most idf-weighted
  content morphemes with the counselor's *next* turn (the answer the counselor gave; the draft never
  sees it);
- **agreement** is the share of cases whose draft reads the reference unit.

``draft_context_weight`` (how much the counselor's words *before* the question count beside the
question's own) is chosen by cross-validation over folds of calls; the held-out folds' mean is
reported with every weight's agreement per fold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streaming.privacy import mask_text

from .assistant import Assistant, SuggestRequest, last_counselor_turn
from .drafts import GroundedGenerator
from .text import split_units

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)


@dataclass
class Case:
    call_id: str
    turn: int
    query: str
    context: str  # the counselor's last turn before the question
    answer: str  # the counselor's next turn (the reference, never shown to the draft)
    hit: Any  # the top passage (a labelled article)
    reference: int  # index of the reference unit in split_units(hit.text)


def _fold_of(call_id: str, folds: int) -> int:
    return int(hashlib.sha1(call_id.encode()).hexdigest(), 16) % folds


def collect(assistant: Assistant, calls: Sequence[dict[str, Any]], batch: int = 16) -> tuple[list[Case], int]:
    """The cases of ``calls`` (see the module docstring) and how many labelled turns were tried."""
    gen = _grounded(assistant)
    pending: list[tuple[SuggestRequest, str, str, set[str], int]] = []
    for call in calls:
        cid = str(call["id"])
        conv: list[tuple[str, str]] = []
        turns = call["turns"]
        for i, t in enumerate(turns):
            caller = t["speaker"] in ("citizen", "caller")
            conv.append(("caller" if caller else "counselor", mask_text(t["text"])))
            labels = set(t.get("relevant_article_ids") or [])
            if not caller or not labels:
                continue
            answer = next((u["text"] for u in turns[i + 1 :] if u["speaker"] == "counselor"), "")
            if not answer:
                continue
            callers = [x for who, x in conv if who == "caller"]
            req = SuggestRequest(cid, callers, [f"{cid}-t{i}"], None, conversation=list(conv))
            ctx = last_counselor_turn(conv[:-1])
            pending.append((req, ctx, mask_text(answer), labels, i))
    cases: list[Case] = []
    for k in range(0, len(pending), batch):
        chunk = pending[k : k + batch]
        results = assistant.suggest_many([p[0] for p in chunk])
        for (req, ctx, answer, labels, i), res in zip(chunk, results, strict=True):
            if not res.hits or res.hits[0].doc_id not in labels:
                continue
            hit = res.hits[0]
            units = split_units(hit.text)
            if len(units) < 2:
                continue
            ref_terms = gen.terms(answer)
            scores = gen._score_units(ref_terms, units)
            best = max(range(len(units)), key=lambda j: scores[j])
            if scores[best] <= 0:
                continue
            cases.append(Case(req.call_id, i, res.query, ctx, answer, hit, best))
    return cases, len(pending)


def _grounded(assistant: Assistant) -> GroundedGenerator:
    g = assistant.generator
    return g if isinstance(g, GroundedGenerator) else g.fallback  # type: ignore[attr-defined]


def _weighted(base: GroundedGenerator, weight: float) -> GroundedGenerator:
    """``base`` with the counselor's last words at ``weight``."""
    return GroundedGenerator(
        base.morphs, base.idf, base.settings.model_copy(update={"draft_context_weight": weight})
    )


def agrees(gen: GroundedGenerator, case: Case) -> bool:
    """Whether the draft of ``case`` reads its reference unit."""
    units = split_units(case.hit.text)
    ref = units[case.reference].text
    picked = gen.select(case.query, [case.hit], case.context)
    if not picked:
        return False
    said = [p[5:] if p.startswith("ITEM:") else p for p in picked[0][1]]
    return ref in said


def cross_validate(
    assistant: Assistant, cases: Sequence[Case], folds: int = 5, weights: Sequence[float] = WEIGHTS
) -> dict[str, Any]:
    """Agreement of every weight on every fold, and the held-out mean when each fold's weight is
    chosen on the other folds."""
    base = _grounded(assistant)
    table: dict[float, list[tuple[int, int]]] = {}
    for w in weights:
        gen = _weighted(base, w)
        per = [[0, 0] for _ in range(folds)]
        for c in cases:
            f = _fold_of(c.call_id, folds)
            per[f][1] += 1
            per[f][0] += int(agrees(gen, c))
        table[w] = [(a, n) for a, n in per]
    held: list[dict[str, Any]] = []
    for f in range(folds):

        def train_score(w: float, f: int = f) -> float:
            a = sum(x[0] for j, x in enumerate(table[w]) if j != f)
            n = sum(x[1] for j, x in enumerate(table[w]) if j != f)
            return a / n if n else 0.0

        best = max(weights, key=lambda w: (train_score(w), -abs(w - 0.5)))
        a, n = table[best][f]
        held.append({"fold": f, "weight": best, "cases": n, "agreement": round(a / n, 4) if n else None})
    scored = [h for h in held if h["agreement"] is not None]
    return {
        "cases": len(cases),
        "folds": folds,
        "by_weight": {
            str(w): {
                "agreement": round(sum(a for a, _ in v) / max(1, sum(n for _, n in v)), 4),
                "per_fold": [round(a / n, 4) if n else None for a, n in v],
            }
            for w, v in table.items()
        },
        "held_out": held,
        "held_out_mean": round(sum(h["agreement"] for h in scored) / len(scored), 4) if scored else None,
    }


def evaluate(assistant: Assistant, cases: Sequence[Case], weights: Sequence[float]) -> dict[str, Any]:
    """Agreement of each weight on ``cases`` (an unseen set: nothing chosen on it)."""
    base = _grounded(assistant)
    out: dict[str, Any] = {"cases": len(cases)}
    for w in weights:
        gen = _weighted(base, w)
        out[str(w)] = round(sum(agrees(gen, c) for c in cases) / len(cases), 4) if cases else None
    return out
