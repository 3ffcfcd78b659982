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
question's own) and ``draft_dense_weight`` (how much the cosine of the question's vector and each
unit's counts beside the lexical overlap) are each chosen by cross-validation over folds of calls;
the held-out folds' mean is reported with every weight's agreement per fold.

The reference is lexical, so a lexical selector has a built-in advantage against it. With a dense
side two more views are reported: the **dense reference** (the unit whose document vector is
closest to the counselor's next turn embedded as a query: the mirror-image bias, in the dense
selector's favour) and the cases where **both references agree** (the least arguable ones).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from streaming.privacy import mask_text

from .assistant import Assistant, SuggestRequest, last_counselor_turn
from .drafts import GroundedGenerator, UnitVectors, combine_scores, grounded_of
from .knowledge.dense import document_text
from .knowledge.rerank_train import fold_of
from .text import split_units
from .unit_store import unit_title

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)  # draft_context_weight
DENSE_WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)  # draft_dense_weight
CONTEXT = "draft_context_weight"
DENSE = "draft_dense_weight"
Reference = Literal["lexical", "dense", "both"]


def _prefer(param: str) -> Callable[[float], float]:
    """Tie-break among weights of equal training agreement: the context weight nearest 0.5 (as
    before); the dense weight nearest 0 (the lexical choice unless the dense side earns its cost)."""
    if param == DENSE:
        return lambda w: -w
    return lambda w: -abs(w - 0.5)


@dataclass
class Case:
    call_id: str
    turn: int
    query: str
    context: str  # the counselor's last turn before the question
    answer: str  # the counselor's next turn (the reference, never shown to the draft)
    hit: Any  # the top passage (a labelled article)
    reference: int  # index of the reference unit in split_units(hit.text)
    # the unit whose vector is closest to the counselor's next turn's (None: no dense side)
    dense_reference: int | None = None

    def reference_of(self, kind: Reference) -> int | None:
        """The reference unit under one view (None: the case has none under it)."""
        if kind == "lexical":
            return self.reference
        if kind == "dense":
            return self.dense_reference
        return self.reference if self.dense_reference == self.reference else None


def _labelled_results(
    assistant: Assistant, calls: Sequence[dict[str, Any]], batch: int = 16
) -> tuple[list[tuple[SuggestRequest, str, str, int, Any]], int]:
    """Every labelled caller turn of ``calls`` followed by a counselor's answer, run as the service
    runs it: (request, the counselor's last turn, the masked answer, turn index, result) where the
    top card's article is a labelled one; and how many labelled turns were tried."""
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
    out = []
    # the passage retrieval matched (the service may swap in a better one of the same article:
    # article_view measures that apart)
    saved = assistant.settings.draft_article_passages
    assistant.settings.draft_article_passages = False
    try:
        for k in range(0, len(pending), batch):
            chunk = pending[k : k + batch]
            results = assistant.suggest_many([p[0] for p in chunk])
            for (req, ctx, answer, labels, i), res in zip(chunk, results, strict=True):
                if res.hits and res.hits[0].doc_id in labels:
                    out.append((req, ctx, answer, i, res))
    finally:
        assistant.settings.draft_article_passages = saved
    return out, len(pending)


def collect(
    assistant: Assistant,
    calls: Sequence[dict[str, Any]],
    batch: int = 16,
    dense: UnitVectors | None = None,
) -> tuple[list[Case], int]:
    """The cases of ``calls`` (see the module docstring) and how many labelled turns were tried.
    ``dense``: also each case's dense reference."""
    gen = _grounded(assistant)
    labelled, tried = _labelled_results(assistant, calls, batch)
    cases: list[Case] = []
    for req, ctx, answer, i, res in labelled:
        hit = res.hits[0]
        units = split_units(hit.text)
        if len(units) < 2:
            continue
        ref_terms = gen.terms(answer)
        scores = gen._score_units(ref_terms, units)
        best = max(range(len(units)), key=lambda j: scores[j])
        if scores[best] <= 0:
            continue
        dense_ref = None
        if dense is not None:
            cos = dense.cosines(answer, hit, units)
            if cos is not None:
                dense_ref = max(range(len(units)), key=lambda j: cos[j])
        cases.append(Case(req.call_id, i, res.query, ctx, answer, hit, best, dense_ref))
    return cases, tried


