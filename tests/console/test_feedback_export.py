"""Counselors' judgements and approved summaries as evaluation data (console/feedback_export.py), and
a shadow assist's agreement with production (console/store/shadow.py), on the real store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from console.feedback_export import eval_items, reference_summaries
from console.store import Store
from streaming.events import DraftAnswer, Provenance
from tests.console.conftest import CallScript


def _call(store: Store, script: CallScript) -> None:
    assert store.record_many(script.full())


def test_judged_cards_become_eval_items_and_approved_summaries_references(
    store: Store, users: dict[str, Any], call_script: Callable[..., CallScript]
) -> None:
    liked, disliked, unjudged = call_script("a"), call_script("b"), call_script("c")
    for s in (liked, disliked, unjudged):
        _call(store, s)
    sug = {s: store.get_suggestion(f"{s.call_id}-s1") for s in (liked, disliked)}
    store.add_feedback(sug[liked], "kim", "vote", "down", None)
    store.add_feedback(sug[liked], "kim", "vote", "up", None)  # the last vote counts
    store.add_feedback(sug[liked], "kim", "copy", None, None)
    store.add_feedback(sug[disliked], "kim", "vote", "down", "010-9876-5432로 연락 달라는데 엉뚱한 조문")

    items = {i["source"]["call_id"]: i for i in eval_items(store)}
    assert set(items) == {liked.call_id, disliked.call_id}
    good, bad = items[liked.call_id], items[disliked.call_id]
    assert good["relevant_article_ids"] == ["도로교통법/제32조"] and good["known_wrong_article_ids"] == []
    assert bad["known_wrong_article_ids"] == ["도로교통법/제32조"] and bad["relevant_article_ids"] == []
    assert good["source"]["vote"] == "up" and good["source"]["copied"] == 1
    # the caller's words that triggered the card, masked (the number said in the call is gone)
    assert "횡단보도" in good["utterance"] and "1234-5678" not in good["utterance"]
    assert set(good) >= {"id", "utterance", "topic", "relevant_article_ids", "keywords"}

    # a summary the supervisor edited (an edit approves it) becomes a reference summary
    summ = store.summary_for_call(liked.call_id)
    assert summ is not None
    store.review_action(summ.summary_id, "kim", "submit", None, None)
    edited = {**summ.content, "call_reason": "횡단보도 앞 불법 주차 신고 방법 문의"}
    store.review_action(summ.summary_id, "boss", "edit", None, edited)
    refs = reference_summaries(store)
    assert [r["id"] for r in refs] == [f"FS-{liked.call_id}"]
    ref = refs[0]
    assert ref["reference_summary"]["call_reason"] == "횡단보도 앞 불법 주차 신고 방법 문의"
    assert ref["reference_summary"]["regulations_cited"] == ["도로교통법/제32조"]
    assert ref["source"]["edited"] is True
    assert [t["speaker"] for t in ref["turns"]] == ["counselor", "citizen", "counselor"]
    assert all("1234-5678" not in t["text"] for t in ref["turns"])


def test_shadow_cards_are_kept_apart_and_compared_per_hour(
    store: Store, call_script: Callable[..., CallScript]
) -> None:
    same, other = call_script("s"), call_script("o")
    for s in (same, other):
        _call(store, s)
    before = [len(store.events_after(s.call_id, 0)) for s in (same, other)]
    prov = Provenance(generator="grounded", settings_hash="x", variant="shadow:candidate")
    # the shadow shows the same article on one call and abstains on the other
    agree = same.suggestion(1, f"{same.call_id}-caller-1", 6.6).model_copy(
        update={"event_id": "sh-evt-1", "suggestion_id": "sh-1", "provenance": prov}
    )
    differ = other.suggestion(1, f"{other.call_id}-caller-1", 6.6).model_copy(
        update={
            "event_id": "sh-evt-2",
            "suggestion_id": "sh-2",
            "provenance": prov,
            "passages": [],
            "draft": DraftAnswer(generator="grounded", abstained=True, abstain_reason="근거 없음"),
        }
    )
    assert store.record_shadow([agree, differ, agree]) == 2
    assert store.record_shadow([agree]) == 0  # redelivered
    # never in a call's log: nothing for a websocket to send
    assert [len(store.events_after(s.call_id, 0)) for s in (same, other)] == before
    rows = store.shadow_agreement(same.t0 - timedelta(minutes=5), until=same.at(600))
    assert [(r["variant"], r["production"], r["matched"], r["same"], r["agreement"]) for r in rows] == [
        ("shadow:candidate", 2, 2, 1, 0.5)
    ]
