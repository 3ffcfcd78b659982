"""benchmarks/takeover_rebuild.py: what it reads off the instance's log, and the history it writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from takeover_rebuild import history, log_counts  # noqa: E402


def _line(msg: str, **extra: object) -> str:
    return json.dumps({"level": "info", "logger": "dasan.assist.service", "msg": msg, **extra})


def test_the_log_counts_rebuilds_drops_and_refusals_not_the_empty_revocation_at_join() -> None:
    text = "\n".join(
        [
            _line("calls handed over", calls=0),  # the join's revocation of nothing
            _line("rebuilding taken-over calls", calls_waiting=80),
            _line("state rebuilt for assigned partitions", calls_waiting=0),
            '{"level": "warning", "logger": "kafka.coordinator", "msg": "Consumer poll timeout has expired."}',
            _line("calls handed over", calls=120),
            '{"level": "error", "msg": "Offset commit failed: CommitFailedError"}',
            _line("state rebuilt for assigned partitions", calls_waiting=0),
        ]
    )
    assert log_counts(text) == {
        "rebuilds_finished": 2,
        "rebuild_steps": 1,
        "hand_overs_with_calls": 1,
        "poll_timeouts": 1,
        "refused_commits": 1,
    }


def test_the_history_is_every_turn_of_each_call_as_a_final_segment() -> None:
    from streaming.events import CallStarted, TranscriptSegment

    events = history("t", 3)
    starts = [e for e in events if isinstance(e, CallStarted)]
    segs = [e for e in events if isinstance(e, TranscriptSegment)]
    assert [e.call_id for e in starts] == ["tk-t-000", "tk-t-001", "tk-t-002"]
    assert segs and all(s.is_final for s in segs)
    assert len({s.segment_id for s in segs}) == len(segs)
    for cid in ("tk-t-000", "tk-t-001"):
        mine = [s for s in segs if s.call_id == cid]
        assert all(a.end_s < b.start_s for a, b in zip(mine, mine[1:], strict=False))