@dataclass
class ArticleCase:
    """A labelled card whose article has several passages, with its references over all of them."""

    call_id: str
    turn: int
    query: str
    hit: Any  # the passage retrieval matched
    units: list[str]  # every unit of the article's passages, in order
    lexical_reference: int
    dense_reference: int


def article_view(assistant: Assistant, calls: Sequence[dict[str, Any]], batch: int = 16) -> dict[str, Any]:
    """Reading the article's best passage (``draft_article_passages``, :mod:`assist.passage_choice`)
    against the passage retrieval matched, on the labelled cards of ``calls`` whose article has more
    than one passage: the references (the unit closest to the counselor's next turn, lexically and by
    embedding) are taken over **every** unit of the article, and each way's chosen sentences either
    hold the reference or not. The draft weight is the configured one (cross-validated separately)."""
    from .passage_choice import article_units, best_passage

    gen = _grounded(assistant)
    if gen.dense is None or gen.settings.draft_dense_weight <= 0:
        return {"dense": False}
    arts = assistant.article_passages
    labelled, tried = _labelled_results(assistant, calls, batch)
    cases: list[ArticleCase] = []
    swapped = 0
    for req, _ctx, answer, i, res in labelled:
        hit = res.hits[0]
        sibs = arts.of(hit)
        if len(sibs) < 2:
            continue
        art = article_units(gen, answer, sibs)
        if art is not None and art.units and max(art.lexical) > 0:
            best_lex = max(range(len(art.units)), key=lambda j: art.lexical[j])
            best_cos = max(range(len(art.units)), key=lambda j: art.cosines[j])
            units = [u.text for u in art.units]
            cases.append(ArticleCase(req.call_id, i, res.query, hit, units, best_lex, best_cos))
    rows = {
        "lexical": [0, 0, 0],
        "dense": [0, 0, 0],
        "both": [0, 0, 0],
    }  # cases, matched passage, best passage
    paired = {k: {"better": 0, "worse": 0} for k in rows}
    choice_ms: list[float] = []
    for ac in cases:
        t0 = time.perf_counter()
        better = best_passage(gen, ac.query, ac.hit, arts.of(ac.hit))
        choice_ms.append((time.perf_counter() - t0) * 1000)
        swapped += better is not None
        said_matched = set(_said_hit(gen, ac.query, ac.hit))
        said_best = (
            set(
                _said_hit(
                    gen,
                    ac.query,
                    ac.hit.model_copy(update={"passage_id": better.passage_id, "text": better.text}),
                )
            )
            if better is not None
            else said_matched
        )
        refs = {
            "lexical": ac.lexical_reference,
            "dense": ac.dense_reference,
            "both": ac.lexical_reference if ac.lexical_reference == ac.dense_reference else None,
        }
        for view, ref in refs.items():
            if ref is None:
                continue
            a, b = ac.units[ref] in said_matched, ac.units[ref] in said_best
            rows[view][0] += 1
            rows[view][1] += a
            rows[view][2] += b
            paired[view]["better"] += b and not a
            paired[view]["worse"] += a and not b
    return {
        "dense": True,
        "weight": gen.settings.draft_dense_weight,
        "labelled_turns": tried,
        "cases": len(cases),
        "passage_swapped": swapped,
        "choice_ms": _pcts(choice_ms),  # what looking over the whole article adds to a draft
        "views": {
            view: {
                "cases": n,
                "matched_passage": round(m / n, 4) if n else None,
                "article_best_passage": round(b / n, 4) if n else None,
                **paired[view],
                "sign_test_p": _sign_p(paired[view]["better"], paired[view]["worse"]),
            }
            for view, (n, m, b) in rows.items()
        },
    }


