"""What a counselor would see, measured on questions and calls the models never saw
(``dasan eval rerank --live``).

The shipped second stage is trained on every labelled example, so ``dasan eval assist`` with it
scores items it was fitted to. Here, for each fold of the grouped cross-validation, the ranker and
the out-of-scope model are fitted on the other folds only, put into the real
:class:`~assist.assistant.Assistant`, and the fold's held-out material goes through the product's
own code: single utterances through ``suggest_text`` (drafts, citations, abstention) and whole calls
through the tracker (live cards turn by turn, then the summary citing from the cards shown). The
summary's confirmation threshold is then chosen by cross-validation over the collected call
evidence. Every figure is a mean of held-out folds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .assistant import Assistant
from .citations import CitationChecker
from .eval_assist import evaluate_calls, evaluate_utterances, regulations_cv
from .eval_turns import evaluate_turns
from .knowledge.rerank import Reranker
from .knowledge.rerank_train import (
    CALL_SETS,
    UTTERANCE_SETS,
    Example,
    abstain_rows,
    fit_abstain,
    fit_call_abstain,
    fit_gated,
    fit_probe,
    fit_turn_probe,
    fold_of,
    fold_split,
    in_call_threshold_of,
)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def live_cv(
    assistant: Assistant,
    reranker: Reranker,
    examples: list[Example],
    oof: dict[str, np.ndarray],
    sets: dict[str, Path],
    folds: int = 5,
    max_withheld: float = 0.05,
    call_model: str | None = None,
    memory: bool = True,
    unfamiliar_share: float = 0.0,
    probe: bool = True,
    turn_probe: bool = True,
    summaries_only: bool = False,
    evidence_out: list[tuple[str, list[Any], set[str]]] | None = None,
) -> dict[str, Any]:
    s = assistant.settings
    checker = CitationChecker.for_kb(assistant.kb, s.support_lexical_min, s.support_embedding_min)
    utterances = [
        (name, item)
        for name in UTTERANCE_SETS
        if name in sets
        for item in _jsonl(sets[name])
        if "utterance" in item
    ]
    # the fixed pools (comparable across sessions); for the summaries alone, every call set: what the
    # learned summary confirmation is fitted on
    pools = [n for n in sets if n.startswith("turns")] if summaries_only else list(CALL_SETS)
    calls = [c for name in pools if name in sets for c in _jsonl(sets[name])]
    per_fold: list[dict[str, Any]] = []
    evidence: list[tuple[str, list[Any], set[str]]] = []
    saved = assistant.reranker
    try:
        for f in range(folds):
            with_turn = bool(call_model) and turn_probe
            train, _test, fold_memory = fold_split(
                reranker, examples, f, folds, memory, unfamiliar_share, probe, with_turn
            )
            gated = fit_gated(reranker, train)
            Xa, ya = abstain_rows(train, oof)
            clf, thr = fit_abstain(Xa, ya, max_withheld)
            thr_call = in_call_threshold_of(clf, train, oof, max_withheld)
            fitted = fit_call_abstain(train, oof, max_withheld, call_model, clf) if call_model else None
            assistant.reranker = Reranker(
                reranker.kb,
                gated,
                clf,
                thr,
                view=reranker.view,
                threshold_in_call=thr_call,
                call_abstainer=fitted[0] if fitted else None,
                threshold_call_model=fitted[1] if fitted else 1.0,
                memory=fold_memory,
                context_vectors=reranker.context_vectors,
                probe=fit_probe(train) if probe else None,
                turn_probe=fit_turn_probe(train) if with_turn and fitted else None,
            )
            res: dict[str, Any] = {"fold": f, "utterances": {}, "turns": {}}
            fold_calls = [c for c in calls if fold_of(str(c["id"]), folds) == f]
            if not summaries_only:
                items = [it for _n, it in utterances if fold_of(it.get("variant_of") or it["id"], folds) == f]
                u = evaluate_utterances(assistant, items, checker)
                res["utterances"] = {
                    "n": u["items"],
                    "citation_precision": u["citation_precision"],
                    "out_of_scope_abstained": u["out_of_scope"]["abstained_correctly"],
                    "out_of_scope_n": u["out_of_scope"]["n"],
                    "in_scope_withheld": u["in_scope"]["abstained_wrongly"],
                    "hit_at_5": u["in_scope"]["hit_at_5"],
                    "keywords_f1": u["keywords"]["f1"],
                }
                t = evaluate_turns(assistant, fold_calls)
                t.pop("per_turn", None)
                res["turns"] = t
            summarised = [c for c in fold_calls if "reference_summary" in c]
            if summarised:
                evaluate_calls(assistant, summarised, evidence_out=evidence)
            per_fold.append(res)
    finally:
        assistant.reranker = saved
    if evidence_out is not None:
        evidence_out.extend(evidence)

    def mean(section: str, key: str) -> float | None:
        vals = [r[section][key] for r in per_fold if r[section].get(key) is not None]
        return round(float(np.mean(vals)), 4) if vals else None

    return {
        "folds": folds,
        "per_fold": per_fold,
        "mean_of_held_out_folds": {
            "utterances": {
                k: mean("utterances", k)
                for k in (
                    "citation_precision",
                    "out_of_scope_abstained",
                    "in_scope_withheld",
                    "hit_at_5",
                    "keywords_f1",
                )
            },
            "turns": {
                k: mean("turns", k)
                for k in (
                    "hit_at_1",
                    "hit_at_3",
                    "citation_precision",
                    "abstained_in_scope",
                    "shown_when_none_expected",
                )
            },
            "summary_regulations": regulations_cv(evidence, folds),
        },
    }
