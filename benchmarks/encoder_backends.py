"""Encoder backends side by side on this machine: one query's latency and 32 articles at 256 tokens.

    .venv/bin/python benchmarks/encoder_backends.py                      # bf16, int8, torch, onnx, onnx-fp32
    .venv/bin/python benchmarks/encoder_backends.py --backends int8 torch

What ``dense_backend=auto`` chooses depends on the CPU (``streaming.hardware``): bf16 where the CPU
has AVX512-BF16 or AMX, fp32 elsewhere (int8 is faster there but its scores drift from the calibrated
ones: docs/knowledge.md). This script shows the speeds per machine: the same queries (the
first 20 eval-dev utterances) and the same passages (the first 32 corpus articles, embedded as the
index embeds them, at the index's 256-token cap) through each backend, two threads (the assist's
default), after one warm-up. A CPU without AVX-512 can be approximated on one that has it:

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 DASAN_CPU_FLAGS="avx2 fma f16c" \\
        .venv/bin/python benchmarks/encoder_backends.py --name encoder_backends_avx2

(oneDNN and PyTorch's own kernels capped at AVX2; ``DASAN_CPU_FLAGS`` makes ``auto`` see that CPU,
and ``onnx`` load the ``avx2`` int8 file). ONNX Runtime's kernels (MLAS) have no such cap: they pick
AVX-512/VNNI/AMX from ``cpuid`` whatever the environment says, so the ``onnx`` rows of an emulated run
are *not* AVX2 figures (the JSON says so under ``emulation``).

``onnx`` (int8) and ``onnx-fp32`` need ``dasan models onnx`` first. Each backend's query vectors are
compared with fp32's (``torch``, when it is in the run): ``cos_to_fp32`` min/mean over the queries.
Writes benchmarks/results/<name>.json with the machine, its CPU family and ``auto``'s choice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine_info import machine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", default=["bf16", "int8", "torch", "onnx", "onnx-fp32"])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--articles", type=int, default=32)
    ap.add_argument("--cap", type=int, default=256, help="Token cap of an embedded article")
    ap.add_argument("--name", default="encoder_backends")
    args = ap.parse_args()

    from assist.knowledge import KnowledgeSettings
    from assist.knowledge.corpus import load_records
    from assist.knowledge.dense import Encoder, backend_choice, document_text
    from streaming.hardware import configure_threading, cpu_info
    from streaming.paths import shared_dir

    configure_threading()
    settings = KnowledgeSettings()
    utterances = [
        json.loads(line)["utterance"]
        for line in (shared_dir() / "eval-dev" / "utterances.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ][: args.queries]
    records = load_records([shared_dir() / "corpus" / "regulations.jsonl"])[: args.articles]
    docs = [document_text(f"{r.law_name} {r.article_title or ''}".strip(), r.text) for r in records]
    choice = backend_choice()
    rows: dict[str, Any] = {}
    qvecs: dict[str, Any] = {}
    for backend in args.backends:
        t0 = time.perf_counter()
        enc = Encoder(
            settings.embedding_model_path, backend, args.cap, settings.query_max_length, settings.threads
        )
        load_s = time.perf_counter() - t0
        enc.encode_queries(utterances[:2])  # warm-up: kernels for these shapes
        enc.encode_documents(docs[:4], batch_size=4)
        per_query = []
        for q in utterances:
            t = time.perf_counter()
            enc.encode_queries([q])
            per_query.append((time.perf_counter() - t) * 1000)
        batch = utterances[:16]  # what one tick embeds for 16 calls' cards at once (cache off)
        t = time.perf_counter()
        enc.encode_queries(batch)
        batch_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        enc.encode_documents(docs, batch_size=settings.embed_batch_size)
        docs_s = time.perf_counter() - t
        qvecs[backend] = enc.encode_queries(utterances)
        rows[backend] = {
            "backend_loaded": enc.backend,
            "load_s": round(load_s, 1),
            "query_p50_ms": round(statistics.median(per_query), 1),
            "query_p95_ms": round(sorted(per_query)[int(0.95 * (len(per_query) - 1))], 1),
            "query_batch_ms": round(batch_ms, 1),
            "query_batch_n": len(batch),
            "articles_s": round(docs_s, 2),
        }
        model_file = getattr(enc.model, "file", None)  # the ONNX file an onnx backend runs
        if model_file is not None:
            rows[backend]["file"] = model_file.name
        print(
            f"{backend:>9}: one query p50 {rows[backend]['query_p50_ms']} ms, "
            f"{len(batch)} queries in one batch {rows[backend]['query_batch_ms']} ms, "
            f"{len(docs)} articles at {args.cap} tokens {rows[backend]['articles_s']} s",
            flush=True,
        )
        del enc
    if "torch" in qvecs:
        for backend, vecs in qvecs.items():
            cos = (vecs * qvecs["torch"]).sum(axis=1)
            rows[backend]["cos_to_fp32"] = {
                "min": round(float(cos.min()), 4),
                "mean": round(float(cos.mean()), 4),
            }
            print(f"{backend:>9}: query vectors vs fp32 cosine min {cos.min():.4f} mean {cos.mean():.4f}")
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"cpu_family": cpu_info().family},
        "emulation": {
            k: os.environ[k]
            for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "DASAN_CPU_FLAGS")
            if k in os.environ
        }
        | (
            {"onnx_runtime": "not capped: MLAS picks its kernels from cpuid"}
            if "DASAN_CPU_FLAGS" in os.environ
            else {}
        ),
        "auto_chooses": {"backend": choice.backend, "reason": choice.reason},
        "queries": len(utterances),
        "articles": len(docs),
        "cap": args.cap,
        "threads": settings.threads,
        "backends": rows,
    }
    print(f"auto chooses {choice.backend}: {choice.reason}")
    out = REPO / "benchmarks" / "results" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
