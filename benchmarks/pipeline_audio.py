"""Audio pipeline benchmark: real speech → ASR → assist → counselor's websocket, end to end.

Each call is the six real recordings of ``../shared/audio-dev`` (≈ 60 s of Korean read speech)
joined with 1.5 s pauses, streamed in real time over the ingest WebSocket as 8 kHz telephone audio
(the caller's channel), with the whole stack running as separate processes: Tansu, the ASR gateway
and one ASR worker (faster-whisper on the CPU), the assist service and the console. One websocket
client per call follows it as a counselor's screen would.

Per final caller segment, from the end of the utterance in the audio (``audio_end_at``):
final transcript on Kafka → suggestion on Kafka → suggestion on the counselor's websocket; per
call: hang-up → summary on the websocket. A level *holds* when the suggestion reaches the screen
within 1 s of the final transcript at p95 (the assist + console part the 1 s target is about) and
the ASR keeps up (final-transcript lag p95 ≤ 3 s after the end of the utterance).

    python benchmarks/pipeline_audio.py --levels 1 2 3 4
Writes benchmarks/results/pipeline_audio.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from machine_info import machine
from pipeline_common import (
    RESULTS,
    KafkaTap,
    MemorySampler,
    ScreenLog,
    Service,
    Stack,
    follow_call,
    login,
    pct,
    save,
)

from dasan.simulator import load_audio, play_audio_call
from streaming.events import CallSummary, Suggestion, TranscriptSegment
from streaming.paths import shared_dir
from streaming.settings import KafkaSettings

HOLD_SCREEN_MS = 1000
HOLD_ASR_MS = 3000


def build_call_audio(out: Path, pause_s: float = 1.5) -> float:
    """The audio-dev recordings joined into one mono 16 kHz call; returns its length in seconds."""
    files = sorted((shared_dir() / "audio-dev").rglob("*.flac"))
    if not files:
        raise SystemExit("no recordings under ../shared/audio-dev")
    parts = []
    for f in files:
        parts += [np.zeros(int(pause_s * 16000), np.int16), load_audio(f, 16000)[:, 0]]
    audio = np.concatenate(parts)
    sf.write(str(out), audio, 16000, subtype="PCM_16")
    return len(audio) / 16000


STAGES = (
    ("endpointing", "end of speech → the VAD's silence closes the utterance (the setting, a wait)"),
    ("decode", "final decode beyond the end-pointing silence (work; speculative decode overlaps it)"),
    ("kafka_to_assist", "final on Kafka → picked up by assist (queue_ms)"),
    ("debounce_wait", "assist: waiting (debounce, or a batch in progress) before its work starts"),
    ("analysis", "assist: masking + keywords"),
    ("retrieval", "assist: retrieval (encoder, fusion, rerank)"),
    ("draft", "assist: the draft answer and its citation check"),
    ("to_screen", "card on Kafka → on the counselor's websocket (recorder, console fan-out)"),
)


def breakdown(
    audio_end: dict[str, float],
    final_at: dict[str, float],
    sugg_of: dict[str, Suggestion],
    on_screen: dict[str, float],
    min_silence_ms: float,
    seg_s: dict[str, float] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Where speech-to-card time goes, per caller final that put a card on screen (the card's first
    trigger segment): p50/p95 of each stage. The stages add up to the whole except for the producer's
    send and clock differences between processes (``other``)."""
    rows: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    rows["other"] = []
    rows["total"] = []
    rows["utterance_s"] = []  # the trigger segment's audio length (the final decodes all of it)
    rows["decode_ms_per_audio_s"] = []
    for sid, ev in sugg_of.items():
        if sid != ev.trigger_segment_ids[-1] or sid not in on_screen or sid not in audio_end:
            continue  # one row per card: its last trigger (the one whose end the card waited for)
        lat = ev.latency
        asr = (final_at[sid] - audio_end[sid]) * 1000
        stages = {
            "endpointing": min(asr, min_silence_ms),
            "decode": max(0.0, asr - min_silence_ms),
            "kafka_to_assist": lat.queue_ms,
            "analysis": lat.masking_ms + lat.keywords_ms,
            "retrieval": lat.retrieval_ms,
            "draft": lat.draft_ms,
            "to_screen": (on_screen[sid] - ev.produced_at.timestamp()) * 1000,
        }
        stages["debounce_wait"] = max(
            0.0, lat.total_ms - lat.masking_ms - lat.keywords_ms - lat.retrieval_ms - lat.draft_ms
        )
        total = (on_screen[sid] - audio_end[sid]) * 1000
        for name, v in stages.items():
            rows[name].append(v)
        rows["other"].append(total - sum(stages.values()))
        rows["total"].append(total)
        if seg_s and seg_s.get(sid):
            rows["utterance_s"].append(seg_s[sid])
            rows["decode_ms_per_audio_s"].append(stages["decode"] / seg_s[sid])
    return {name: {"p50": pct(v, 50), "p95": pct(v, 95), "n": len(v)} for name, v in rows.items()}


