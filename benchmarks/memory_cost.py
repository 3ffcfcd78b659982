"""What the question memory costs a card: the second stage's candidates and features for the same
questions with the shipped memory and without it, in one process, one after the other (the query
vectors are cached after the warm-up, so the encoder is out of the comparison).

    python benchmarks/memory_cost.py [--questions 200] [--rounds 3] [--out benchmarks/results/memory_cost.json]

Reports per-question p50/p95 of ``Reranker.candidates`` with and without the memory and their ratio,
and the memory's size, with the machine (CPU model) it ran on. Also what building the memory costs
an index once (``embed_s``: the shipped questions embedded by the index's query encoder, as ``dasan
kb build`` or the first start of an index without them does; questions per second beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import machine, nearest_rank, write_result  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/memory_cost.json")
    args = ap.parse_args()

    from assist.knowledge import KnowledgeBase
    from assist.knowledge.memory import MEMORY_PATH, embed_questions, read_questions, shipped_memory
    from assist.knowledge.rerank import Conversation, Reranker
    from streaming.hardware import configure_threading

    configure_threading()
    kb = KnowledgeBase.open()
    loaded = Reranker.load(kb)
    if loaded.memory is None:
        # models of other features than this code's read no memory; the features cost the same
        loaded.memory = shipped_memory(kb)
    if loaded.memory is None:
        print("no question memory shipped: nothing to compare", file=sys.stderr)
        return 1
    bare = Reranker(kb, loaded.model, loaded.abstainer, loaded.threshold, view=loaded.view)
    texts = [
        json.loads(ln)["utterance"]
        for ln in (REPO / "eval" / "utterances.jsonl").read_text(encoding="utf-8").splitlines()
        if ln.strip()
    ][: args.questions]
    convs = [Conversation(t) for t in texts]
    for c in convs:  # warm-up: every query vector into the cache
        loaded.candidates([c])
    times: dict[str, list[float]] = {"with_memory": [], "without_memory": []}
    for _ in range(args.rounds):
        for name, r in (("without_memory", bare), ("with_memory", loaded)):
            for c in convs:
                t0 = time.perf_counter()
                r.candidates([c])
                times[name].append((time.perf_counter() - t0) * 1000)
    texts, articles = read_questions(MEMORY_PATH)
    assert kb.encoder is not None  # (the memory above needs the dense side)
    kb.encoder.query_cache.clear()  # every question through the model, as on a fresh index
    t0 = time.perf_counter()
    embed_questions(kb, texts, articles)  # what an index pays once (not stored: this is a measurement)
    embed_s = time.perf_counter() - t0
    res = {
        name: {"p50_ms": round(nearest_rank(xs, 0.5), 3), "p95_ms": round(nearest_rank(xs, 0.95), 3)}
        for name, xs in times.items()
    }
    result = {
        "what": "Reranker.candidates per question, query vectors cached (the encoder excluded)",
        "questions": len(convs),
        "rounds": args.rounds,
        "memory_questions": len(loaded.memory),
        **res,
        "ratio_p50": round(res["with_memory"]["p50_ms"] / res["without_memory"]["p50_ms"], 3),
        "ratio_p95": round(res["with_memory"]["p95_ms"] / res["without_memory"]["p95_ms"], 3),
        "embed_s": round(embed_s, 1),
        "embed_questions_per_s": round(len(texts) / embed_s, 1),
        "machine": machine(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, ensure_ascii=False))
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
