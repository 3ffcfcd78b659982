"""GPU suite: the ASR capacity, encoder throughput and pipeline benchmarks on one GPU, in one run.

Made for the first machine with a GPU (``make bench-gpu``). It records the device (name, memory,
compute capability, CUDA version as torch and CTranslate2 see it, the driver), then runs:

* ``asr``        ``asr_bench.py --device cuda --compute-type float16 --sections rtf,capacity``
                 per model (``--asr-model``, default the bundled ``base``; add a local
                 ``/models/whisper-large-v3``) → ``asr_bench-cuda[-<model>].json``;
* ``encoder``    EmbeddingGemma on the ``cuda`` backend, in this process: passages/s per batch
                 size, one query's latency, queries/s batched;
* ``retrieval``  ``retrieval_bench.py`` with ``DASAN_KB_DENSE_BACKEND=cuda`` (recall and latency on
                 the GPU's vectors; builds the ``cuda`` index once) → ``retrieval_bench-cuda.json``;
* ``pipeline``   ``pipeline_audio.py`` (real speech → card, ASR and encoder on the GPU) and
                 ``pipeline_transcripts.py`` (the assist with its encoder on the GPU) →
                 ``pipeline_audio-cuda.json``, ``pipeline_transcripts-cuda.json``.

Each benchmark writes its usual JSON (same shape as the CPU runs) into ``benchmarks/results/``;
this script adds ``gpu_suite.json``: the device, every command with its exit status and time, a
check that each part really ran on the GPU (a CUDA load that failed and fell back to the CPU is
reported, not measured as a GPU figure), and the figures that fill ``infra/CAPACITY.md``'s
"not measured" rows (``capacity_rows``, printed as Markdown at the end).

On a machine without a usable CUDA device it refuses (exit status 2) unless ``--allow-cpu``: then
it runs a smoke version on the CPU (one audio file, a few passages, no pipeline), which is what
``tests/benchmarks`` runs. ``--smoke`` asks for the small version on a GPU too.

    .venv/bin/python benchmarks/gpu_suite.py                       # the full suite (≈ 30 min)
    .venv/bin/python benchmarks/gpu_suite.py --smoke               # a minute: does the GPU path work?
    .venv/bin/python benchmarks/gpu_suite.py --asr-model base --asr-model /models/whisper-large-v3

Exit status: 0 every part ran (on the GPU, unless CPU was allowed); 2 refused (no CUDA);
3 a part failed or fell back to the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine_info import machine, nearest_rank  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
REFUSED = 2
FAILED = 3


def device_info() -> dict[str, Any]:
    """The GPU as torch and CTranslate2 see it (the encoder runs on torch, Whisper on CTranslate2)."""
    from streaming.hardware import cuda_usable

    ok, why = cuda_usable()
    info: dict[str, Any] = {"cuda_usable": ok, "cuda_reason": why}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda_version"] = torch.version.cuda
        if ok:
            p = torch.cuda.get_device_properties(0)
            info["device_name"] = torch.cuda.get_device_name(0)
            info["device_count"] = torch.cuda.device_count()
            info["memory_gb"] = round(p.total_memory / 2**30, 1)
            info["compute_capability"] = f"{p.major}.{p.minor}"
            info["cudnn"] = torch.backends.cudnn.version()
    except Exception as exc:  # pragma: no cover - torch is a dependency
        info["torch_error"] = repr(exc)
    try:
        import ctranslate2

        info["ctranslate2"] = ctranslate2.__version__
        info["ctranslate2_cuda_devices"] = int(ctranslate2.get_cuda_device_count())
    except Exception as exc:
        info["ctranslate2_cuda_devices"] = 0
        info["ctranslate2_error"] = repr(exc)[:200]
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode == 0:
            info["nvidia_smi"] = out.stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def gpu_ready(info: dict[str, Any]) -> tuple[bool, str]:
    """Both runtimes must see the GPU, or the suite would measure the CPU under a GPU label."""
    if not info.get("cuda_usable"):
        return False, f"torch cannot use CUDA ({info.get('cuda_reason')})"
    if not info.get("ctranslate2_cuda_devices"):
        return False, "CTranslate2 sees no CUDA device (Whisper would run on the CPU)"
    return True, f"{info.get('device_name')} (CUDA {info.get('torch_cuda_version')})"


# --------------------------------------------------------------------------- encoder (in process)


def load_texts(passages: int, queries: int) -> tuple[list[str], list[str]]:
    from assist.knowledge.dense import document_text
    from streaming import paths

    shared = paths.shared_dir()
    docs: list[str] = []
    with (shared / "corpus" / "regulations.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            docs.append(document_text(f"{r['law_name']} {r.get('article_title') or ''}".strip(), r["text"]))
            if len(docs) >= passages:
                break
    qs: list[str] = []
    with (shared / "eval-dev" / "utterances.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            qs.append(json.loads(line)["utterance"])
            if len(qs) >= queries:
                break
    return docs, qs


def bench_encoder(
    backend: str, passages: int, queries: int, batch_sizes: list[int], max_seq_length: int, threads: int
) -> dict[str, Any]:
    """Throughput of the encoder the assist uses, on ``backend`` (``cuda`` on a GPU)."""
    from assist.knowledge.dense import Encoder
    from assist.knowledge.model_assembly import ensure_embedding_model

    docs, qs = load_texts(passages, queries)
    enc = Encoder(
        ensure_embedding_model(progress=False), backend, max_seq_length=max_seq_length, threads=threads
    )
    out: dict[str, Any] = {
        "requested_backend": backend,
        "backend": enc.backend,
        "device": enc.device,
        "load_s": round(enc.load_seconds, 2),
        "max_seq_length": max_seq_length,
        "passages": len(docs),
    }
    enc.encode_queries(qs[:1])  # first call: kernels, allocator
    rows = []
    for bs in batch_sizes:
        t = time.perf_counter()
        enc.encode_documents(docs, batch_size=bs)
        dt = time.perf_counter() - t
        rows.append({"batch_size": bs, "passages_per_s": round(len(docs) / dt, 1), "seconds": round(dt, 3)})
    out["documents"] = rows
    lat = []
    for q in qs:
        t = time.perf_counter()
        enc.encode_queries([q])
        lat.append((time.perf_counter() - t) * 1000)
    out["single_query_ms"] = {
        "p50": round(statistics.median(lat), 2),
        "p95": round(nearest_rank(lat, 0.95), 2),
    }
    t = time.perf_counter()
    enc.encode_queries(qs)
    out["batched_queries"] = {
        "batch": len(qs),
        "queries_per_s": round(len(qs) / (time.perf_counter() - t), 1),
    }
    return out


# --------------------------------------------------------------------------- subprocess benchmarks


def run_step(name: str, cmd: list[str], env: dict[str, str], timeout_s: float, result: Path | None) -> dict:
    """One benchmark as its own process; its JSON (if it wrote one) is read back."""
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    t = time.perf_counter()
    step: dict[str, Any] = {"command": cmd, "result_file": str(result) if result else None}
    try:
        proc = subprocess.run(cmd, env=env, cwd=REPO, timeout=timeout_s, capture_output=True, text=True)
        step["rc"] = proc.returncode
        if proc.returncode != 0:
            step["stderr_tail"] = proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        step["rc"] = None
        step["error"] = f"timed out after {timeout_s:.0f} s"
    step["seconds"] = round(time.perf_counter() - t, 1)
    if result is not None and result.is_file() and step["rc"] == 0:
        step["result"] = json.loads(result.read_text())
    print(f"[{name}] rc {step['rc']} in {step['seconds']} s", flush=True)
    return step


def model_label(model: str) -> str:
    return Path(model).name.removeprefix("whisper-") if model not in ("base", "") else "base"


def asr_row(step: dict, model: str, gpu: str, when: str) -> dict[str, Any]:
    """The CAPACITY.md row an ASR run fills (streams per GPU, offline RTF)."""
    r = step.get("result") or {}
    cap = r.get("capacity") or {}
    return {
        "model": model_label(model),
        "gpu": gpu,
        "device": (r.get("placement") or {}).get("device"),
        "max_realtime_streams": cap.get("max_realtime_streams"),
        "tried_up_to": max((x["streams"] for x in cap.get("runs", [])), default=None),
        "rtf_offline": (r.get("rtf") or {}).get("offline_faster_whisper"),
        "rtf_streaming_with_partials": (r.get("rtf") or {}).get("streaming_with_partials"),
        "when": when,
    }


def markdown_rows(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | GPU | streams per GPU | RTF (offline, batch 1) | date, machine |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        capped = r["tried_up_to"] is not None and r["max_realtime_streams"] == r["tried_up_to"]
        streams = f"{r['max_realtime_streams']}{' (the most tried)' if capped else ''}"
        lines.append(
            f"| {r['model']} | {r['gpu']} | {streams} | {r['rtf_offline']} | {r['when'][:10]}, gpu_suite.py |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--allow-cpu", action="store_true", help="without a GPU: run the smoke version on the CPU"
    )
    ap.add_argument("--smoke", action="store_true", help="the small version (always so on the CPU)")
    ap.add_argument(
        "--asr-model",
        action="append",
        default=None,
        help="Whisper model(s) to measure: base (bundled) or a local CTranslate2 folder (repeatable)",
    )
    ap.add_argument("--streams", default="8,16,32,64,96,128", help="ASR capacity: concurrent streams to try")
    ap.add_argument("--audio-levels", default="1,2,4,8,16", help="pipeline_audio: concurrent calls")
    ap.add_argument("--transcript-levels", default="25,50,100,200", help="pipeline_transcripts: calls")
    ap.add_argument("--skip", default="", help="parts to leave out: asr,encoder,retrieval,pipeline")
    ap.add_argument("--results-dir", type=Path, default=RESULTS, help="where every JSON goes")
    ap.add_argument("--step-timeout", type=float, default=1800.0, help="seconds per benchmark process")
    args = ap.parse_args(argv)

    info = device_info()
    ready, why = gpu_ready(info)
    if not ready and not args.allow_cpu:
        print(
            f"gpu_suite: no usable GPU here: {why}.\n"
            "This suite measures a GPU; run it on the GPU machine (make bench-gpu), or pass "
            "--allow-cpu for the smoke version on the CPU.",
            file=sys.stderr,
        )
        return REFUSED
    on_gpu = ready
    smoke = args.smoke or not on_gpu
    device = "cuda" if on_gpu else "cpu"
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    out_dir: Path = args.results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-cuda" if on_gpu else "-cpu"
    suffix += "-smoke" if smoke else ""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    gpu_name = str(info.get("device_name") or "CPU")
    summary: dict[str, Any] = {
        "benchmark": "gpu_suite",
        "when": when,
        "machine": machine(),
        "device": {**info, "ready": ready, "why": why, "used": device},
        "smoke": smoke,
        "steps": {},
        "problems": [],
    }
    py = sys.executable
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    if on_gpu:
        env |= {
            "DASAN_ASR_DEVICE": "cuda",
            "DASAN_ASR_COMPUTE_TYPE": "float16",
            "DASAN_KB_DENSE_BACKEND": "cuda",
        }
    bench = REPO / "benchmarks"

    if "asr" not in skip:
        rows = []
        for model in args.asr_model or ["base"]:
            label = model_label(model)
            res = out_dir / f"asr_bench{suffix}{'' if label == 'base' else '-' + label}.json"
            cmd = [py, str(bench / "asr_bench.py"), "--out", str(res)]
            if smoke:
                cmd += ["--device", device, "--sections", "rtf", "--files", "1", "--threads", "1"]
            else:
                cmd += ["--device", "cuda", "--compute-type", "float16", "--sections", "rtf,capacity"]
                cmd += ["--streams", args.streams]
            step = run_step(f"asr {label}", cmd, {**env, "DASAN_ASR_MODEL": model}, args.step_timeout, res)
            summary["steps"][f"asr:{label}"] = step
            row = asr_row(step, model, gpu_name, when)
            rows.append(row)
            if step["rc"] != 0:
                summary["problems"].append(f"asr {label}: exit status {step['rc']}")
            elif row["device"] != device:
                summary["problems"].append(
                    f"asr {label}: ran on {row['device']}, not {device} (CUDA fallback?)"
                )
        summary["capacity_rows"] = rows

    if "encoder" not in skip:
        t = time.perf_counter()
        try:
            if smoke:
                from assist.knowledge.settings import KnowledgeSettings

                backend = "cuda" if on_gpu else KnowledgeSettings().resolved().dense_backend
                enc = bench_encoder(backend, 8, 4, [8], 32, 1 if not on_gpu else 4)
            else:
                enc = bench_encoder("cuda", 1024, 200, [16, 64, 256], 160, 4)
            enc["seconds"] = round(time.perf_counter() - t, 1)
            summary["steps"]["encoder"] = {"rc": 0, "result": enc}
            if enc["device"] != device:
                summary["problems"].append(f"encoder: ran on {enc['device']}, not {device} (CUDA fallback?)")
        except Exception as exc:
            summary["steps"]["encoder"] = {"rc": 1, "error": repr(exc)[:500]}
            summary["problems"].append(f"encoder: {exc!r:.200}")

    if not smoke and "retrieval" not in skip:
        res = out_dir / "retrieval_bench-cuda.json"
        cmd = [py, str(bench / "retrieval_bench.py"), "--out", str(res)]
        summary["steps"]["retrieval"] = step = run_step("retrieval", cmd, env, args.step_timeout, res)
        if step["rc"] != 0:
            summary["problems"].append(f"retrieval: exit status {step['rc']}")

    if not smoke and "pipeline" not in skip:
        # The pipeline scripts save under benchmarks/results by name: a -cuda name keeps the CPU figures.
        for name, levels in (
            ("pipeline_audio", args.audio_levels),
            ("pipeline_transcripts", args.transcript_levels),
        ):
            cmd = [py, str(bench / f"{name}.py"), "--name", f"{name}-cuda", "--levels", *levels.split(",")]
            step = run_step(name, cmd, env, args.step_timeout, RESULTS / f"{name}-cuda.json")
            summary["steps"][name] = step
            if step["rc"] != 0:
                summary["problems"].append(f"{name}: exit status {step['rc']}")
    elif smoke:
        summary["steps"]["pipeline"] = {"rc": None, "skipped": "smoke: the pipelines need minutes and a GPU"}

    path = out_dir / f"gpu_suite{suffix}.json"
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
    print(f"\nGPU suite on {gpu_name}{' (smoke)' if smoke else ''}: wrote {path}")
    if summary.get("capacity_rows"):
        print("\ninfra/CAPACITY.md §2, measured slots:\n" + markdown_rows(summary["capacity_rows"]))
    if "encoder" in summary["steps"] and summary["steps"]["encoder"].get("rc") == 0:
        e = summary["steps"]["encoder"]["result"]
        print(
            f"\nencoder ({e['backend']} on {e['device']}): "
            + ", ".join(f"batch {d['batch_size']}: {d['passages_per_s']} passages/s" for d in e["documents"])
            + f"; one query p50 {e['single_query_ms']['p50']} ms; "
            f"{e['batched_queries']['queries_per_s']} queries/s batched"
        )
    for p in summary["problems"]:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return FAILED if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
