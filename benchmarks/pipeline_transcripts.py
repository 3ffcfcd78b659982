"""Transcript-level pipeline benchmark: how many concurrent calls assist + console sustain.

Scripted calls (eval-dev calls.jsonl, as the simulator injects them: partials about once a second,
then finals, in real time) are played at ``call.transcripts`` at several concurrency levels, with
the assist service and the console (recorder + websockets) running as separate processes, and
one websocket client per call following it as a counselor's screen would. This is the part of the
system that scales independently of GPUs.

Per final caller segment: final on Kafka → suggestion on Kafka → suggestion on the counselor's
websocket; per call: hang-up → summary on the websocket. Reported as p50/p95/p99 per level with
the peak memory of each service; a level "holds" while p95 suggestion-on-screen latency ≤ 1 s.

Arrivals: ``steady`` (default) keeps N calls in progress for ``--level-s`` (call starts spread over
``--ramp-s``, a new call whenever one hangs up; measured after the ramp), as a centre's floor looks;
``burst`` starts N calls within 2.5 s and plays them once, so their turns and hang-ups fall in step
(a stress shape; the figures of session 2 were taken that way). A short unreported warm-up level
runs first, so the consumer-group join and the first batches are not charged to a level.

    python benchmarks/pipeline_transcripts.py --levels 25 50 100 200
Writes benchmarks/results/pipeline_transcripts.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from machine_info import machine
from pipeline_common import (
    RESULTS,
    CpuMeter,
    FlameGraphs,
    KafkaTap,
    MemorySampler,
    ScreenLog,
    Screens,
    Stack,
    follow_call,
    keep_calling,
    pct,
    save,
)

from dasan.simulator import ScriptedCall, load_script, play_scripted_call
from streaming.events import CallSummary, Suggestion, TranscriptSegment
from streaming.kafka import EventProducer
from streaming.paths import shared_dir
from streaming.settings import KafkaSettings


def run_level(
    stack: Stack,
    screens: Screens,
    scripts: list[ScriptedCall],
    n: int,
    max_turns: int,
    speed: float,
    arrivals: str = "steady",
    level_s: float = 150.0,
    ramp_s: float = 60.0,
    profile: list[str] | None = None,
    name: str = "pipeline_transcripts",
) -> dict:
    """One concurrency level.

    ``burst``: n calls start within 2.5 s and play once (their turns fall in step: a stress shape).
    ``steady``: n call slots start spread over ``ramp_s`` and each slot starts a new call when its
    call hangs up, for ``level_s``: n calls are in progress at every moment after the ramp, as on a
    centre's floor. Only finals and hang-ups after the ramp are measured.
    """
    settings = KafkaSettings(bootstrap=stack.bootstrap, max_poll_interval_ms=3000)
    run = uuid.uuid4().hex[:6]
    prefix = f"bench-{run}-"
    final_sent: dict[str, float] = {}  # caller segment id → wall time the final was sent
    sugg_kafka: dict[str, float] = {}  # segment id → suggestion produced_at
    summary_kafka: dict[str, float] = {}
    shed: set[str] = set()  # segment ids whose card was retrieved from the caller's words only
    screen = ScreenLog()
    lock = screen.lock
    sugg_ws, summary_ws, ended_at = screen.suggestion, screen.summary, screen.ended
    started_calls: list[str] = []
    call_spans: list[tuple[float, float]] = []  # (start, hang-up) wall times of every call played
    measure_from = time.time() + (ramp_s if arrivals == "steady" else 0.0)

    def on_kafka(event, record) -> None:
        if not event.call_id.startswith(prefix):
            return
        with lock:
            if isinstance(event, Suggestion):
                for sid in event.trigger_segment_ids:
                    sugg_kafka.setdefault(sid, event.produced_at.timestamp())
                    if event.shed:  # load shedding (docs/assist.md)
                        shed.add(sid)
            elif isinstance(event, CallSummary):
                summary_kafka.setdefault(event.call_id, event.produced_at.timestamp())

    tap = KafkaTap(settings.bootstrap, ["assist.suggestions", "call.summaries"], f"bench-{run}", on_kafka)
    tap.start()
    on_ws = screen.handler

    def on_final(seg: TranscriptSegment) -> None:
        now = time.time()
        if seg.channel.value == "caller" and now >= measure_from:
            with lock:
                final_sent[seg.segment_id] = now

    async def main() -> None:
        producer = EventProducer(settings)
        base = f"127.0.0.1:{stack.console_port}"
        followers = []
        end_at = time.time() + level_s

        async def play_one(call_id: str, script: ScriptedCall, slot_no: int) -> None:
            cookie = screens.cookie(slot_no)
            short = ScriptedCall(script.call_id, script.turns[:max_turns], script.topic)
            stop = asyncio.Event()
            with lock:
                started_calls.append(call_id)
            play = asyncio.ensure_future(
                play_scripted_call(
                    producer,
                    short,
                    call_id=call_id,
                    counselor_id="bench",
                    team="1팀",
                    speed=speed,
                    on_final=on_final,
                )
            )
            await asyncio.sleep(0.5)  # the recorder has the call by now; the follower retries until it does
            follow = asyncio.ensure_future(
                follow_call(f"ws://{base}", cookie, call_id, on_ws(call_id), stop, f"http://{base}")
            )
            began = time.time() - 0.5
            await play
            with lock:
                call_spans.append((began, time.time()))

            async def close_follower() -> None:  # once its summary is on screen, or 30 s after hang-up
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and call_id not in summary_ws:
                    await asyncio.sleep(0.5)
                await asyncio.sleep(1.0)
                stop.set()
                await follow

            followers.append(asyncio.ensure_future(close_follower()))

        async def slot(i: int) -> None:
            if arrivals == "burst":
                await asyncio.sleep((i % 50) * 0.05)  # staggered start
                await play_one(f"{prefix}{i:04d}", scripts[i % len(scripts)], i)
                return
            await keep_calling(
                ramp_s * i / n,
                end_at,
                lambda k: play_one(f"{prefix}{i:04d}-{k}", scripts[(i + 7 * k) % len(scripts)], i),
            )

        await asyncio.gather(*(slot(i) for i in range(n)))
        await asyncio.gather(*followers, return_exceptions=True)
        producer.close()

    sampler = MemorySampler(stack)
    sampler.start()
    cpu = CpuMeter(stack)
    flames = (
        FlameGraphs(stack, profile, f"flame-{name}-{n}", level_s + (0 if arrivals == "steady" else 60))
        if profile
        else None
    )
    started = time.monotonic()
    asyncio.run(main())
    wall = time.monotonic() - started
    peak = sampler.stop()
    with lock:
        call_minutes = sum(b - a for a, b in call_spans) / 60
    cpu_use = cpu.stop(call_minutes)
    flame_paths = flames.wait() if flames else {}
    tap.stop()
    with lock:
        kafka_lat = [(sugg_kafka[s] - t) * 1000 for s, t in final_sent.items() if s in sugg_kafka]
        ws_lat = [(sugg_ws[s] - t) * 1000 for s, t in final_sent.items() if s in sugg_ws]
        measured_calls = [c for c in ended_at if ended_at[c] >= measure_from]
        summ_lat = [(summary_ws[c] - ended_at[c]) * 1000 for c in measured_calls if c in summary_ws]
        summ_kafka_lat = [
            (summary_kafka[c] - ended_at[c]) * 1000 for c in measured_calls if c in summary_kafka
        ]
        row: dict[str, Any] = {
            "calls": n,
            "arrivals": arrivals,
            "calls_played": len(started_calls),
            "hangups_measured": len(measured_calls),
            "wall_s": round(wall, 1),
            "caller_finals": len(final_sent),
            "suggestions": len(kafka_lat),
            "suggestions_on_screen": len(ws_lat),
            "shed": sum(1 for s in final_sent if s in shed),
            "sugg_kafka_p50_ms": pct(kafka_lat, 50),
            "sugg_kafka_p95_ms": pct(kafka_lat, 95),
            "sugg_kafka_p99_ms": pct(kafka_lat, 99),
            "sugg_ws_p50_ms": pct(ws_lat, 50),
            "sugg_ws_p95_ms": pct(ws_lat, 95),
            "sugg_ws_p99_ms": pct(ws_lat, 99),
            "summaries_on_screen": sum(1 for c in measured_calls if c in summary_ws),
            "summary_kafka_p50_ms": pct(summ_kafka_lat, 50),
            "summary_kafka_p95_ms": pct(summ_kafka_lat, 95),
            "summary_ws_p50_ms": pct(summ_lat, 50),
            "summary_ws_p95_ms": pct(summ_lat, 95),
            "peak_rss_mb": peak,
            "call_minutes": round(call_minutes, 1),
            "cpu": cpu_use,
            "flame_graphs": flame_paths,
        }
    row["holds"] = bool(
        row["sugg_ws_p95_ms"] is not None
        and row["sugg_ws_p95_ms"] <= 1000
        and row["suggestions_on_screen"] >= 0.98 * row["suggestions"]
    )
    return row


def store_figures(url: str, schema: str | None, rows: list[dict]) -> dict:
    """Rows and bytes the recorder wrote (PostgreSQL): per call, and rows/s over the busiest level."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
        ).scalars()
        sizes = {
            t: conn.execute(
                sa.text(
                    f'SELECT pg_total_relation_size(\'"{schema}"."{t}"\'), count(*) FROM "{schema}"."{t}"'
                )
            ).one()
            for t in tables
        }
        calls = conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".calls')).scalar() or 1
    engine.dispose()
    total_bytes = sum(b for b, _ in sizes.values())
    total_rows = sum(n for _, n in sizes.values())
    busiest = max(rows, key=lambda r: r["calls"])
    return {
        "database": "postgresql",
        "calls": calls,
        "bytes_per_call": round(total_bytes / calls),
        "rows_per_call": round(total_rows / calls, 1),
        "rows_per_table": {t: n for t, (_, n) in sizes.items()},
        "note": "scripted calls of --max-turns turns; partial history dominates real ASR calls",
        "rows_per_s_mean": round(total_rows / max(1.0, sum(r["wall_s"] for r in rows)), 1),
        "busiest_level_calls": busiest["calls"],
        "busiest_level_wall_s": busiest["wall_s"],
    }