def _said_hit(gen: GroundedGenerator, query: str, hit: Any, context: str = "") -> list[str]:
    """The statute sentences (items unmarked) ``gen`` reads from ``hit`` for ``query``."""
    picked = gen.select(query, [hit], context)
    if not picked:
        return []
    return [p[5:] if p.startswith("ITEM:") else p for p in picked[0][1]]


def _grounded(assistant: Assistant) -> GroundedGenerator:
    gen = grounded_of(assistant.generator)
    assert gen is not None, "every generator drafts through a grounded one"
    return gen


def with_dense(assistant: Assistant, size: int = 4096) -> UnitVectors | None:
    """The dense side of ``assistant``'s grounded generator, attached over its knowledge base's
    encoder when it has none yet (None: the index has no dense side)."""
    gen = _grounded(assistant)
    if gen.dense is None:
        # the index's stored unit vectors where it has them (dasan kb units), embedded on demand where not
        gen.dense = UnitVectors.for_kb(assistant.kb, size, on_demand=True)
    return gen.dense


def _weighted(
    base: GroundedGenerator, weight: float, param: str = CONTEXT, **fixed: float
) -> GroundedGenerator:
    """``base`` (its dense side too) with ``param`` at ``weight`` and the ``fixed`` settings."""
    return GroundedGenerator(
        base.morphs, base.idf, base.settings.model_copy(update={param: weight, **fixed}), base.dense
    )


def _said(gen: GroundedGenerator, case: Case) -> list[str]:
    return _said_hit(gen, case.query, case.hit, case.context)


def agrees(gen: GroundedGenerator, case: Case, reference: Reference = "lexical") -> bool:
    """Whether the draft of ``case`` reads its reference unit (under ``reference``)."""
    j = case.reference_of(reference)
    if j is None:
        return False
    return split_units(case.hit.text)[j].text in _said(gen, case)


def _fixed(param: str) -> dict[str, float]:
    """What the other weight is held at while one is cross-validated: the dense side off while the
    context weight is (the session-11 measurement as it was); the context weight as configured
    while the dense one is."""
    return {DENSE: 0.0} if param == CONTEXT else {}


def cross_validate(
    assistant: Assistant,
    cases: Sequence[Case],
    folds: int = 5,
    weights: Sequence[float] = WEIGHTS,
    param: str = CONTEXT,
    reference: Reference = "lexical",
) -> dict[str, Any]:
    """Agreement of every weight of ``param`` on every fold, and the held-out mean when each fold's
    weight is chosen on the other folds (beside the held-out mean of the first weight, the
    baseline, on the same folds). Cases without a reference under ``reference`` are left out."""
    base = _grounded(assistant)
    cases = [c for c in cases if c.reference_of(reference) is not None]
    prefer = _prefer(param)
    table: dict[float, list[tuple[int, int]]] = {}
    for w in weights:
        gen = _weighted(base, w, param, **_fixed(param))
        per = [[0, 0] for _ in range(folds)]
        for c in cases:
            f = fold_of(c.call_id, folds)  # the fold the ranker's cross-validation puts the call in
            per[f][1] += 1
            per[f][0] += int(agrees(gen, c, reference))
        table[w] = [(a, n) for a, n in per]
    held: list[dict[str, Any]] = []
    for f in range(folds):

        def train_score(w: float, f: int = f) -> float:
            a = sum(x[0] for j, x in enumerate(table[w]) if j != f)
            n = sum(x[1] for j, x in enumerate(table[w]) if j != f)
            return a / n if n else 0.0

        best = max(weights, key=lambda w: (train_score(w), prefer(w)))
        a, n = table[best][f]
        a0 = table[weights[0]][f][0]
        held.append(
            {
                "fold": f,
                "weight": best,
                "cases": n,
                "agreement": round(a / n, 4) if n else None,
                "baseline": round(a0 / n, 4) if n else None,
            }
        )
    scored = [h for h in held if h["agreement"] is not None]
    return {
        "param": param,
        "reference": reference,
        "baseline_weight": weights[0],
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
        "baseline_mean": round(sum(h["baseline"] for h in scored) / len(scored), 4) if scored else None,
    }


