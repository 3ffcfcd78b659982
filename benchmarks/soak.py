"""Soak: moderate transcript-level load for a long stretch, memory and latency sampled every 10 s.

Keeps ``--concurrency`` scripted calls (eval-dev calls.jsonl, real-time pace) running for
``--minutes``: whenever one hangs up the next starts, so calls begin and end all the time, the
way a shift looks to the assist service and the console (state created and released per call).
Every 10 s it records each service's resident memory and the suggestion-on-screen latency of the
caller finals of that window. A leak or a queue that slowly backs up shows as a trend: the report
gives the least-squares slope of memory (MB per minute) and latency (ms per minute) over the run
after a warm-up, and the change between the first and last third.

    python benchmarks/soak.py --minutes 10 --concurrency 30
Writes benchmarks/results/soak.json and soak.png.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from machine_info import machine
from pipeline_common import RESULTS, Screens, Stack, follow_call, keep_calling, pct, save

from dasan.simulator import ScriptedCall, load_script, play_scripted_call
from streaming.events import TranscriptSegment
from streaming.kafka import EventProducer
from streaming.paths import shared_dir
from streaming.settings import KafkaSettings

SAMPLE_S = 10.0


def slope_per_min(ts: list[float], ys: list[float]) -> float | None:
    pts = [(t, y) for t, y in zip(ts, ys, strict=True) if y is not None]
    if len(pts) < 3:
        return None
    t = np.array([p[0] for p in pts]) / 60.0
    y = np.array([p[1] for p in pts])
    return round(float(np.polyfit(t, y, 1)[0]), 3)


def thirds(ys: list[float]) -> tuple[float | None, float | None]:
    vals = [y for y in ys if y is not None]
    if len(vals) < 3:
        return None, None
    k = len(vals) // 3
    return round(float(np.mean(vals[:k])), 1), round(float(np.mean(vals[-k:])), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=30)
    ap.add_argument("--max-turns", type=int, default=8, help="turns of each scripted call to play")
    ap.add_argument("--warmup-s", type=float, default=60.0, help="left out of the trend fit")
    args = ap.parse_args()
    scripts = load_script(shared_dir() / "eval-dev" / "calls.jsonl")
    stack = Stack(Path(tempfile.mkdtemp(prefix="dasan-soak-")))
    final_sent: dict[str, float] = {}
    sugg_ws: dict[str, float] = {}
    lock = threading.Lock()
    samples: list[dict] = []
    calls_done = 0
    try:
        print("starting broker, console and assist …")
        stack.start(["console", "assist"])
        stack.add_user("soak", "counselor")
        screens = Screens(stack, args.concurrency, prefix="soak-qa")
        settings = KafkaSettings(bootstrap=stack.bootstrap)
        base = f"127.0.0.1:{stack.console_port}"
        t_start = time.time()
        t_end = t_start + args.minutes * 60

        def on_final(seg: TranscriptSegment) -> None:
            if seg.channel.value == "caller":
                with lock:
                    final_sent[seg.segment_id] = time.time()

        def on_ws(ev: dict, now: float) -> None:
            if ev.get("type") == "suggestion":
                with lock:
                    for sid in ev.get("trigger_segment_ids", []):
                        sugg_ws.setdefault(sid, now)

        async def sampler() -> None:
            last = t_start
            while time.time() < t_end + 5:
                await asyncio.sleep(SAMPLE_S - (time.time() - last) % SAMPLE_S)
                now = time.time()
                with lock:
                    lat = [
                        (sugg_ws[s] - t) * 1000
                        for s, t in final_sent.items()
                        if last <= t < now - 2 and s in sugg_ws
                    ]
                row = {
                    "t": round(now - t_start, 1),
                    "rss_mb": stack.rss_mb(),
                    "sugg_ws_p50_ms": pct(lat, 50),
                    "sugg_ws_p95_ms": pct(lat, 95),
                    "n": len(lat),
                    "calls_done": calls_done,
                }
                samples.append(row)
                print(f"  t={row['t']:>6.0f}s rss={row['rss_mb']} p95={row['sugg_ws_p95_ms']} n={row['n']}")
                last = now - 2

        async def run() -> None:
            nonlocal calls_done
            producer = EventProducer(settings)
            stop = asyncio.Event()
            counter = itertools.count()
            run_id = uuid.uuid4().hex[:6]

            async def one_call(slot_no: int, _k: int) -> None:
                nonlocal calls_done
                i = next(counter)
                script = scripts[i % len(scripts)]
                short = ScriptedCall(script.call_id, script.turns[: args.max_turns], script.topic)
                call_id = f"soak-{run_id}-{i:05d}"
                follower = asyncio.ensure_future(
                    follow_call(
                        f"ws://{base}", screens.cookie(slot_no), call_id, on_ws, stop, f"http://{base}"
                    )
                )
                await play_scripted_call(
                    producer, short, call_id=call_id, counselor_id="soak", team="1팀", on_final=on_final
                )
                await asyncio.sleep(3)  # let the last suggestion and the summary arrive
                follower.cancel()
                calls_done += 1

            smp = asyncio.ensure_future(sampler())
            await asyncio.gather(
                *(
                    keep_calling(k * 0.7, t_end, functools.partial(one_call, k))
                    for k in range(args.concurrency)
                )
            )
            stop.set()
            await smp
            producer.close()

        print(f"soak: {args.concurrency} concurrent calls for {args.minutes} min")
        asyncio.run(run())
    finally:
        stack.stop()
    fit = [s for s in samples if s["t"] >= args.warmup_s]
    ts = [s["t"] for s in fit]
    report: dict[str, dict] = {}
    for svc in ("assist", "console"):
        ys = [s["rss_mb"].get(svc) for s in fit]
        first, last = thirds(ys)
        report[svc] = {
            "rss_slope_mb_per_min": slope_per_min(ts, ys),
            "rss_first_third_mb": first,
            "rss_last_third_mb": last,
        }
    p95 = [s["sugg_ws_p95_ms"] for s in fit]
    first, last = thirds(p95)
    report["latency"] = {
        "p95_slope_ms_per_min": slope_per_min(ts, p95),
        "p95_first_third_ms": first,
        "p95_last_third_ms": last,
    }
    with lock:
        all_lat = [(sugg_ws[s] - t) * 1000 for s, t in final_sent.items() if s in sugg_ws]
        report["overall"] = {
            "calls": calls_done,
            "caller_finals": len(final_sent),
            "suggestions_on_screen": len(all_lat),
            "sugg_ws_p50_ms": pct(all_lat, 50),
            "sugg_ws_p95_ms": pct(all_lat, 95),
            "sugg_ws_p99_ms": pct(all_lat, 99),
        }
    print(f"\nSoak ({args.concurrency} concurrent scripted calls, {args.minutes} min); machine: {machine()}")
    for k, v in report.items():
        print(f"  {k}: {v}")
    png = RESULTS / "soak.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(samples, png)
    path = save(
        "soak",
        {
            "benchmark": "soak",
            "machine": machine(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "minutes": args.minutes,
            "concurrency": args.concurrency,
            "sample_s": SAMPLE_S,
            "report": report,
            "samples": samples,
        },
    )
    print(f"saved {path} and {png}")


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for svc in ("assist", "console"):
        a1.plot(t, [s["rss_mb"].get(svc) for s in samples], label=f"{svc} RSS")
    a1.set_ylabel("MB")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    a2.plot(t, [s["sugg_ws_p50_ms"] for s in samples], label="on screen p50")
    a2.plot(t, [s["sugg_ws_p95_ms"] for s in samples], label="on screen p95")
    a2.set_ylabel("ms after the final")
    a2.set_xlabel("minutes")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    fig.suptitle("Dasan Assist soak: memory and suggestion latency every 10 s (2-core CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
