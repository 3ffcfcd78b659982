"""A/B of the assist's batch pacing (docs/assist.md, "Batches paced to the poll interval").

Runs ``assist_latency.py`` alternately with the pacing on and off (``--unpaced``), ABBA order so a
machine that drifts during the series weighs on both arms alike, and summarises each arm: cards
delivered of the finals sent, end-to-end p50 / p95 (the median over runs), and the consumer
group's health (hand-overs beyond the one at shutdown, refused commits). Under overload one run is
not a measurement: a run either keeps its partitions or loses them several times, and the two
outcomes differ threefold in cards delivered.

    .venv/bin/python benchmarks/pacing_ab.py --runs 6 --name pacing_ab_avx2   # 6 runs an arm, ~25 min
    .venv/bin/python benchmarks/pacing_ab.py --summarise paced=results/a_*.json unpaced=results/b_*.json

Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from machine_info import machine  # noqa: E402


def run_once(paced: bool, out: Path, calls: int, duration: float, gap: list[float] | None) -> dict[str, Any]:
    cmd = [sys.executable, str(REPO / "benchmarks" / "assist_latency.py"), "--calls", str(calls)]
    cmd += ["--duration", str(duration), "--out", str(out)]
    if gap:
        cmd += ["--gap", *(str(g) for g in gap)]
    if not paced:
        cmd.append("--unpaced")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One arm: what each run delivered and how the group held."""
    cards = [r["suggestions_received"] / max(1, r["segments_sent"]) for r in runs]
    # one hand-over is the shutdown (the service leaves the group); more mean the member was dropped
    dropped = [max(0, r["group"]["partitions_revoked"] - 1) for r in runs]
    return {
        "runs": len(runs),
        "cards_delivered_share": {
            "mean": round(statistics.mean(cards), 3),
            "min": round(min(cards), 3),
            "max": round(max(cards), 3),
            "each": [round(c, 3) for c in cards],
        },
        "end_to_end_ms_median_of_runs": {
            "p50": statistics.median(r["end_to_end_ms"]["p50"] for r in runs),
            "p95": statistics.median(r["end_to_end_ms"]["p95"] for r in runs),
        },
        "runs_dropped_from_the_group": sum(1 for d in dropped if d),
        "hand_overs_beyond_shutdown": dropped,
        "refused_commits": sum(r["group"]["commit_failures"] for r in runs),
        "batch_limit_at_end": [r["group"]["batch_limit_at_end"] for r in runs],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6, help="Runs an arm")
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--gap", type=float, nargs=2, default=None, help="As assist_latency.py (default 3–7 s)")
    ap.add_argument("--name", default="pacing_ab")
    ap.add_argument(
        "--summarise",
        nargs="+",
        metavar="ARM=GLOB",
        help="Summarise existing assist_latency results instead of running (a glob per arm)",
    )
    args = ap.parse_args()
    arms: dict[str, list[dict[str, Any]]] = {}
    if args.summarise:
        for spec in args.summarise:
            arm, pattern = spec.split("=", 1)
            files = sorted(glob.glob(pattern)) or sorted(glob.glob(str(REPO / "benchmarks" / pattern)))
            if not files:
                ap.error(f"{spec}: no file matches")
            arms[arm] = [json.loads(Path(f).read_text()) for f in files]
    else:
        order = [True, False, False, True] * (args.runs // 2) + [True, False] * (args.runs % 2)
        with tempfile.TemporaryDirectory() as tmp:
            for i, paced in enumerate(order):
                arm = "paced" if paced else "unpaced"
                print(f"run {i + 1}/{len(order)}: {arm}", flush=True)
                out = Path(tmp) / f"{i}.json"
                arms.setdefault(arm, []).append(run_once(paced, out, args.calls, args.duration, args.gap))
    result = {
        "machine": machine(),
        "config": {"calls": args.calls, "duration_s": args.duration, "gap_s": args.gap},
        "arms": {arm: summarise(runs) for arm, runs in arms.items()},
    }
    out = REPO / "benchmarks" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    for arm, s in result["arms"].items():
        c = s["cards_delivered_share"]
        print(
            f"{arm:<10} runs {s['runs']}: cards {c['mean']:.2f} of finals ({c['min']:.2f}–{c['max']:.2f}), "
            f"e2e p50/p95 {s['end_to_end_ms_median_of_runs']['p50']}/{s['end_to_end_ms_median_of_runs']['p95']} ms, "
            f"dropped from the group in {s['runs_dropped_from_the_group']} runs, "
            f"{s['refused_commits']} refused commits"
        )
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