def chosen_on_all(cv: dict[str, Any]) -> float:
    """The weight a cross-validation report's training calls choose as a whole (its tie-break)."""
    prefer = _prefer(str(cv.get("param", CONTEXT)))
    by = cv["by_weight"]
    return float(max(by, key=lambda w: (by[w]["agreement"], prefer(float(w)))))


def evaluate(
    assistant: Assistant,
    cases: Sequence[Case],
    weights: Sequence[float],
    param: str = CONTEXT,
    reference: Reference = "lexical",
) -> dict[str, Any]:
    """Agreement of each weight on ``cases`` (an unseen set: nothing chosen on it)."""
    base = _grounded(assistant)
    cases = [c for c in cases if c.reference_of(reference) is not None]
    out: dict[str, Any] = {"cases": len(cases)}
    for w in weights:
        gen = _weighted(base, w, param, **_fixed(param))
        out[str(w)] = round(sum(agrees(gen, c, reference) for c in cases) / len(cases), 4) if cases else None
    return out


def paired(
    assistant: Assistant,
    cases: Sequence[Case],
    weight: float,
    param: str = DENSE,
    reference: Reference = "lexical",
    baseline: float = 0.0,
) -> dict[str, Any]:
    """``weight`` against ``baseline`` case by case: how many drafts it turns right (``better``) and
    wrong (``worse``), and the two-sided sign test's p over the cases that change."""
    base = _grounded(assistant)
    a = _weighted(base, weight, param, **_fixed(param))
    b = _weighted(base, baseline, param, **_fixed(param))
    better = worse = same = 0
    for c in cases:
        if c.reference_of(reference) is None:
            continue
        x, y = agrees(a, c, reference), agrees(b, c, reference)
        better += int(x and not y)
        worse += int(y and not x)
        same += int(x == y)
    return {
        "weight": weight,
        "baseline": baseline,
        "better": better,
        "worse": worse,
        "same": same,
        "sign_test_p": _sign_p(better, worse),
    }


def _sign_p(better: int, worse: int) -> float:
    """Two-sided sign test over the cases that changed."""
    n, k = better + worse, min(better, worse)
    return round(min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n), 4) if n else 1.0


