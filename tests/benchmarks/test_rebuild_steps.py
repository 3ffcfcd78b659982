"""benchmarks/rebuild_steps.py: the history it replays and the two replays it compares."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from rebuild_steps import history_of, replay  # noqa: E402

from assist.settings import AssistSettings  # noqa: E402
from streaming.events import KeywordsUpdated  # noqa: E402

CALL = {
    "id": "T1",
    "turns": [
        {"speaker": "counselor", "text": "안녕하세요, 120다산콜센터입니다."},
        {"speaker": "citizen", "text": "불법 주차 신고 하려고요"},
        {"speaker": "counselor", "text": "네 안전신문고 앱으로 신고하시면 됩니다."},
        {"speaker": "citizen", "text": "과태료 금액은 얼마예요"},
        {"speaker": "counselor", "text": "승용차는 사만 원입니다."},
        {"speaker": "citizen", "text": "견인 비용도 내야 하나요"},
    ],
}


def words(text: str) -> list[str]:  # a stand-in analyser: every word of two syllables or more
    return [w for w in text.split() if len(w) >= 2]


def test_the_history_leaves_each_calls_last_question_unserved_and_both_replays_agree() -> None:
    history = history_of(3, [CALL], words)
    published = [ev for _, ev in history if isinstance(ev, KeywordsUpdated)]
    assert len(published) == 3 and len({ev.call_id for ev in published}) == 3
    # of each call's three questions, the first two were served
    assert all(ev.trigger_segment_ids == [f"{ev.call_id}-s01", f"{ev.call_id}-s03"] for ev in published)
    one = replay_of(history, None)
    paced = replay_of(history, 1e-9)  # one call a step (a positive budget replays at least one)
    assert one["_state"] == paced["_state"] and one["open_calls"] == 3
    assert paced["steps"] == 3 and one["steps"] == 1
    # served questions are not analysed: the last question of each call alone is
    assert one["segments_analysed"] == 3
    assert all(st[2] == [f"{cid}-s05"] for cid, st in one["_state"].items())


def replay_of(history: list, budget: float | None) -> dict:
    from assist.tracker import CallTracker

    return replay(CallTracker, AssistSettings(), words, history, budget)
