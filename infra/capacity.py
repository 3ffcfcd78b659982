"""Kafka and PostgreSQL sizing for a Dasan site, from the real wire format of the events.

Every event size below is measured by encoding a representative event with ``streaming.codec``
(the bytes Kafka stores: key, value, headers), with Korean text lengths taken from the corpus
(``../shared/corpus/regulations.jsonl``) where the event carries passages. Traffic figures
(calls per day, partials per second …) are parameters with defaults from infra/CAPACITY.md.

    .venv/bin/python infra/capacity.py                       # 500 concurrent calls, 90 days
    .venv/bin/python infra/capacity.py --concurrent 800 --calls-per-day 45000 --frame-ms 100

Prints a table and writes JSON to benchmarks/results/capacity_model.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streaming import paths  # noqa: E402
from streaming.codec import encode  # noqa: E402
from streaming.events import (  # noqa: E402
    AudioFrame,
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    Codec,
    DraftAnswer,
    DraftSentence,
    Event,
    KeywordsUpdated,
    RetrievedPassage,
    Suggestion,
    SummaryAction,
    TranscriptSegment,
)
from streaming.topics import DAY_MS, TOPICS  # noqa: E402

# Kafka's per-record overhead inside a v2 batch (varint lengths, attributes, deltas) plus the batch
# header amortised over a typical batch; a conservative round figure.
RECORD_OVERHEAD = 20
# PostgreSQL: tuple header + alignment + one b-tree index entry per unique key, per row.
PG_ROW_OVERHEAD = 24 + 8 + 40
CALL_ID = "c-20261122-000123"
SENTENCE = "네 선생님 대형폐기물 배출 신고는 구청 홈페이지나 주민센터에서 하실 수 있습니다"  # 43 chars


@dataclass(frozen=True)
class Traffic:
    concurrent_calls: int
    calls_per_day: int
    avg_call_s: float
    retention_days: int
    replication_factor: int
    codec: str
    sample_rate: int
    frame_ms: int
    channels: int
    partials_per_s: float
    finals_per_min: float
    suggestions_per_call: float
    keyword_updates_per_call: float


def sizeof(event: Event) -> int:
    key, value, headers = encode(event)
    return len(key) + len(value) + sum(len(k) + len(v) for k, v in headers) + RECORD_OVERHEAD


def corpus_snippet_chars() -> int:
    path = paths.shared_dir() / "corpus" / "regulations.jsonl"
    if not path.exists():
        return 320  # median article length when the corpus is not beside the repo
    lengths = sorted(len(json.loads(line)["text"]) for line in path.open(encoding="utf-8"))
    return min(lengths[len(lengths) // 2], 2000)


def event_sizes(t: Traffic) -> dict[str, int]:
    bytes_per_sample = 2 if t.codec == "pcm_s16le" else 1
    n = int(t.sample_rate * t.frame_ms / 1000)
    frame = AudioFrame(
        call_id=CALL_ID,
        channel=Channel.caller,
        seq=12345,
        codec=Codec(t.codec),
        sample_rate=t.sample_rate,
        capture_ts=123.456,
        audio=b"\x00" * (n * bytes_per_sample),
    )
    snippet = "가" * corpus_snippet_chars()
    passages = [
        RetrievedPassage(
            doc_id="폐기물관리법/제15조",
            passage_id=f"폐기물관리법/제15조#{i}",
            citation="「폐기물관리법」 제15조(생활폐기물배출자의 처리 협조 등)",
            law_name="폐기물관리법",
            article_no="제15조",
            score=0.8123,
            snippet=snippet,
            effective_date="2024-01-01",
            ranks={"bm25": i + 1, "dense": i + 2},
        )
        for i in range(5)
    ]
    draft = DraftAnswer(
        generator="grounded",
        sentences=[DraftSentence(text=SENTENCE, citations=[p.passage_id]) for p in passages[:3]],
    )
    suggestion = Suggestion(
        call_id=CALL_ID,
        suggestion_id="s-000001",
        trigger_segment_ids=["seg-0001-caller-0007"],
        query=SENTENCE * 2,
        keywords=["대형폐기물", "배출", "신고", "수수료", "스티커"],
        passages=passages,
        draft=draft,
    )
    segment = TranscriptSegment(
        call_id=CALL_ID,
        segment_id="seg-0001-caller-0007",
        channel=Channel.caller,
        start_s=61.2,
        end_s=65.9,
        text=SENTENCE,
        is_final=True,
        confidence=0.91,
        asr_model="whisper-large-v3",
        audio_end_at=datetime.now(UTC),
    )
    summary = CallSummary(
        call_id=CALL_ID,
        summary_id="sum-000001",
        category="생활폐기물",
        call_reason=SENTENCE,
        key_facts=[SENTENCE] * 4,
        counselor_answers=[SENTENCE] * 4,
        actions=[SummaryAction(kind="안내", text=SENTENCE)],
        regulations_cited=["폐기물관리법/제15조", "서울특별시_폐기물_조례/제20조"],
        entities={"places": ["강남구 역삼동"], "amounts": ["3,000원"]},
        keywords=["대형폐기물", "배출", "신고"],
        generator="grounded",
    )
    return {
        "audio_frame": sizeof(frame),
        "audio_payload": n * bytes_per_sample,
        "call_started": sizeof(CallStarted(call_id=CALL_ID, counselor_id="counselor-0123", team="1팀")),
        "call_ended": sizeof(CallEnded(call_id=CALL_ID, duration_s=212.0)),
        "transcript_segment": sizeof(segment),
        "keywords_updated": sizeof(
            KeywordsUpdated(
                call_id=CALL_ID, keywords=["대형폐기물", "배출", "신고"], trigger_segment_ids=["x"]
            )
        ),
        "suggestion": sizeof(suggestion),
        "call_summary": sizeof(summary),
    }


def model(t: Traffic) -> dict[str, Any]:
    s = event_sizes(t)
    frames_per_s = 1000 / t.frame_ms * t.channels
    # Peak rates (records/s, bytes/s) at `concurrent_calls`.
    per_call = {
        "call.audio": (frames_per_s, frames_per_s * s["audio_frame"]),
        "call.transcripts": (
            t.partials_per_s * t.channels + t.finals_per_min / 60 * t.channels,
            (t.partials_per_s * t.channels + t.finals_per_min / 60 * t.channels) * s["transcript_segment"],
        ),
        "assist.suggestions": (
            (t.suggestions_per_call + t.keyword_updates_per_call) / t.avg_call_s,
            (t.suggestions_per_call * s["suggestion"] + t.keyword_updates_per_call * s["keywords_updated"])
            / t.avg_call_s,
        ),
        "call.events": (2 / t.avg_call_s, (s["call_started"] + s["call_ended"]) / t.avg_call_s),
        "call.summaries": (1 / t.avg_call_s, s["call_summary"] / t.avg_call_s),
        "kb.versions": (0.0, 0.0),  # a few records a year (activations), compacted
    }
    # one shadow assist (docs/replay.md) writes what production writes to both output topics
    per_call["assist.suggestions.shadow"] = (
        per_call["assist.suggestions"][0] + per_call["call.summaries"][0],
        per_call["assist.suggestions"][1] + per_call["call.summaries"][1],
    )
    call_seconds_per_day = t.calls_per_day * t.avg_call_s
    rows: list[dict[str, Any]] = []
    total_disk = 0.0
    for topic, (rps, bps) in per_call.items():
        spec = TOPICS[topic]
        retention_days = min(t.retention_days, spec.retention_ms / DAY_MS)
        per_day = bps * call_seconds_per_day
        disk = per_day * retention_days * t.replication_factor
        total_disk += disk
        peak_bps = bps * t.concurrent_calls
        rows.append(
            {
                "topic": topic,
                "partitions": spec.partitions,
                "peak_records_per_s": round(rps * t.concurrent_calls, 1),
                "peak_MB_per_s": round(peak_bps / 1e6, 3),
                "GB_per_day": round(per_day / 1e9, 2),
                "retention_days": retention_days,
                "disk_GB_with_replicas": round(disk / 1e9, 1),
                "peak_MB_per_s_per_partition": round(peak_bps / spec.partitions / 1e6, 3),
            }
        )
    # PostgreSQL: the recorder keeps calls, final segments (+ partial history for replay),
    # suggestions, summaries. Partials kept: one row per partial revision.
    finals_per_call = t.finals_per_min / 60 * t.channels * t.avg_call_s
    partials_per_call = t.partials_per_s * t.channels * t.avg_call_s
    pg_per_call = (
        (s["call_started"] + PG_ROW_OVERHEAD)
        + (finals_per_call + partials_per_call) * (s["transcript_segment"] + PG_ROW_OVERHEAD)
        + t.suggestions_per_call * (s["suggestion"] + PG_ROW_OVERHEAD)
        + (s["call_summary"] + PG_ROW_OVERHEAD)
    )
    # Full-text search (GIN) and secondary indexes: +50 % on the transcript/summary text.
    pg_per_call *= 1.5
    pg_total = pg_per_call * t.calls_per_day * t.retention_days
    return {
        "traffic": asdict(t),
        "event_bytes": s,
        "kafka": rows,
        "kafka_disk_TB_total": round(total_disk / 1e12, 2),
        "kafka_disk_TB_per_broker_of_3": round(total_disk / 3 / 1e12, 2),
        "kafka_peak_ingress_MB_per_s": round(sum(r["peak_MB_per_s"] for r in rows), 2),
        "postgres_KB_per_call": round(pg_per_call / 1e3, 1),
        "postgres_GB_retention": round(pg_total / 1e9, 1),
        "postgres_rows_per_day": int(
            t.calls_per_day * (2 + finals_per_call + partials_per_call + t.suggestions_per_call)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrent", type=int, default=500, help="peak concurrent calls (default 500)")
    p.add_argument("--calls-per-day", type=int, default=30_000, help="calls per day (default 30000)")
    p.add_argument("--avg-call-s", type=float, default=240.0, help="average call length, seconds")
    p.add_argument("--retention-days", type=int, default=90, help="retention (topics cap it at their own)")
    p.add_argument("--replication-factor", type=int, default=3)
    p.add_argument("--codec", default="mulaw", choices=[c.value for c in Codec])
    p.add_argument("--sample-rate", type=int, default=8000, choices=[8000, 16000])
    p.add_argument("--frame-ms", type=int, default=100, help="audio per Kafka record, ms (gateway frames)")
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--partials-per-s", type=float, default=0.5, help="partials per channel per second")
    p.add_argument("--finals-per-min", type=float, default=6.0, help="final segments per channel per minute")
    p.add_argument("--suggestions-per-call", type=float, default=6.0)
    p.add_argument("--keyword-updates-per-call", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "capacity_model.json")
    a = p.parse_args(argv)
    t = Traffic(
        a.concurrent, a.calls_per_day, a.avg_call_s, a.retention_days, a.replication_factor, a.codec,
        a.sample_rate, a.frame_ms, a.channels, a.partials_per_s, a.finals_per_min,
        a.suggestions_per_call, a.keyword_updates_per_call,
    )  # fmt: skip
    result = model(t)
    print("event bytes on Kafka (key+value+headers+record overhead):")
    for k, v in result["event_bytes"].items():
        print(f"  {k:20s} {v:>8,d}")
    cols = list(result["kafka"][0].keys())
    print()
    print("  ".join(f"{c:>14s}" if i else f"{c:20s}" for i, c in enumerate(cols)))
    for row in result["kafka"]:
        print("  ".join(f"{row[c]!s:>14s}" if i else f"{row[c]!s:20s}" for i, c in enumerate(cols)))
    print()
    for k in ("kafka_peak_ingress_MB_per_s", "kafka_disk_TB_total", "kafka_disk_TB_per_broker_of_3"):
        print(f"{k:32s} {result[k]}")
    for k in ("postgres_KB_per_call", "postgres_rows_per_day", "postgres_GB_retention"):
        print(f"{k:32s} {result[k]}")
    result["machine"] = {
        "host": platform.node(),
        "python": platform.python_version(),
        "at": datetime.now(UTC).isoformat(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwrote {a.out}")
    _ = math
    return 0


if __name__ == "__main__":
    sys.exit(main())
