"""Retrieval speed and its recall cost: build time, index load, query latency, concurrent throughput.

    .venv/bin/python benchmarks/retrieval_bench.py                 # uses the built index (dasan kb build)
    .venv/bin/python benchmarks/retrieval_bench.py --build         # also times a fresh full build
    .venv/bin/python benchmarks/retrieval_bench.py --caps 32,48,64,96

Prints a table and writes benchmarks/results/retrieval_bench.json (with the machine it ran on).
Queries are the eval-dev utterances cut or padded to 30 words (a long caller turn).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine_info import machine, nearest_rank, write_result  # noqa: E402


def thirty_words(utterances: list[str]) -> list[str]:
    out = []
    for i, u in enumerate(utterances):
        words = u.split()
        j = i + 1
        while len(words) < 30:
            words += utterances[j % len(utterances)].split()
            j += 1
        out.append(" ".join(words[:30]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="store_true", help="Time a fresh full build (minutes of CPU)")
    ap.add_argument("--caps", default="32,48,64,96", help="Query token caps to measure (recall and latency)")
    ap.add_argument("--single", type=int, default=40, help="Single queries timed (sequential)")
    ap.add_argument("--threads", type=int, default=16, help="Concurrent callers for the throughput test")
    ap.add_argument("--seconds", type=float, default=15.0, help="Duration of the throughput test")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "retrieval_bench.json"))
    args = ap.parse_args()

    import psutil

    from assist.knowledge import KnowledgeBase, KnowledgeSettings
    from assist.knowledge.eval_retrieval import evaluate, load_items
    from streaming import paths

    # the queries repeat (the same utterances at each cap, then timed one by one): no query-vector
    # cache, or the timings would be of cache hits, not of the encoder
    settings = KnowledgeSettings(query_cache=0)
    items = load_items(paths.shared_dir() / "eval-dev" / "utterances.jsonl")
    result: dict = {
        "machine": machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings.model_dump(
            mode="json",
            include={
                "dense_backend",
                "dense_unit",
                "max_seq_length",
                "query_max_length",
                "fusion",
                "weight_dense",
                "weight_bm25",
                "threads",
                "batch_window_ms",
                "batch_max",
                "query_cache",
            },
        ),
    }
    proc = psutil.Process()

    if args.build:
        with tempfile.TemporaryDirectory() as tmp:
            s = settings.model_copy(update={"index_dir": Path(tmp)})
            t0 = time.perf_counter()
            kb = KnowledgeBase.build(None, s, progress=True)
            kb.save()
            result["build"] = {"seconds": round(time.perf_counter() - t0, 1), **kb.build_stats}
            del kb
        print(f"full build: {result['build']['seconds']} s ({result['build']})")

    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    kb = KnowledgeBase.open(settings, build_if_missing=True)
    result["load"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        "encoder_load_seconds": round(kb.encoder.load_seconds, 2) if kb.encoder else None,
        "rss_mb": round((proc.memory_info().rss - rss0) / 2**20),
        "rss_total_mb": round(proc.memory_info().rss / 2**20),
        **kb.info(),
    }
    print(f"index load: {result['load']['seconds']} s, +{result['load']['rss_mb']} MB RSS")

    queries = thirty_words([it.utterance for it in items])
    # warm up
    kb.search(queries[0])

    # recall and latency per query cap
    caps = [int(c) for c in args.caps.split(",") if c]
    rows = []
    assert kb.encoder is not None
    default_cap = kb.encoder.query_max_length
    for cap in caps:
        kb.encoder.query_max_length = cap
        rep = evaluate(kb, items, methods=["dense", "hybrid"])
        lat = []
        for q in queries[: args.single]:
            t = time.perf_counter()
            kb.search(q, top_k=5)
            lat.append((time.perf_counter() - t) * 1000)
        rows.append(
            {
                "query_cap": cap,
                "p50_ms": round(statistics.median(lat), 1),
                "p95_ms": round(nearest_rank(lat, 0.95), 1),
                "dense_MRR@10": rep["methods"]["dense"]["MRR@10"],
                "hybrid_R@5": rep["methods"]["hybrid"]["R@5"],
                "hybrid_MRR@10": rep["methods"]["hybrid"]["MRR@10"],
            }
        )
        print(rows[-1])
    kb.encoder.query_max_length = default_cap
    result["query_caps"] = rows

    # stage breakdown of one search at the default cap
    stages: dict[str, list[float]] = {"embed_ms": [], "lexical_ms": [], "total_ms": []}
    for q in queries[: args.single]:
        t = time.perf_counter()
        kb.encode_queries([q])
        t1 = time.perf_counter()
        kb.bm25.scores(kb.analyzer.query_tokens(q))
        t2 = time.perf_counter()
        kb.search(q)
        t3 = time.perf_counter()
        stages["embed_ms"].append((t1 - t) * 1000)
        stages["lexical_ms"].append((t2 - t1) * 1000)
        stages["total_ms"].append((t3 - t2) * 1000)
    result["single_query"] = {
        k: {"p50": round(statistics.median(v), 1), "p95": round(nearest_rank(v, 0.95), 1)}
        for k, v in stages.items()
    }
    print("single 30-word query:", result["single_query"])

    # concurrent throughput: many callers, micro-batched embedding
    done = 0
    lat_c: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + args.seconds

    def caller(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop:
            t = time.perf_counter()
            kb.search(queries[i % len(queries)], top_k=5)
            with lock:
                done += 1
                lat_c.append((time.perf_counter() - t) * 1000)
            i += 7

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(args.threads)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    result["concurrent"] = {
        "callers": args.threads,
        "queries": done,
        "qps": round(done / elapsed, 1),
        "p50_ms": round(statistics.median(lat_c), 1),
        "p95_ms": round(nearest_rank(lat_c, 0.95), 1),
    }
    print("concurrent:", result["concurrent"])

    # search_many (one batch of 32) throughput
    t0 = time.perf_counter()
    kb.search_many(queries[:32])
    result["search_many_32_qps"] = round(32 / (time.perf_counter() - t0), 1)
    print("search_many(32):", result["search_many_32_qps"], "q/s")

    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