def _pcts(xs: Sequence[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    a = np.asarray(xs, dtype=np.float64)
    return {
        "n": len(xs),
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "max": round(float(a.max()), 2),
    }


def _added_ms(
    vectors: UnitVectors, cases: Sequence[Case]
) -> tuple[list[float], list[bool], list[float], list[int]]:
    """Per case in call order: the ms the dense side adds to its draft and whether its units were
    embedded (a miss); for the misses, their ms per unit and unit count."""
    added: list[float] = []
    missed: list[bool] = []
    per_unit: list[float] = []
    sizes: list[int] = []
    for c in cases:
        units = split_units(c.hit.text)
        before = vectors.misses
        t0 = time.perf_counter()
        cos = vectors.cosines(c.query, c.hit, units)
        if cos is not None:
            combine_scores([1.0] * len(units), cos, 0.5, [u.text.startswith("다만") for u in units])
        ms = (time.perf_counter() - t0) * 1000
        added.append(ms)
        missed.append(vectors.misses > before)
        if missed[-1]:
            per_unit.append(ms / len(units))
            sizes.append(len(units))
    return added, missed, per_unit, sizes


def dense_latency(
    assistant: Assistant, cases: Sequence[Case], size: int = 1024, sample_units: int = 256
) -> dict[str, Any]:
    """What the dense side adds to a draft, in ms, for every case in call order (as the cards came):
    the question's vector (the one retrieval made, from the query cache, as in the service), the
    units' vectors, the cosines and the blend. Two ways: reading the index's stored unit vectors
    (``dasan kb units``; absent: ``stored`` is None), and embedding them on demand over a fresh
    cache of ``size`` passages (split by a cache miss or hit). Also: how many units the index has and
    what embedding them all takes (the store's own figure, else an estimate from ``sample_units``
    random units embedded in batches of up to 32)."""
    kb = assistant.kb
    stored_side = UnitVectors.for_kb(kb, size, on_demand=False)
    if stored_side is None:
        return {"dense": False}
    store = stored_side.store
    stored: dict[str, Any] | None = None
    if store is not None:
        added, _, _, _ = _added_ms(stored_side, cases)
        stored = {
            "added_ms": _pcts(added),
            "share_read_from_store": round(stored_side.stored / max(1, len(cases)), 3),
            "store": {k: store.meta.get(k) for k in ("units", "passage_count", "backend", "seconds")},
        }
    fresh = UnitVectors.for_kb(kb, size, on_demand=True)
    assert fresh is not None
    fresh._load_store = None  # embed on demand only
    added, missed, per_unit, sizes = _added_ms(fresh, cases)
    miss = [ms for ms, m in zip(added, missed, strict=True) if m]
    hit = [ms for ms, m in zip(added, missed, strict=True) if not m]
    all_units = [(p, u) for p in kb.passages for u in split_units(p.text)]
    n_units = len(all_units)
    unit_ms = float(np.median(per_unit)) if per_unit else 0.0
    out: dict[str, Any] = {
        "dense": True,
        "stored": stored,
        "cache_passages": size,
        "added_ms": _pcts(added),
        "added_ms_cache_miss": _pcts(miss),
        "added_ms_cache_hit": _pcts(hit),
        "units_per_missed_passage": _pcts([float(x) for x in sizes]),
        "cache_hit_rate": round(len(hit) / len(added), 3) if added else None,
        "index_units": n_units,
        "index_passages": len(kb.passages),
        "ms_per_unit_p50": round(unit_ms, 2),
    }
    if store is not None:
        return out
    # embedding every unit ahead (dasan kb units): a random sample, batched as the store embeds
    sample = random.Random(0).sample(all_units, min(sample_units, n_units))
    docs = [
        document_text(unit_title(p.law_name, p.article_title), u.text, kb.settings.doc_title_in_prompt)
        for p, u in sample
    ]
    t0 = time.perf_counter()
    kb.encoder.encode_documents(docs, batch_size=32)
    batched_ms = (time.perf_counter() - t0) * 1000 / max(1, len(docs))
    return out | {
        "batched_sample_units": len(docs),
        "batched_ms_per_unit": round(batched_ms, 2),
        "precompute_all_s_estimate": round(n_units * batched_ms / 1000, 1),
    }


def examples(assistant: Assistant, cases: Sequence[Case], weight: float, n: int = 15) -> list[dict[str, Any]]:
    """``n`` cases spread over the set (every k-th) where the lexical and the dense choice (at
    ``weight``) differ, first, then where they agree: the question, both choices, both references
    and the counselor's answer, to read by eye."""
    base = _grounded(assistant)
    lex = _weighted(base, 0.0, DENSE)
    dense = _weighted(base, weight, DENSE)
    rows = []
    for c in cases:
        a, b = _said(lex, c), _said(dense, c)
        units = split_units(c.hit.text)
        lref = units[c.reference].text
        dref = units[c.dense_reference].text if c.dense_reference is not None else None
        rows.append(
            {
                "call": c.call_id,
                "turn": c.turn,
                "article": c.hit.doc_id,
                "question": c.query,
                "counselor_before": c.context,
                "counselor_answer": c.answer,
                "lexical_pick": " / ".join(a),
                "dense_pick": " / ".join(b),
                "differ": a != b,
                "lexical_reference": lref,
                "dense_reference": dref,
                # whether each pick reads each reference
                "lexical_pick_refs": [lref in a, dref in a],
                "dense_pick_refs": [lref in b, dref in b],
            }
        )
    differ = [r for r in rows if r["differ"]]
    same = [r for r in rows if not r["differ"]]
    step = max(1, len(differ) // n) if differ else 1
    picked = differ[::step][:n]
    return picked + same[: max(0, n - len(picked))]
