"""benchmarks/gpu_suite.py: refuses without a GPU, and its CPU smoke run writes the suite's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "benchmarks" / "gpu_suite.py"


def _env() -> dict[str, str]:
    # DASAN_DISABLE_CUDA: the CPU path on any machine, a GPU one included
    return {**os.environ, "PYTHONPATH": str(REPO), "DASAN_DISABLE_CUDA": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def test_refuses_without_cuda(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--results-dir", str(tmp_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no usable GPU" in proc.stderr and "--allow-cpu" in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


@pytest.mark.slow
def test_cpu_smoke_writes_the_suite_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--allow-cpu", "--smoke", "--results-dir", str(tmp_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_suite-cpu-smoke.json").read_text())
    assert summary["benchmark"] == "gpu_suite" and summary["smoke"] is True
    dev = summary["device"]
    assert dev["used"] == "cpu" and dev["ready"] is False and dev["cuda_usable"] is False
    assert (
        "DASAN_DISABLE_CUDA" in dev["why"]
        and {"torch", "ctranslate2", "ctranslate2_cuda_devices"} <= dev.keys()
    )
    assert summary["machine"]["cpus"] and summary["problems"] == []

    asr = summary["steps"]["asr:base"]
    assert asr["rc"] == 0 and Path(asr["result_file"]).is_file()
    result = asr["result"]  # asr_bench.py's own JSON, as the CPU runs write it
    assert result["benchmark"] == "asr" and result["placement"]["device"] == "cpu"
    assert 0 < result["rtf"]["offline_faster_whisper"] < 5 and result["rtf"]["streaming_with_partials"] > 0
    (row,) = summary["capacity_rows"]
    assert (
        row["model"] == "base"
        and row["device"] == "cpu"
        and row["rtf_offline"] == result["rtf"]["offline_faster_whisper"]
    )

    enc = summary["steps"]["encoder"]
    assert enc["rc"] == 0
    e = enc["result"]
    assert e["device"] == "cpu" and e["backend"] in ("bf16", "int8", "torch", "onnx")
    assert e["documents"][0]["passages_per_s"] > 0 and e["single_query_ms"]["p50"] > 0
    assert e["batched_queries"]["queries_per_s"] > 0
    assert summary["steps"]["pipeline"]["skipped"]
    assert "| base | CPU |" in proc.stdout  # the CAPACITY.md rows, printed as Markdown
