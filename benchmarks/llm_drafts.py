"""The ``llm`` draft generator against a real model: citation-check pass rate, fallback rate, latency.

Starts ``dasan llm serve`` (llama.cpp via cyllama, loopback) with a catalogue model (default: the
Qwen2.5-Coder-1.5B-Instruct GGUF of ../shared/MODELS.md, ``dasan llm install --model qwen2.5-coder-1.5b``),
runs ``dasan eval assist``'s utterance evaluation (``assist.eval_assist.evaluate_utterances``) with
``generator=llm`` on a stated subset of the labelled utterances, and the grounded generator on the same
subset for comparison. A CPU model is slow: ``--timeout`` (default 300 s) lets every draft finish so the
model's own output is measured; ``would_time_out_at_6s`` says how many of those drafts the production
default (``DASAN_ASSIST_LLM_TIMEOUT_S=6``) would have abandoned to the grounded draft.

    .venv/bin/python benchmarks/llm_drafts.py --stride 6               # every 6th utterance of eval-dev
    .venv/bin/python benchmarks/llm_drafts.py --bm25-only --stride 6   # without the dense index

Writes ``benchmarks/results/llm_drafts.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name"):
            info["cpu_model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            info["simd"] = sorted(
                f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"}
            )
            break
    info["load_average_start"] = os.getloadavg()
    return info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: str, port: int, threads: int | None) -> subprocess.Popen[bytes]:
    import httpx

    cmd = [sys.executable, "-m", "dasan", "llm", "serve", "--model", model, "--port", str(port)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = Path(tempfile.gettempdir()) / f"dasan-llm-serve-{port}.log"
    proc = subprocess.Popen(cmd, env=env, stderr=log.open("w"), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dasan llm serve exited: {log.read_text()[-800:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("dasan llm serve did not start within 120 s")


def main() -> int:
    from assist.eval_assist import evaluate_utterances, load_items
    from assist.llm_models import EVAL_MODEL, ensure_llm_model
    from streaming.paths import shared_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=EVAL_MODEL)
    ap.add_argument("--utterances", type=Path, default=shared_dir() / "eval-dev" / "utterances.jsonl")
    ap.add_argument("--stride", type=int, default=1, help="take every N-th utterance (a stated subset)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many utterances")
    ap.add_argument("--timeout", type=float, default=300.0, help="llm_timeout_s for this run")
    ap.add_argument("--max-tokens", type=int, default=None, help="llm_max_tokens (default: the setting's)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--base-url",
        default=None,
        help="measure a running OpenAI-compatible server (…/v1) instead of starting one",
    )
    ap.add_argument("--index", type=Path, default=None, help="a built index folder (var/kb/<key>)")
    ap.add_argument("--bm25-only", action="store_true", help="lexical index of the whole corpus, no encoder")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "llm_drafts.json")
    args = ap.parse_args()

    from assist.assistant import Assistant
    from assist.knowledge import KnowledgeSettings
    from assist.settings import AssistSettings

    if args.base_url is None:
        ensure_llm_model(args.model)
    started = machine()
    utterances, _ = load_items([args.utterances])
    subset = utterances[:: args.stride][: args.limit]
    kb_settings = None
    if args.bm25_only:
        kb_settings = KnowledgeSettings(
            dense_enabled=False, index_dir=Path(tempfile.gettempdir()) / "dasan-llm-bench-kb"
        )
    port = free_port()
    base = AssistSettings()
    llm_settings = base.model_copy(
        update={
            "generator": "llm",
            "llm_base_url": args.base_url or f"http://127.0.0.1:{port}/v1",
            "llm_model": args.model,
            "llm_timeout_s": args.timeout,
            **({"llm_max_tokens": args.max_tokens} if args.max_tokens else {}),
        }
    )
    t0 = time.perf_counter()
    grounded = Assistant.open(base.model_copy(update={"generator": "grounded"}), kb_settings, args.index)
    print(f"index ready in {time.perf_counter() - t0:.0f} s; {len(subset)} utterances", file=sys.stderr)
    from assist.citations import CitationChecker

    checker = CitationChecker.for_kb(grounded.kb, base.support_lexical_min, base.support_embedding_min)
    t0 = time.perf_counter()
    ground = evaluate_utterances(grounded, subset, checker)
    print(f"grounded done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    server = None if args.base_url else start_server(args.model, port, args.threads)
    try:
        llm = Assistant(grounded.kb, llm_settings)
        t0 = time.perf_counter()
        res = evaluate_utterances(llm, subset, checker)
        wall = time.perf_counter() - t0
    finally:
        if server is not None:
            server.kill()
            server.wait()
    # the model was asked unless the draft abstained before calling it (a sub-millisecond draft)
    asked = [it["draft_ms"] for it in res["per_item"] if it["generator"] != "grounded" and it["draft_ms"] > 1]
    summary = {
        k: res[k]
        for k in ("items", "citation_precision", "citations", "unsupported_sentence_rate", "in_scope")
    }
    out = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {**started, "load_average_end": os.getloadavg()},
        "model": args.model,
        "utterances": str(args.utterances),
        "subset": f"every {args.stride}th utterance" + (f", at most {args.limit}" if args.limit else ""),
        "kb": grounded.kb.info(),
        "settings": {
            "llm_timeout_s": args.timeout,
            "llm_max_tokens": llm_settings.llm_max_tokens,
            "llm_temperature": llm_settings.llm_temperature,
        },
        "llm": {
            **res["llm"],
            "would_time_out_at_6s": sum(1 for ms in asked if ms > 6000),
            "wall_s": round(wall, 1),
            **summary,
        },
        "grounded": {k: ground[k] for k in summary},
        "per_item": [
            {"id": a["id"], **{k: b[k] for k in ("generator", "abstained", "draft_ms", "cited", "relevant")}}
            for a, b in zip(ground["per_item"], res["per_item"], strict=True)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    llm_ = out["llm"]
    print(
        f"{args.model}: {llm_['model_calls']} model calls, citation check kept {llm_['kept_sentences']}"
        f"/{llm_['model_sentences']} sentences ({llm_['citation_check_pass_rate']}), fallback rate "
        f"{llm_['fallback_rate']} {llm_['fallback_reasons']}, draft ms p50 {llm_['draft_ms_p50']} "
        f"p95 {llm_['draft_ms_p95']}; citation precision llm {llm_['citation_precision']} vs grounded "
        f"{out['grounded']['citation_precision']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
