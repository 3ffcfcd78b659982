"""Where one counselor search's time goes (#17): stage by stage, one query at a time, full corpus.

    flock /tmp/bench.lock .venv/bin/python benchmarks/search_profile.py [--reps 3]

The queries of ``benchmarks/search_latency.py`` (short counselor-style ones, a district on half),
each timed ``--reps`` times per stage, one searcher, the query-vector cache **off** (every query is
embedded: a cache hit would time nothing). Stages, each timed on its own:

- ``http``: GET of the assist service's ``/internal/search`` (loopback), what the console waits for;
- ``counselor_search``: the same in process (no HTTP);
- ``kb_search``: ``kb.search`` (what counselor_search adds on top: district boost, highlighted sentence);
- ``expansion``: the dense query text (legal terms of colloquial words; kiwipiepy);
- ``encode``: ``Encoder.encode_queries`` of that one text, the whole encoder call, split into
  ``tokenize`` (the model's tokenizer), ``forward`` (the modules: transformer, pooling, dense layers,
  normalisation; ``torch.inference_mode``) and what sentence-transformers' ``encode`` adds around them
  (``encode`` minus the two);
- ``search_encoded``: with the vector given: filters, BM25 (analysis and scores), dense scores, fusion,
  one hit per article, snippets;
- ``batch_wait``: ``kb_search`` minus expansion, encode and search_encoded: the micro-batcher
  (its window, the hand-over to its thread).

Prints a table (median / p95 ms) and writes ``benchmarks/results/search_profile.json`` with the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine_info import machine, nearest_rank, write_result  # noqa: E402
from search_latency import DISTRICTS, QUERIES  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="Timings of each stage per query")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "search_profile.json"))
    args = ap.parse_args()

    import torch

    from assist.assistant import Assistant
    from assist.kb_switch import internal_routes
    from assist.knowledge import KnowledgeBase, KnowledgeSettings
    from assist.knowledge.lookup import SearchQuery, counselor_search, district_place
    from assist.knowledge.records import SearchFilters
    from assist.knowledge.versions import VersionRegistry
    from assist.settings import AssistSettings
    from streaming.hardware import configure_threading, cpu_info
    from streaming.health import HealthServer

    configure_threading()
    settings = KnowledgeSettings(query_cache=0)  # every query embedded
    path = VersionRegistry(settings.index_dir).active_path() or KnowledgeBase.index_path(settings)
    assistant = Assistant.open(AssistSettings(), settings, index=path)
    kb = assistant.kb
    enc = kb.encoder
    assert enc is not None, "the index has no dense side"
    boost = AssistSettings().search_district_boost
    server = HealthServer(
        "127.0.0.1", 0, lambda: (True, {}), routes=internal_routes(lambda: assistant, boost)
    )
    server.start()
    base = f"http://127.0.0.1:{server.port}/internal/search"

    def http(q: str, district: str | None) -> None:
        params = {"q": q, **({"district": district} if district else {})}
        with urllib.request.urlopen(f"{base}?{urllib.parse.urlencode(params)}", timeout=60) as resp:
            json.loads(resp.read())

    model = enc.model
    stages: dict[str, list[float]] = {
        k: []
        for k in (
            "http",
            "counselor_search",
            "kb_search",
            "expansion",
            "encode",
            "tokenize",
            "forward",
            "search_encoded",
        )
    }

    def stage(name: str, fn: Callable[..., Any], *fargs: Any) -> None:
        t = time.perf_counter()
        fn(*fargs)
        stages[name].append((time.perf_counter() - t) * 1000)

    def forward(features: dict[str, Any]) -> None:
        with torch.inference_mode():
            model.forward(dict(features))

    for q in QUERIES[:5]:  # warm: lazy set-up of the analyser, the batcher and the kernels
        http(q, None)
    for i, q in enumerate(QUERIES):
        district = DISTRICTS[i % 2]
        sq = SearchQuery(q=q, district=district)
        filters = SearchFilters(applies_in=district_place(district))
        text = kb.searcher.dense_query_text(q)
        model.max_seq_length = enc.query_max_length
        features = model.tokenize([enc.query_prompt + text])
        vec = enc.encode_queries([text])
        for _ in range(args.reps):
            stage("http", http, q, district)
            stage("counselor_search", counselor_search, kb, sq, boost)
            stage("kb_search", kb.search, q, 16, filters)
            stage("expansion", kb.searcher.dense_query_text, q)
            stage("encode", enc.encode_queries, [text])
            stage("tokenize", model.tokenize, [enc.query_prompt + text])
            stage("forward", forward, features)
            stage("search_encoded", kb.searcher.search_encoded, [q], vec, 16, filters, "hybrid")
    server.stop()

    def row(xs: list[float]) -> dict[str, float | None]:
        return {"p50": round(statistics.median(xs), 1), "p95": round(nearest_rank(xs, 0.95), 1)}

    table: dict[str, dict[str, float | None]] = {k: row(v) for k, v in stages.items()}
    med = {k: statistics.median(v) for k, v in stages.items()}
    table["st_overhead"] = {"p50": round(med["encode"] - med["tokenize"] - med["forward"], 1), "p95": None}
    table["batch_wait"] = {
        "p50": round(med["kb_search"] - med["expansion"] - med["encode"] - med["search_encoded"], 1),
        "p95": None,
    }
    table["lookup_rest"] = {"p50": round(med["counselor_search"] - med["kb_search"], 1), "p95": None}
    table["http_overhead"] = {"p50": round(med["http"] - med["counselor_search"], 1), "p95": None}
    tokens = [
        len(model.tokenize([enc.query_prompt + kb.searcher.dense_query_text(q)])["input_ids"][0])
        for q in QUERIES
    ]
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"cpu_family": cpu_info().family},
        "index": {"key": kb.key, "records": len(kb.records)},
        "encoder": kb.settings.backend_report(),
        "threads": torch.get_num_threads(),
        "settings": kb.settings.model_dump(
            mode="json",
            include={"query_max_length", "batch_window_ms", "batch_max", "threads", "query_cache"},
        ),
        "query_tokens": {"min": min(tokens), "median": statistics.median(tokens), "max": max(tokens)},
        "reps": args.reps,
        "queries": len(QUERIES),
        "stages_ms": table,
    }
    print(
        f"index {kb.key} ({len(kb.records)} records), encoder {enc.backend}, {torch.get_num_threads()} threads"
    )
    print(f"machine: {result['machine']}")
    print(f"query tokens (prompt included): {result['query_tokens']}")
    print("| stage | p50 ms | p95 ms |\n|---|---|---|")
    for k, v in table.items():
        print(f"| {k} | {v['p50']} | {v['p95']} |")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
