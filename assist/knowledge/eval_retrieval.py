"""Retrieval evaluation on a labelled file (format of ../shared/eval-dev/utterances.jsonl).

An article counts as found when any of its passages is retrieved (hits are one per article).
In-scope items (with relevant ids): Recall@1/5/10 (share of the relevant articles in the top k),
Hit@1/5 (any relevant article in the top k), MRR@10, nDCG@10 (binary gains) per method.
Out-of-scope items (no relevant ids): how often the top hit would still be shown, given the
knowledge base's confidence rule (:meth:`KnowledgeBase.is_confident`); the in-scope side of the same
rule is reported too (how often a correct answer would be withheld).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .kb import KnowledgeBase


class EvalItem(BaseModel):
    id: str
    utterance: str
    relevant_article_ids: list[str] = Field(default_factory=list)
    known_wrong_article_ids: list[str] = Field(
        default_factory=list, description="Articles a counselor judged wrong for it (dasan feedback export)"
    )
    topic: str | None = None


def load_items(path: Path | str) -> list[EvalItem]:
    items = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                items.append(EvalItem.model_validate(json.loads(line)))
    return items


_ASR_CONFUSIONS = [("료", "로"), ("깎", "깍"), ("됐", "됬"), ("않", "안"), ("의", "에"), ("세요", "새요")]


def asr_noise(text: str, seed: int = 0) -> str:
    """A recognised-speech-like variant: no punctuation, broken and joined words, common misspellings.

    Deterministic for a seed. Mimics what Whisper does to phone Korean (``대형 폐기 물``, ``과태로``).
    """
    import random
    import re

    rng = random.Random(f"{seed}:{text}")
    words = re.sub(r"[.,?!…~\"'“”‘’]", " ", text).split()
    out: list[str] = []
    for w in words:
        for a, b in _ASR_CONFUSIONS:
            if a in w and rng.random() < 0.5:
                w = w.replace(a, b)
        if len(w) >= 4 and rng.random() < 0.2:
            cut = rng.randint(1, len(w) - 1)
            out.extend([w[:cut], w[cut:]])
        elif out and rng.random() < 0.2:
            out[-1] += w
        else:
            out.append(w)
    return " ".join(out)


METRICS = ("R@1", "R@5", "R@10", "Hit@1", "Hit@5", "MRR@10", "nDCG@10")


def metrics_for(ranked: list[list[str]], relevant: list[list[str]]) -> dict[str, float]:
    n = len(ranked)
    if n == 0:
        return {**dict.fromkeys(METRICS, 0.0), "n": 0}
    out = dict.fromkeys(METRICS, 0.0)
    for docs, rel in zip(ranked, relevant, strict=True):
        rels = set(rel)
        for k in (1, 5, 10):
            # recall: share of the relevant articles found in the top k
            out[f"R@{k}"] += len(rels.intersection(docs[:k])) / len(rels)
        for k in (1, 5):
            # hit rate: any relevant article in the top k (what "recall@k" means in some references)
            out[f"Hit@{k}"] += 1.0 if rels.intersection(docs[:k]) else 0.0
        rr = next((1.0 / (i + 1) for i, d in enumerate(docs[:10]) if d in rels), 0.0)
        out["MRR@10"] += rr
        dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(docs[:10]) if d in rels)
        idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(rels), 10)))
        out["nDCG@10"] += dcg / idcg if idcg else 0.0
    res: dict[str, float] = {k: round(v / n, 4) for k, v in out.items()}
    res["n"] = n
    return res


def evaluate(
    kb: KnowledgeBase, items: list[EvalItem], methods: list[str] | None = None, noisy: bool = False
) -> dict[str, Any]:
    """Per-method metrics for in-scope items and the abstention figures for out-of-scope ones.

    ``noisy``: evaluate ASR-like variants of the utterances (:func:`asr_noise`) instead.
    """
    if noisy:
        items = [it.model_copy(update={"utterance": asr_noise(it.utterance)}) for it in items]
    if methods is None:
        methods = ["bm25_ws", "bm25", "dense", "hybrid"] if kb.dense is not None else ["bm25_ws", "bm25"]
    queries = [it.utterance for it in items]
    qvecs = kb.encode_queries(queries) if kb.dense is not None else None
    in_scope = [i for i, it in enumerate(items) if it.relevant_article_ids]
    # an item with known-wrong articles only (a 👎 card) is not out of scope: the answer is unknown
    oos = [i for i, it in enumerate(items) if not it.relevant_article_ids and not it.known_wrong_article_ids]
    wrong = [i for i, it in enumerate(items) if it.known_wrong_article_ids]
    report: dict[str, Any] = {"items": len(items), "in_scope": len(in_scope), "out_of_scope": len(oos)}
    table: dict[str, dict[str, float]] = {}
    per_item: dict[str, list[list[str]]] = {}
    hybrid_hits = None
    for m in methods:
        vecs = qvecs if m in ("dense", "hybrid") else None
        hits = kb.search_encoded(queries, vecs, 10, m)
        if m == "hybrid" or (hybrid_hits is None and m == methods[-1]):
            hybrid_hits = hits
        ranked = [[h.doc_id for h in hits[i]] for i in in_scope]
        per_item[m] = ranked
        table[m] = metrics_for(ranked, [items[i].relevant_article_ids for i in in_scope])
    reranker = _reranker(kb)
    if reranker is not None:
        # the product's order: the learned second stage over the first stage's candidates
        hits = reranker.rank([_conversation(it.utterance) for it in items], 10)
        ranked = [[h.doc_id for h in hits[i]] for i in in_scope]
        per_item["reranked"] = ranked
        methods = [*methods, "reranked"]
        table["reranked"] = metrics_for(ranked, [items[i].relevant_article_ids for i in in_scope])
        if reranker.abstainer is not None:
            thr = reranker.threshold
            shown = [items[i].id for i in oos if hits[i] and hits[i][0].scores["out_of_scope"] < thr]
            held = [items[i].id for i in in_scope if not hits[i] or hits[i][0].scores["out_of_scope"] >= thr]
            report["abstention_reranked"] = {
                "rule": "out-of-scope probability of the learned stage < threshold (cross-validated)",
                "threshold": round(thr, 4),
                "out_of_scope_shown": len(shown),
                "out_of_scope_total": len(oos),
                "out_of_scope_shown_ids": shown,
                "in_scope_withheld": len(held),
                "in_scope_withheld_ids": held,
            }
    report["methods"] = table
    assert hybrid_hits is not None
    shown_oos = [items[i].id for i in oos if kb.is_confident(hybrid_hits[i])]
    withheld = [items[i].id for i in in_scope if not kb.is_confident(hybrid_hits[i])]
    top_scores = [
        round(hybrid_hits[i][0].scores.get("dense", hybrid_hits[i][0].score), 4) if hybrid_hits[i] else None
        for i in range(len(items))
    ]
    report["abstention"] = {
        "rule": "top hit dense cosine >= threshold"
        if kb.dense is not None
        else "top BM25 score >= threshold",
        "threshold": kb.settings.abstain_threshold
        if kb.dense is not None
        else kb.settings.abstain_bm25_threshold,
        "out_of_scope_shown": len(shown_oos),
        "out_of_scope_total": len(oos),
        "out_of_scope_shown_ids": shown_oos,
        "in_scope_withheld": len(withheld),
        "in_scope_withheld_ids": withheld,
    }
    report["per_item"] = [
        {
            "id": items[i].id,
            "relevant": items[i].relevant_article_ids,
            "top_score": top_scores[i],
            **{m: per_item[m][j][:5] for m in methods},
        }
        for j, i in enumerate(in_scope)
    ]
    report["oos_top_scores"] = {items[i].id: top_scores[i] for i in oos}
    if wrong:
        top1 = [
            i
            for i in wrong
            if hybrid_hits[i]
            and kb.is_confident(hybrid_hits[i])
            and hybrid_hits[i][0].doc_id in items[i].known_wrong_article_ids
        ]
        report["known_wrong"] = {
            "items": len(wrong),
            "still_first": len(top1),
            "still_first_ids": [items[i].id for i in top1],
        }
    return report


def _reranker(kb: KnowledgeBase) -> Any:
    """The shipped second stage over this index (None without a dense side or a model)."""
    if kb.dense is None:
        return None
    from .rerank import Reranker

    r = Reranker.load(kb)
    return r if r.model is not None else None


def _conversation(utterance: str) -> Any:
    """A single utterance as the service would retrieve for it (masked, its district's rules)."""
    from assist.assistant import district_filters, district_of
    from streaming.privacy import mask_text

    from .rerank import Conversation

    text = mask_text(utterance)
    district = district_of([text])
    return Conversation(text[:300], district=district, filters=district_filters(district))


def format_table(report: dict[str, Any]) -> str:
    names = {
        "bm25_ws": "BM25 whitespace",
        "bm25": "BM25 morphemes",
        "dense": "dense",
        "hybrid": "hybrid",
        "reranked": "hybrid+rerank *",
    }
    cols = METRICS
    lines = [f"in scope: {report['in_scope']} items, out of scope: {report['out_of_scope']}", ""]
    lines.append(f"{'method':<18}" + "".join(f"{c:>9}" for c in cols))
    for m, row in report["methods"].items():
        lines.append(f"{names.get(m, m):<18}" + "".join(f"{row[c]:>9.3f}" for c in cols))
    a = report["abstention"]
    lines.append("")
    lines.append(
        f"out of scope: {a['out_of_scope_shown']}/{a['out_of_scope_total']} would still be shown a source "
        f"({a['rule']}, threshold {a['threshold']}); in scope withheld: {a['in_scope_withheld']}/{report['in_scope']}"
    )
    if "abstention_reranked" in report:
        a = report["abstention_reranked"]
        lines.append(
            f"* the product's order (learned second stage): out of scope shown {a['out_of_scope_shown']}/"
            f"{a['out_of_scope_total']}, in scope withheld {a['in_scope_withheld']}/{report['in_scope']} "
            f"(out-of-scope probability < {a['threshold']})"
        )
    if "known_wrong" in report:
        w = report["known_wrong"]
        lines.append(
            f"known wrong (counselor 👎): {w['still_first']}/{w['items']} still shown first with confidence"
        )
    return "\n".join(lines)
