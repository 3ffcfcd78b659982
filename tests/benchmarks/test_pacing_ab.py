"""benchmarks/pacing_ab.py's summary of an arm: cards delivered and the group's health per run."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from pacing_ab import summarise  # noqa: E402


def _run(sent: int, got: int, revoked: int, refused: int, p95: float) -> dict:
    return {
        "segments_sent": sent,
        "suggestions_received": got,
        "end_to_end_ms": {"p50": 1000.0, "p95": p95},
        "group": {"partitions_revoked": revoked, "commit_failures": refused, "batch_limit_at_end": 32},
    }


def test_an_arm_counts_drops_beyond_the_shutdown_hand_over() -> None:
    arm = summarise(
        [_run(600, 570, 1, 0, 4000.0), _run(600, 180, 5, 1, 30000.0), _run(600, 540, 1, 0, 6000.0)]
    )
    assert arm["cards_delivered_share"]["each"] == [0.95, 0.3, 0.9]
    assert arm["cards_delivered_share"]["mean"] == round((0.95 + 0.3 + 0.9) / 3, 3)
    assert arm["hand_overs_beyond_shutdown"] == [0, 4, 0]
    assert arm["runs_dropped_from_the_group"] == 1 and arm["refused_commits"] == 1
    assert arm["end_to_end_ms_median_of_runs"]["p95"] == 6000.0
