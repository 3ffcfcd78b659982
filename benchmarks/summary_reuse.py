"""Summaries reusing the live path's query vectors (#18): encoder work and latency per summary.

Each labelled call (``../shared/eval-dev/calls.jsonl`` and ``eval/calls.jsonl``; ``--calls`` for
others) is replayed on its own through :class:`assist.replay.Replayer` (the tracker and assistant
the service runs, on a scripted clock: live cards, then the summary when the call ends), twice,
one mode after the other for each call so both see the same machine load:

- ``off``: no query-vector cache (``DASAN_KB_QUERY_CACHE=0``): the summary embeds every text it asks;
- ``on``: the cache, emptied before the call: the summary reuses only the vectors the same call's live
  cards made (never another call's, nor an earlier replay's).

Counted per summary: texts and batches sent to the encoder, cache hits, and the summary's wall time;
per call: the texts the live cards embedded. Whether the summaries are the same in both modes is
checked too (category and regulations cited). Prints a table and writes JSON to
``benchmarks/results/summary_reuse.json``; run it alone (``flock /tmp/bench.lock``): the figures
are timings.

    .venv/bin/python benchmarks/summary_reuse.py [--index var/kb/<key>] [--calls FILE ...] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine_info import machine, nearest_rank  # noqa: E402
from replay_throughput import call_events  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--index", type=Path, default=None, help="built index folder (default: the configured one)"
    )
    ap.add_argument("--calls", type=Path, nargs="*", default=None, help="calls JSONL files")
    ap.add_argument("--limit", type=int, default=0, help="at most this many calls (0: all)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "summary_reuse.json")
    args = ap.parse_args()

    from assist.assistant import Assistant
    from assist.knowledge.query_cache import QueryVectorCache
    from assist.replay import Replayer
    from assist.settings import AssistSettings
    from streaming.hardware import configure_threading, cpu_info
    from streaming.paths import shared_dir

    configure_threading()
    files = args.calls or [shared_dir() / "eval-dev" / "calls.jsonl", REPO / "eval" / "calls.jsonl"]
    calls = [json.loads(x) for f in files for x in f.read_text().splitlines() if x.strip()]
    if args.limit:
        calls = calls[: args.limit]
    assistant = Assistant.open(AssistSettings(), index=args.index)
    kb = assistant.kb
    enc = kb.encoder
    if enc is None:
        print("the index has no dense side: nothing to reuse")
        return 2
    cached = enc.query_cache
    off = QueryVectorCache(0, enc.fingerprint)
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    rows: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    current: dict[str, Any] = {}  # the row of the call being replayed
    replayers = {mode: Replayer(assistant, f"reuse-{mode}") for mode in ("off", "on")}
    for replayer in replayers.values():
        real = replayer.summarizer.summarize

        def timed(turns: Any, cards: Any = None, real: Any = real) -> Any:
            row = current["row"]
            b, t, h = enc.query_batches, enc.query_texts, enc.query_cache.hits
            start = time.perf_counter()
            parts = real(turns, cards)
            row["summary_ms"] = (time.perf_counter() - start) * 1000
            row["summary_texts"] = enc.query_texts - t
            row["summary_batches"] = enc.query_batches - b
            row["summary_hits"] = enc.query_cache.hits - h
            return parts

        replayer.summarizer.summarize = timed  # type: ignore[method-assign]  # counts, then the real summary

    same = 0
    for n, call in enumerate(calls):
        summaries: dict[str, Any] = {}
        for mode in ("off", "on"):
            enc.query_cache = off if mode == "off" else cached
            cached.clear()
            row: dict[str, Any] = {"call": call["id"]}
            current["row"] = row
            texts0 = enc.query_texts
            runs = replayers[mode].run(call_events(call, f"reuse-{mode}-{n}", t0))
            runs = [r for r in runs if r.call_id == f"reuse-{mode}-{n}"]
            row["call_texts"] = enc.query_texts - texts0
            row["live_texts"] = row["call_texts"] - row.get("summary_texts", 0)
            row["cards"] = sum(len(r.suggestions) for r in runs)
            s = runs[0].summary if runs else None
            summaries[mode] = (s.category, s.regulations_cited) if s is not None else None
            if "summary_ms" in row:
                rows[mode].append(row)
        same += summaries["off"] == summaries["on"]
        print(
            f"{call['id']:>10}: summary texts {rows['off'][-1]['summary_texts']:>3} -> "
            f"{rows['on'][-1]['summary_texts']:>3}, "
            f"{rows['off'][-1]['summary_ms']:7.1f} -> {rows['on'][-1]['summary_ms']:7.1f} ms",
            flush=True,
        )
    enc.query_cache = cached

    def figures(rs: list[dict[str, Any]]) -> dict[str, Any]:
        ms = [r["summary_ms"] for r in rs]
        return {
            "summaries": len(rs),
            "texts_per_summary": round(statistics.mean(r["summary_texts"] for r in rs), 2),
            "batches_per_summary": round(statistics.mean(r["summary_batches"] for r in rs), 2),
            "hits_per_summary": round(statistics.mean(r["summary_hits"] for r in rs), 2),
            "texts_per_call_live": round(statistics.mean(r["live_texts"] for r in rs), 2),
            "summary_ms": {
                "mean": round(statistics.mean(ms), 1),
                "p50": round(statistics.median(ms), 1),
                "p95": round(nearest_rank(ms, 0.95), 1),
            },
        }

    f_off, f_on = figures(rows["off"]), figures(rows["on"])
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"cpu_family": cpu_info().family},
        "index": kb.key,
        "encoder": kb.settings.backend_report(),
        "calls": [str(f) for f in files],
        "off": f_off,
        "on": f_on,
        "ratio_on_off": {
            "texts_per_summary": round(f_on["texts_per_summary"] / max(f_off["texts_per_summary"], 1e-9), 3),
            "summary_ms_mean": round(f_on["summary_ms"]["mean"] / f_off["summary_ms"]["mean"], 3),
            "summary_ms_p50": round(f_on["summary_ms"]["p50"] / f_off["summary_ms"]["p50"], 3),
        },
        "same_summary": f"{same}/{len(calls)}",
        "rows": rows,
    }
    print(f"index {kb.key}, {len(calls)} calls, encoder {kb.settings.dense_backend}")
    print(f"machine: {result['machine']}")
    print("| per summary | cache off | cache on (this call's live vectors) | on / off |\n|---|---|---|---|")
    r = result["ratio_on_off"]
    print(
        f"| texts embedded | {f_off['texts_per_summary']} | {f_on['texts_per_summary']} | {r['texts_per_summary']} |"
    )
    print(f"| encoder batches | {f_off['batches_per_summary']} | {f_on['batches_per_summary']} | |")
    print(f"| cache hits | {f_off['hits_per_summary']} | {f_on['hits_per_summary']} | |")
    print(
        f"| wall ms mean / p50 / p95 | {f_off['summary_ms']['mean']} / {f_off['summary_ms']['p50']} / "
        f"{f_off['summary_ms']['p95']} | {f_on['summary_ms']['mean']} / {f_on['summary_ms']['p50']} / "
        f"{f_on['summary_ms']['p95']} | {r['summary_ms_mean']} (mean) |"
    )
    print(f"same category and regulations in both modes: {result['same_summary']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