def drop_schema(url: str, schema: str | None) -> None:
    import sqlalchemy as sa

    if not schema:
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["calls"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (
        ("sugg_kafka_p50_ms", "suggestion on Kafka p50"),
        ("sugg_kafka_p95_ms", "suggestion on Kafka p95"),
        ("sugg_ws_p50_ms", "on counselor screen p50"),
        ("sugg_ws_p95_ms", "on counselor screen p95"),
        ("sugg_ws_p99_ms", "on counselor screen p99"),
    ):
        ax.plot(xs, [r[key] for r in rows], marker="o", label=label)
    ax.axhline(1000, color="red", linestyle="--", linewidth=1, label="1 s target (p95)")
    ax.set_xlabel("concurrent calls (scripted transcripts)")
    ax.set_ylabel("ms after the caller's final segment")
    ax.set_title("Dasan Assist: suggestion latency vs concurrent calls (2-core CPU)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--name",
        default="pipeline_transcripts",
        help="result file name (gpu_suite.py: pipeline_transcripts-cuda)",
    )
    ap.add_argument("--levels", type=int, nargs="+", default=[25, 50, 100, 200])
    ap.add_argument("--max-turns", type=int, default=8, help="turns of each scripted call to play")
    ap.add_argument(
        "--warmup-calls",
        type=int,
        default=5,
        help="a first, unreported level of this many calls: the group join, the first state rebuild "
        "and the encoder's first batches happen there, not in the first measured level (0: none)",
    )
    ap.add_argument(
        "--arrivals",
        choices=["steady", "burst"],
        default="steady",
        help="steady: N calls in progress at every moment (a new call when one hangs up); "
        "burst: N calls start together and play once",
    )
    ap.add_argument("--level-s", type=float, default=150.0, help="steady: length of a level")
    ap.add_argument("--ramp-s", type=float, default=60.0, help="steady: call starts spread over this")
    ap.add_argument("--speed", type=float, default=1.0, help="1 = real time")
    ap.add_argument(
        "--profile",
        nargs="*",
        default=None,
        metavar="SERVICE",
        help="py-spy flame graphs of these services over each level (default with the flag: assist "
        "console) → benchmarks/results/flame-NAME-LEVEL-SERVICE.svg",
    )
    ap.add_argument(
        "--database-url",
        default=None,
        help="console store (default SQLite); e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test "
        "— then a schema of its own is used, its size per call reported, and dropped",
    )
    ap.add_argument(
        "--assist-members",
        type=int,
        default=1,
        help="assist instances in the main consumer group (they share the partitions)",
    )
    ap.add_argument(
        "--pin-assist",
        action="store_true",
        help="run assist instance i on CPU i alone, one encoder thread: each a one-core machine of its "
        "own (compare --assist-members 1 and 2 to see what a second machine adds)",
    )
    ap.add_argument(
        "--split-summaries",
        action="store_true",
        help="summaries in their own consumer group (one DASAN_ASSIST_ROLE=summaries instance; the "
        "members above run role cards)",
    )
    args = ap.parse_args()
    scripts = load_script(shared_dir() / "eval-dev" / "calls.jsonl")
    schema = f"bench_{uuid.uuid4().hex[:8]}" if args.database_url else None
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="dasan-bench-")), database_url=args.database_url, db_schema=schema
    )
    rows = []
    try:
        assists = stack.assist_services(args.assist_members, args.split_summaries, args.pin_assist)
        print(f"starting broker, console and {len(assists)} assist instance(s) …")
        stack.start(["console", *assists])
        stack.add_user("bench", "counselor")
        screens = Screens(stack, max([*args.levels, args.warmup_calls]))
        warmup = None
        if args.warmup_calls:
            print(f"warm-up: {args.warmup_calls} calls (not reported as a level) …")
            warmup = run_level(
                stack, screens, scripts, args.warmup_calls, args.max_turns, args.speed, arrivals="burst"
            )
            print(f"  {warmup}")
        for n in args.levels:
            print(f"level: {n} concurrent calls …")
            row = run_level(
                stack,
                screens,
                scripts,
                n,
                args.max_turns,
                args.speed,
                arrivals=args.arrivals,
                level_s=args.level_s,
                ramp_s=args.ramp_s,
                profile=(args.profile or [*stack.services]) if args.profile is not None else None,
                name=args.name,
            )
            rows.append(row)
            print(f"  {row}")
        store = store_figures(args.database_url, schema, rows) if args.database_url else None
    finally:
        stack.stop()
        if args.database_url:
            drop_schema(args.database_url, schema)
    print(f"\nPipeline (scripted transcripts → assist → console websocket); machine: {machine()}")
    print(
        f"{'calls':>6} {'finals':>7} {'sugg':>5} {'Kafka p50/p95/p99 ms':>22} {'screen p50/p95/p99 ms':>23} "
        f"{'summary p50/p95 ms':>19} {'assist MB':>9} {'console MB':>10} holds"
    )
    for r in rows:
        print(
            f"{r['calls']:>6} {r['caller_finals']:>7} {r['suggestions']:>5} "
            f"{r['sugg_kafka_p50_ms']!s:>6}/{r['sugg_kafka_p95_ms']!s}/{r['sugg_kafka_p99_ms']!s:<6} "
            f"{r['sugg_ws_p50_ms']!s:>7}/{r['sugg_ws_p95_ms']!s}/{r['sugg_ws_p99_ms']!s:<6} "
            f"{r['summary_ws_p50_ms']!s:>8}/{r['summary_ws_p95_ms']!s:<8} "
            f"{sum(v for k, v in r['peak_rss_mb'].items() if k.startswith('assist'))!s:>9} "
            f"{r['peak_rss_mb'].get('console', '-')!s:>10} {r['holds']}"
        )
    print("\nCPU seconds per call-minute (cores used over the level):")
    for r in rows:
        parts = [f"{svc} {u['cpu_s_per_call_minute']} ({u['cores']})" for svc, u in sorted(r["cpu"].items())]
        print(f"{r['calls']:>6} calls, {r['call_minutes']} call-minutes: " + ", ".join(parts))
        if r["flame_graphs"]:
            print("       flame graphs: " + ", ".join(r["flame_graphs"].values()))
    held = [r["calls"] for r in rows if r["holds"]]
    print(f"most concurrent calls with p95 on-screen latency ≤ 1 s: {max(held) if held else 'none'}")
    png = RESULTS / f"{args.name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, png)
    path = save(
        args.name,
        {
            "benchmark": "pipeline_transcripts",
            "machine": machine(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "max_turns": args.max_turns,
            "speed": args.speed,
            "arrivals": args.arrivals,
            "assist": {
                "members": args.assist_members,
                "split_summaries": args.split_summaries,
                "pinned_one_cpu_each": args.pin_assist,
            },
            "level_s": args.level_s,
            "ramp_s": args.ramp_s,
            "rows": rows,
            "warmup": warmup,
            "max_calls_holding": max(held) if held else None,
            "store": store or {"database": "sqlite"},
        },
    )
    print(f"saved {path} and {png}")


if __name__ == "__main__":
    main()