def run_level(stack: Stack, cookie: str, wav: Path, n: int, min_silence_ms: float = 500.0) -> dict:
    settings = KafkaSettings(bootstrap=stack.bootstrap, max_poll_interval_ms=3000)
    run = uuid.uuid4().hex[:6]
    call_ids = [f"abench-{run}-{i:03d}" for i in range(n)]
    ours = set(call_ids)
    audio_end: dict[str, float] = {}  # caller final segment id → end of the utterance (wall clock)
    final_at: dict[str, float] = {}  # → final transcript produced
    sugg_kafka: dict[str, float] = {}
    sugg_of: dict[str, Suggestion] = {}
    seg_len: dict[
        str, float
    ] = {}  # caller final segment id → its audio length (s)  # caller final segment id → the card it triggered
    summary_kafka: dict[str, float] = {}
    screen = ScreenLog()
    lock = screen.lock
    sugg_ws, summary_ws, ended_at = screen.suggestion, screen.summary, screen.ended

    def on_kafka(event, record) -> None:
        if event.call_id not in ours:
            return
        with lock:
            if isinstance(event, TranscriptSegment):
                if event.is_final and event.channel.value == "caller" and event.audio_end_at:
                    audio_end.setdefault(event.segment_id, event.audio_end_at.timestamp())
                    final_at.setdefault(event.segment_id, event.produced_at.timestamp())
                    seg_len.setdefault(event.segment_id, event.end_s - event.start_s)
            elif isinstance(event, Suggestion):
                for sid in event.trigger_segment_ids:
                    sugg_kafka.setdefault(sid, event.produced_at.timestamp())
                    sugg_of.setdefault(sid, event)
            elif isinstance(event, CallSummary):
                summary_kafka.setdefault(event.call_id, event.produced_at.timestamp())

    tap = KafkaTap(
        settings.bootstrap,
        ["call.transcripts", "assist.suggestions", "call.summaries"],
        f"abench-{run}",
        on_kafka,
    )
    tap.start()
    on_ws = screen.handler

    gateway = f"ws://127.0.0.1:{stack.port('asr-gateway')}"
    errors: list[str] = []

    async def main() -> None:
        stop = asyncio.Event()
        base = f"127.0.0.1:{stack.console_port}"
        followers = []

        async def one(i: int) -> None:
            await asyncio.sleep(i * 2.0)  # staggered, so utterance ends do not all coincide
            play = asyncio.ensure_future(
                play_audio_call(
                    gateway, wav, call_id=call_ids[i], counselor_id="bench", team="1팀", rate=8000
                )
            )
            await asyncio.sleep(1.0)
            followers.append(
                asyncio.ensure_future(
                    follow_call(
                        f"ws://{base}", cookie, call_ids[i], on_ws(call_ids[i]), stop, f"http://{base}"
                    )
                )
            )
            r = await play
            if r.error:
                errors.append(f"{r.call_id}: {r.error}")

        await asyncio.gather(*(one(i) for i in range(n)))
        deadline = time.monotonic() + 90  # the ASR may still be catching up under overload
        while time.monotonic() < deadline:
            with lock:
                if len(summary_ws) >= n and all(s in sugg_ws for s in sugg_kafka):
                    break
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*followers, return_exceptions=True)

    sampler = MemorySampler(stack)
    sampler.start()
    started = time.monotonic()
    asyncio.run(main())
    wall = time.monotonic() - started
    peak = sampler.stop()
    tap.stop()
    with lock:
        asr_lat = [(final_at[s] - audio_end[s]) * 1000 for s in audio_end]
        kafka_lat = [(sugg_kafka[s] - audio_end[s]) * 1000 for s in audio_end if s in sugg_kafka]
        ws_lat = [(sugg_ws[s] - audio_end[s]) * 1000 for s in audio_end if s in sugg_ws]
        screen_lat = [(sugg_ws[s] - final_at[s]) * 1000 for s in audio_end if s in sugg_ws]
        summ_lat = [(summary_ws[c] - ended_at[c]) * 1000 for c in summary_ws if c in ended_at]
        parts = breakdown(audio_end, final_at, sugg_of, sugg_ws, min_silence_ms, seg_len)
        row: dict[str, Any] = {
            "calls": n,
            "wall_s": round(wall, 1),
            "caller_finals": len(audio_end),
            "suggestions": len(sugg_kafka),
            "suggestions_on_screen": len(sugg_ws),
            "final_p50_ms": pct(asr_lat, 50),
            "final_p95_ms": pct(asr_lat, 95),
            "final_p99_ms": pct(asr_lat, 99),
            "sugg_kafka_p50_ms": pct(kafka_lat, 50),
            "sugg_kafka_p95_ms": pct(kafka_lat, 95),
            "sugg_ws_p50_ms": pct(ws_lat, 50),
            "sugg_ws_p95_ms": pct(ws_lat, 95),
            "sugg_ws_p99_ms": pct(ws_lat, 99),
            "final_to_screen_p50_ms": pct(screen_lat, 50),
            "final_to_screen_p95_ms": pct(screen_lat, 95),
            "summaries_on_screen": len(summary_ws),
            "summary_ws_p50_ms": pct(summ_lat, 50),
            "summary_ws_p95_ms": pct(summ_lat, 95),
            "speech_to_card_p50_ms": pct(ws_lat, 50),
            "speech_to_card_p95_ms": pct(ws_lat, 95),
            "breakdown_ms": parts,
            "peak_rss_mb": peak,
            "errors": errors,
        }
    row["holds"] = bool(
        row["final_to_screen_p95_ms"] is not None
        and row["final_to_screen_p95_ms"] <= HOLD_SCREEN_MS
        and row["final_p95_ms"] is not None
        and row["final_p95_ms"] <= HOLD_ASR_MS
        and not errors
    )
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["calls"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (
        ("final_p50_ms", "final transcript p50"),
        ("final_p95_ms", "final transcript p95"),
        ("sugg_ws_p50_ms", "suggestion on screen p50"),
        ("sugg_ws_p95_ms", "suggestion on screen p95"),
    ):
        ax.plot(xs, [r[key] for r in rows], marker="o", label=label)
    ax.axhline(HOLD_ASR_MS, color="red", linestyle="--", linewidth=1, label="3 s ASR lag limit (p95)")
    ax.set_xlabel("concurrent calls (real audio, one CPU ASR worker)")
    ax.set_ylabel("ms after the end of the utterance")
    ax.set_title("Dasan Assist: end-to-end latency with real speech (2-core CPU)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--name", default="pipeline_audio", help="result file name (gpu_suite.py: pipeline_audio-cuda)"
    )
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument(
        "--min-silence-ms",
        type=int,
        default=None,
        help="the ASR's end-pointing silence (DASAN_ASR_VAD_MIN_SILENCE_MS; default: the setting's)",
    )
    ap.add_argument(
        "--debounce-ms", type=int, default=None, help="assist's debounce (DASAN_ASSIST_DEBOUNCE_MS)"
    )
    ap.add_argument(
        "--keep-repeats",
        action="store_true",
        help="leave assist's no-repeat rule on: then a final whose card equals one on screen (often "
        "an abstention, the recordings being news sentences) puts nothing on screen and is not timed",
    )
    args = ap.parse_args()
    from asr.settings import AsrSettings
    from assist.settings import AssistSettings

    min_silence = args.min_silence_ms or AsrSettings().vad_min_silence_ms
    debounce = AssistSettings().debounce_ms if args.debounce_ms is None else args.debounce_ms
    env = {
        "DASAN_ASR_VAD_MIN_SILENCE_MS": str(min_silence),
        "DASAN_ASSIST_DEBOUNCE_MS": str(debounce),
        **({} if args.keep_repeats else {"DASAN_ASSIST_REPEAT_WINDOW": "0"}),
    }
    work = Path(tempfile.mkdtemp(prefix="dasan-abench-"))
    wav = work / "call.wav"
    audio_s = build_call_audio(wav)
    print(f"call audio: {audio_s:.1f} s of real speech (audio-dev), streamed as 8 kHz PCM")
    stack = Stack(work)
    rows = []
    try:
        print("starting broker, ASR gateway + worker, assist and console …")
        stack.start(
            [
                "console",
                Service.of("assist", env=env),
                "asr-gateway",
                Service.of("asr-worker", env=env),
            ]
        )
        password = stack.add_user("bench-qa", "qa", None)
        stack.add_user("bench", "counselor")
        cookie = login(f"http://127.0.0.1:{stack.console_port}", "bench-qa", password)
        for n in args.levels:
            print(f"level: {n} concurrent audio calls …")
            row = run_level(stack, cookie, wav, n, min_silence)
            rows.append(row)
            print(f"  {row}")
    finally:
        stack.stop()
    print(f"\nPipeline (real audio → ASR → assist → console websocket); machine: {machine()}")
    print(
        f"{'calls':>6} {'finals':>7} {'sugg':>5} {'final p50/p95 ms':>18} {'screen p50/p95/p99 ms':>23} "
        f"{'final→screen p95':>17} {'summary p50 ms':>15} {'worker MB':>9} holds"
    )
    for r in rows:
        print(
            f"{r['calls']:>6} {r['caller_finals']:>7} {r['suggestions']:>5} "
            f"{r['final_p50_ms']!s:>8}/{r['final_p95_ms']!s:<9} "
            f"{r['sugg_ws_p50_ms']!s:>7}/{r['sugg_ws_p95_ms']!s}/{r['sugg_ws_p99_ms']!s:<6} "
            f"{r['final_to_screen_p95_ms']!s:>17} {r['summary_ws_p50_ms']!s:>15} "
            f"{r['peak_rss_mb'].get('asr-worker', '-')!s:>9} {r['holds']}"
        )
    print("\nSpeech to card, per stage (p50 / p95 ms, per card on screen):")
    names = [name for name, _ in STAGES] + ["other", "total", "utterance_s", "decode_ms_per_audio_s"]
    print(f"{'calls':>6} " + " ".join(f"{n:>16}" for n in names))
    for r in rows:
        b = r["breakdown_ms"]
        print(f"{r['calls']:>6} " + " ".join(f"{b[n]['p50']!s:>7}/{b[n]['p95']!s:<8}" for n in names))
    held = [r["calls"] for r in rows if r["holds"]]
    print(f"most concurrent audio calls that hold: {max(held) if held else 'none'}")
    png = RESULTS / f"{args.name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, png)
    path = save(
        args.name,
        {
            "benchmark": "pipeline_audio",
            "machine": machine(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "call_audio_s": round(audio_s, 1),
            "settings": {
                "vad_min_silence_ms": min_silence,
                "debounce_ms": debounce,
                "repeats_shown": not args.keep_repeats,
            },
            "stages": dict(STAGES),
            "hold_rule": f"final→screen p95 ≤ {HOLD_SCREEN_MS} ms and final lag p95 ≤ {HOLD_ASR_MS} ms",
            "rows": rows,
            "max_calls_holding": max(held) if held else None,
        },
    )
    print(f"saved {path} and {png}")


if __name__ == "__main__":
    main()
