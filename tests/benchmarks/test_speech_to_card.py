"""benchmarks/pipeline_audio.py's speech-to-card breakdown: the stages of one card add up."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from pipeline_audio import STAGES, breakdown  # noqa: E402

from streaming.events import DraftAnswer, StageLatency, Suggestion  # noqa: E402


def _card(trigger: list[str], produced_at: float, **lat: float) -> Suggestion:
    return Suggestion(
        call_id="c1",
        suggestion_id="sg-1",
        trigger_segment_ids=trigger,
        query="q",
        draft=DraftAnswer(generator="grounded", abstained=True, abstain_reason="no source"),
        latency=StageLatency(**lat),
        produced_at=datetime.fromtimestamp(produced_at, UTC),
    )


def test_stages_of_one_card_add_up_to_speech_to_card() -> None:
    # utterance ends at t=100; the final is on Kafka 0.9 s later (0.5 s end-pointing + 0.4 s decode);
    # assist picks it up 20 ms later, waits 600 ms (debounce), works 130 ms; the card reaches the
    # screen 50 ms after it was produced
    card = _card(
        ["s1", "s2"],
        produced_at=101.7,
        queue_ms=20,
        masking_ms=1,
        keywords_ms=4,
        retrieval_ms=110,
        draft_ms=15,
        total_ms=730,
    )
    out = breakdown(
        audio_end={"s1": 99.0, "s2": 100.0},
        final_at={"s1": 99.9, "s2": 100.9},
        sugg_of={"s1": card, "s2": card},
        on_screen={"s1": 101.75, "s2": 101.75},
        min_silence_ms=500,
        seg_s={"s1": 3.0, "s2": 4.0},
    )
    extra = {"other", "total", "utterance_s", "decode_ms_per_audio_s"}
    assert {name for name, _ in STAGES} | extra == set(out)
    assert all(v["n"] == 1 for v in out.values())  # one row per card: its last trigger, s2
    p50 = {name: float(v["p50"] or 0.0) for name, v in out.items()}
    assert p50["endpointing"] == 500 and p50["decode"] == 400 and p50["kafka_to_assist"] == 20
    assert p50["debounce_wait"] == 600 and p50["analysis"] == 5 and p50["retrieval"] == 110
    assert p50["draft"] == 15 and p50["to_screen"] == 50 and p50["total"] == 1750
    assert p50["utterance_s"] == 4.0 and p50["decode_ms_per_audio_s"] == 100
    parts = sum(v for k, v in p50.items() if k not in extra or k == "other")
    assert abs(parts - p50["total"]) < 1  # the stages and "other" (the producer's send) add up


def test_cards_not_on_screen_are_not_counted() -> None:
    card = _card(["s1"], produced_at=101.0, total_ms=100)
    out = breakdown({"s1": 100.0}, {"s1": 100.6}, {"s1": card}, {}, 500)
    assert out["total"] == {"p50": None, "p95": None, "n": 0} == out["utterance_s"]
