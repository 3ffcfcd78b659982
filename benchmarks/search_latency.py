"""Counselor search latency: p50/p95 per query with N concurrent searchers on the full corpus.

    .venv/bin/python benchmarks/search_latency.py                    # 20 searchers, the built index
    .venv/bin/python benchmarks/search_latency.py --searchers 20 --rounds 5 --bm25-only

What is timed is what the console waits for: an HTTP GET of the assist service's internal
``/internal/search`` (loopback, ``assist.kb_switch.internal_routes`` on the service's health
server) over the index of the configured corpus (``dasan kb build``; the active version when one
is activated). Each searcher sends the counselor-style queries below (two to five typed words, a
district on half of them) one after another; the searchers start together. With ``--think-s``
each searcher pauses between queries for a random time (exponential, that mean: a counselor
reading the results before typing again), which is how a desk of counselors loads the service;
without it the searchers send back to back, a stress test whose p95 is the queue of 20 waiting
for the encoder. Prints a table and writes benchmarks/results/search_latency.json (or ``--out``)
with the machine and its CPU family.

The 30 queries repeat (every searcher sends each of them every round), so the query-vector cache
(``DASAN_KB_QUERY_CACHE``) would answer all but the first of each from memory: the run keeps it off
(``--query-cache 0``, the default here) and times the encoder for every query. ``--query-cache N``
measures with it on, a figure of repeated searches only, to be reported beside the uncached one.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine_info import machine, nearest_rank, write_result  # noqa: E402

# What counselors type while the caller speaks: a few words, often the legal term.
QUERIES = [
    "대형폐기물 수수료",
    "불법주차 과태료",
    "주정차 위반 과태료 이의신청",
    "층간소음 신고",
    "주민등록증 재발급",
    "전입신고 기한",
    "기초연금 수급 자격",
    "수도요금 감면",
    "음식물 쓰레기 배출",
    "장애인 주차구역 위반",
    "어린이보호구역 속도",
    "전동킥보드 헬멧",
    "공공자전거 요금",
    "불법 현수막 신고",
    "도로 파손 신고",
    "소음 공사 시간",
    "청년 월세 지원",
    "출산 지원금",
    "자동차 검사 기간",
    "택시 승차거부 신고",
    "버스 노선 민원",
    "재산세 납부 기한",
    "가로수 가지치기",
    "반려견 목줄",
    "쓰레기 무단투기 과태료",
    "종량제 봉투 가격",
    "상수도 누수 요금",
    "주거급여 신청",
    "긴급복지 지원",
    "폐가전 무상수거",
]
DISTRICTS = ["강남구", None]


def _machine() -> dict[str, Any]:
    from streaming.hardware import cpu_info

    return machine() | {"cpu_family": cpu_info().family}


def open_assistant(bm25_only: bool, query_cache: int = 0) -> object:
    from assist.assistant import Assistant
    from assist.knowledge import KnowledgeBase, KnowledgeSettings
    from assist.knowledge.versions import VersionRegistry
    from assist.settings import AssistSettings

    settings = KnowledgeSettings(query_cache=query_cache)
    path = VersionRegistry(settings.index_dir).active_path() or KnowledgeBase.index_path(settings)
    if bm25_only:  # the same index folder, its vectors left unread: the lexical side alone
        return Assistant(
            KnowledgeBase.load(path, settings.model_copy(update={"dense_enabled": False})), AssistSettings()
        )
    return Assistant.open(AssistSettings(), settings, index=path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--searchers", type=int, default=20, help="Concurrent searchers")
    ap.add_argument("--rounds", type=int, default=3, help="Passes of each searcher over the queries")
    ap.add_argument(
        "--think-s",
        type=float,
        default=0.0,
        help="Mean pause between one searcher's queries (exponential; 0: back to back)",
    )
    ap.add_argument("--seed", type=int, default=7, help="Seed of the pauses")
    ap.add_argument("--bm25-only", action="store_true", help="Lexical side only (the same index, no encoder)")
    ap.add_argument(
        "--query-cache",
        type=int,
        default=0,
        help="Query vectors cached (0, the default: every query embedded; the queries repeat, so a cache "
        "would time memory look-ups)",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "search_latency.json"))
    args = ap.parse_args()

    from assist.kb_switch import internal_routes
    from assist.settings import AssistSettings
    from streaming.hardware import configure_threading
    from streaming.health import HealthServer

    configure_threading()
    t0 = time.perf_counter()
    assistant = open_assistant(args.bm25_only, args.query_cache)
    load_s = time.perf_counter() - t0
    kb = assistant.kb  # type: ignore[attr-defined]
    boost = AssistSettings().search_district_boost
    server = HealthServer(
        "127.0.0.1", 0, lambda: (True, {}), routes=internal_routes(lambda: assistant, boost)
    )
    server.start()
    base = f"http://127.0.0.1:{server.port}/internal/search"

    def get(q: str, district: str | None) -> float:
        params = {"q": q, **({"district": district} if district else {})}
        t = time.perf_counter()
        with urllib.request.urlopen(f"{base}?{urllib.parse.urlencode(params)}", timeout=60) as resp:
            body = json.loads(resp.read())
        dt = (time.perf_counter() - t) * 1000
        assert "results" in body
        return dt

    for q in QUERIES[:5]:  # warm: lazy set-up of the analyser and the encoder
        get(q, None)
    single = [get(q, DISTRICTS[i % 2]) for i, q in enumerate(QUERIES)]

    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(args.searchers)

    def searcher(n: int) -> None:
        mine = []
        rng = random.Random(args.seed * 1000 + n)
        start.wait()
        for r in range(args.rounds):
            for i in range(len(QUERIES)):
                if args.think_s > 0:
                    time.sleep(rng.expovariate(1.0 / args.think_s))
                j = (i + n * 7 + r) % len(QUERIES)
                mine.append(get(QUERIES[j], DISTRICTS[(j + n) % 2]))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=searcher, args=(n,)) for n in range(args.searchers)]
    t1 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t1
    server.stop()

    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "index": {"key": kb.key, "records": len(kb.records), "dense": kb.dense is not None},
        "encoder": kb.settings.backend_report() if kb.dense is not None else None,
        "query_backend": kb.encoder.query_backends if kb.encoder is not None else None,
        "settings": kb.settings.model_dump(
            mode="json",
            include={"query_max_length", "batch_window_ms", "batch_max", "threads", "query_cache"},
        ),
        "load_s": round(load_s, 1),
        "single_ms": {
            "p50": round(statistics.median(single), 1),
            "p95": round(nearest_rank(single, 0.95), 1),
        },
        "concurrent": {
            "searchers": args.searchers,
            "think_s": args.think_s,
            "queries": len(latencies),
            "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(nearest_rank(latencies, 0.95), 1),
            "max_ms": round(max(latencies), 1),
            "queries_per_s": round(len(latencies) / wall, 1),
        },
    }
    if kb.encoder is not None:
        cache = kb.encoder.query_cache
        result["query_cache"] = {"size": cache.size, "hits": cache.hits, "misses": cache.misses}
    side = f"hybrid, queries by {result['query_backend']}" if kb.dense is not None else "BM25 only"
    print(f"index {kb.key} ({len(kb.records)} records, {side})")
    print(f"machine: {result['machine']}")
    print("| figure | value |\n|---|---|")
    print(f"| one searcher, p50 / p95 | {result['single_ms']['p50']} / {result['single_ms']['p95']} ms |")
    c = result["concurrent"]
    pace = f", {c['think_s']:g} s mean pause" if c["think_s"] else ", back to back"
    print(
        f"| {c['searchers']} concurrent searchers{pace}, p50 / p95 | {c['p50_ms']} / {c['p95_ms']} ms "
        f"(max {c['max_ms']}) |"
    )
    print(f"| throughput | {c['queries_per_s']} queries/s over {c['queries']} queries |")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
