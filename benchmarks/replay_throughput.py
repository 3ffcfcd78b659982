"""Replay throughput: recorded calls per minute through a candidate assist (assist/replay.py).

The calls of ``../shared/eval-dev/calls.jsonl`` (six written calls, 14–20 turns each), repeated
``--rounds`` times under new call ids, are turned into the events the Kafka log would hold (start,
one final segment per turn paced by speaking time, end) and run through :class:`assist.replay.Replayer`
on the configured knowledge base (or ``--index``), summaries included: what ``dasan replay`` does
after it has read the calls. Reading the log and loading the candidate are timed apart.
Prints a table and writes JSON to ``benchmarks/results/replay_throughput.json``.

    .venv/bin/python benchmarks/replay_throughput.py --rounds 3 [--index var/kb/<key>] [--set DASAN_KB_WEIGHT_DENSE=0.7]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from machine_info import machine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def call_events(call: dict, call_id: str, t0: datetime) -> list:
    from dasan.simulator import speech_seconds
    from streaming.events import CallEnded, CallStarted, Channel, TranscriptSegment

    evs: list = [CallStarted(call_id=call_id, counselor_id="bench", produced_at=t0)]
    t = 0.0
    for i, turn in enumerate(call["turns"]):
        ch = Channel.counselor if turn["speaker"] == "counselor" else Channel.caller
        dur = speech_seconds(turn["text"])
        evs.append(
            TranscriptSegment(
                call_id=call_id,
                segment_id=f"{call_id}-{i:03d}",
                channel=ch,
                start_s=t,
                end_s=t + dur,
                text=turn["text"],
                is_final=True,
                asr_model="bench",
                produced_at=t0 + timedelta(seconds=t + dur),
            )
        )
        t += dur + 0.8
    evs.append(CallEnded(call_id=call_id, produced_at=t0 + timedelta(seconds=t)))
    return evs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="times the six calls are replayed")
    ap.add_argument(
        "--index", type=Path, default=None, help="built index folder (default: the configured one)"
    )
    ap.add_argument("--set", action="append", default=[], help="candidate setting NAME=VALUE (repeatable)")
    ap.add_argument(
        "--no-summaries", action="store_true", help="suggestions only (as dasan replay --no-summaries)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "replay_throughput.json")
    args = ap.parse_args()

    from assist.assistant import Assistant
    from assist.replay import Replayer
    from dasan.replay import candidate_settings
    from streaming.paths import shared_dir

    calls = [
        json.loads(x)
        for x in (shared_dir() / "eval-dev" / "calls.jsonl").read_text().splitlines()
        if x.strip()
    ]
    t_load = time.perf_counter()
    a_settings, kb_settings, over = candidate_settings(args.set)
    assistant = Assistant.open(a_settings, kb_settings, index=args.index)
    replayer = Replayer(assistant, "bench", summaries=not args.no_summaries)
    load_s = time.perf_counter() - t_load
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    events = []
    n = 0
    for r in range(args.rounds):
        for call in calls:
            # calls overlap as on a busy floor: one starts every 20 s
            events += call_events(call, f"bench-{r}-{call['id']}", t0 + timedelta(seconds=20 * n))
            n += 1
    t_run = time.perf_counter()
    runs = replayer.run(events)
    run_s = time.perf_counter() - t_run
    cards = sum(len(x.suggestions) for x in runs)
    stages = {}
    for stage in ("masking", "keywords", "retrieval", "draft"):
        vals = sorted(getattr(s.latency, f"{stage}_ms") for x in runs for s in x.suggestions)
        stages[stage] = round(vals[len(vals) // 2], 2) if vals else None
    result: dict[str, Any] = {
        "calls": len(runs),
        "cards": cards,
        "summaries": sum(x.summary is not None for x in runs),
        "errors": sum(x.errors for x in runs),
        "run_s": round(run_s, 2),
        "load_s": round(load_s, 2),
        "calls_per_min": round(len(runs) / run_s * 60, 1),
        "cards_per_s": round(cards / run_s, 2),
        "stage_p50_ms": stages,
        "with_summaries": not args.no_summaries,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "candidate": over,
        "provenance": replayer.provenance.model_dump(mode="json"),
        "machine": machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"{'calls':>6} {'cards':>6} {'run s':>7} {'calls/min':>10} {'cards/s':>8}  stage p50 ms")
    print(
        f"{result['calls']:>6} {cards:>6} {result['run_s']:>7} {result['calls_per_min']:>10} "
        f"{result['cards_per_s']:>8}  " + ", ".join(f"{k} {v}" for k, v in stages.items())
    )
    print(f"loading the candidate: {result['load_s']} s (index {result['provenance']['index_key']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
