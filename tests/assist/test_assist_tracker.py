"""The assist service's per-call rules (assist/tracker.py) with a scripted clock: no broker, no sleeps.

Triggers, debounce, no repeats, summary timing and grace, idle calls, per-call failures and the
takeover rebuild, run through the real assistant (the BM25 slice index of conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from assist.assistant import SuggestResult
from assist.call_state import SummaryResult
from assist.settings import AssistSettings
from assist.summary import Summarizer
from assist.tracker import RETRY_AFTER_S, TICK_BUDGET_S, CallTracker
from streaming.events import (
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    Event,
    KeywordsUpdated,
    Suggestion,
)
from tests.assist.call_script import ID_CARD, ID_FEE, METER, PARKING, seg

T0 = 1000.0  # the scripted clock (seconds)


def tracker(assistant: Any, **settings: Any) -> CallTracker:
    return CallTracker(AssistSettings(**settings), assistant.evidence_terms)


class Run:
    """Drives a tracker as the service does, keeping what would have been published."""

    def __init__(self, assistant: Any, tr: CallTracker) -> None:
        self.assistant = assistant
        self.tr = tr
        self.summarizer = Summarizer(assistant)
        self.published: list[Event] = []

    def tick(self, now: float) -> list[Event]:
        plan = self.tr.due(now)
        out: list[Event] = []
        results: list[SuggestResult] = self.assistant.suggest_many(plan.suggest)
        for req in plan.alone:
            results += self.assistant.suggest_many([req])
        for res in results:
            events = self.tr.events_for(res)
            self.tr.record(res, events)
            out += events
        for sreq in plan.summarize:
            result = SummaryResult(sreq, self.summarizer.summarize(sreq.turns, sreq.cards), 1.0)
            events = self.tr.events_for(result)
            self.tr.record(result, events)
            out += events
        self.published += out
        return out


def suggestions(events: list[Event]) -> list[Suggestion]:
    return [e for e in events if isinstance(e, Suggestion)]


def test_final_caller_segments_with_evidence_trigger_once(assistant: Any) -> None:
    tr = tracker(assistant)
    tr.apply(CallStarted(call_id="a", counselor_id="c7"), T0)
    tr.apply(seg("a", "s1", Channel.caller, "수도 계량기가", 0.0, final=False), T0)
    assert not tr.due(T0)  # a partial never triggers
    tr.apply(seg("a", "s1", Channel.caller, METER, 0.0), T0)
    tr.apply(seg("a", "s1", Channel.caller, METER, 0.0), T0)  # redelivered
    tr.apply(seg("a", "c1", Channel.counselor, "네 고객님, 수도 계량기 확인해 드리겠습니다.", 2.5), T0)
    tr.apply(seg("a", "s2", Channel.caller, "네네", 5.0), T0)  # no evidence
    plan = tr.due(T0)
    assert [r.trigger_segment_ids for r in plan.suggest] == [["s1"]] and not plan.alone
    req = plan.suggest[0]
    # only masked text is kept and sent on
    assert "[전화번호]" in req.turns[0] and "팔팔구구" not in repr(tr.calls["a"].segments)
    assert tr.calls["a"].counselor_id == "c7"


def test_a_follow_up_question_without_nouns_triggers_once_the_call_has_a_topic(assistant: Any) -> None:
    tr = tracker(assistant)
    # a bare question opening a call has nothing to ask within: no trigger
    tr.apply(seg("a", "s0", Channel.caller, "그럼 안 하면요?", 0.0), T0)
    assert not tr.due(T0)
    tr.apply(seg("a", "s1", Channel.caller, METER, 3.0), T0)
    assert [r.trigger_segment_ids for r in tr.due(T0).suggest] == [["s1"]]
    tr._done_with(tr.calls["a"], ["s1"], covered=True)
    tr.apply(seg("a", "c1", Channel.counselor, "네, 계량기 동파는 관리 책임이 있습니다.", 6.0), T0)
    # the same words after a trigger: a follow-up within the call's topic
    tr.apply(seg("a", "s2", Channel.caller, "그럼 안 하면요?", 10.0), T0 + 1)
    req = tr.due(T0 + 1).suggest
    assert [r.trigger_segment_ids for r in req] == [["s2"]]
    assert len(req[0].turns) == 3  # the query can read the turns before it
    tr._done_with(tr.calls["a"], ["s2"], covered=True)
    # neither a statement with no nouns nor a closing is a follow-up
    tr.apply(seg("a", "s3", Channel.caller, "아 그렇구나.", 14.0), T0 + 2)
    tr.apply(seg("a", "s4", Channel.caller, "네 알겠습니다, 감사합니다.", 16.0), T0 + 2)
    assert not tr.due(T0 + 2)
    # the setting turns it off
    off = tracker(assistant, follow_up_questions=False)
    off.apply(seg("b", "s1", Channel.caller, METER, 0.0), T0)
    off._done_with(off.calls["b"], ["s1"], covered=True)
    off.apply(seg("b", "s2", Channel.caller, "그럼 안 하면요?", 10.0), T0 + 1)
    assert not off.due(T0 + 1)


def test_debounce_merges_a_cut_sentence_and_waits_on_the_audio_clock(assistant: Any) -> None:
    run = Run(assistant, tracker(assistant, debounce_ms=600))
    tr = run.tr
    tr.apply(seg("a", "s3", Channel.caller, ID_CARD, 10.0), T0)
    tr.apply(seg("a", "s4", Channel.caller, ID_FEE, 12.1), T0)  # the same moment: one suggestion
    assert [s.trigger_segment_ids for s in suggestions(run.tick(T0))] == [["s3", "s4"]]
    # starts 0.2 s (audio) after the last trigger ended: waits debounce_ms of wall time
    tr.apply(seg("a", "s5", Channel.caller, PARKING, 14.2), T0 + 1)
    assert run.tick(T0 + 1) == [] and run.tick(T0 + 1.59) == []
    assert [s.trigger_segment_ids for s in suggestions(run.tick(T0 + 1.6))] == [["s5"]]
    # a final well after the last trigger goes at once
    tr.apply(seg("a", "s6", Channel.caller, METER, 40.0), T0 + 2)
    assert [s.trigger_segment_ids for s in suggestions(run.tick(T0 + 2))] == [["s6"]]


def test_what_is_on_screen_is_not_repeated_but_new_keywords_are(assistant: Any) -> None:
    run = Run(assistant, tracker(assistant, repeat_window=3))
    tr = run.tr
    for i, (text, start) in enumerate([(METER, 0.0), (ID_CARD, 10.0), (PARKING, 20.0)]):
        tr.apply(seg("a", f"s{i}", Channel.caller, text, start), T0 + i)
        run.tick(T0 + i)
    first = suggestions(run.published)
    assert len(first) == 3 and first[0].passages and not first[0].draft.abstained
    assert all(
        c in {p.passage_id for p in first[0].passages} for s in first[0].draft.sentences for c in s.citations
    )
    tr.apply(seg("a", "again", Channel.caller, METER, 40.0), T0 + 5)
    again = run.tick(T0 + 5)
    assert suggestions(again) == []
    assert [type(e) for e in again] == [KeywordsUpdated]  # the keywords changed since PARKING
    assert tr.calls["a"].pending == [] and "again" in tr.calls["a"].covered
    # with no memory of what was shown, the same passages are shown again
    run2 = Run(assistant, tracker(assistant, repeat_window=0))
    for i, text in enumerate([METER, METER]):
        run2.tr.apply(seg("b", f"m{i}", Channel.caller, text, i * 20.0), T0 + i)
        run2.tick(T0 + i)
    assert len(suggestions(run2.published)) == 2


def test_events_carry_stable_ids_and_latency(assistant: Any) -> None:
    tr = tracker(assistant)
    tr.apply(seg("a", "s1", Channel.caller, PARKING, 0.0), T0)
    req = tr.due(T0).suggest[0]
    res = assistant.suggest_many([req])[0]
    events = tr.events_for(res)
    # nothing changes before record(): the same events, with the same ids
    assert [e.event_id for e in events] == [e.event_id for e in tr.events_for(res)]
    kw, sugg = events
    assert isinstance(kw, KeywordsUpdated) and isinstance(sugg, Suggestion)
    assert sugg.suggestion_id.startswith("sg-") and sugg.event_id != kw.event_id
    lat = sugg.latency
    assert lat.total_ms >= lat.retrieval_ms > 0 and lat.keywords_ms > 0 and lat.masking_ms >= 0
    other = tracker(assistant)
    other.apply(seg("a", "s1", Channel.caller, PARKING, 0.0), T0 + 50)
    again = other.events_for(assistant.suggest_many(other.due(T0 + 50).suggest)[0])
    assert [e.event_id for e in again] == [e.event_id for e in events]  # another member: same ids


def test_summary_waits_for_the_grace_and_for_waiting_finals(assistant: Any) -> None:
    run = Run(assistant, tracker(assistant, summary_grace_ms=1000))
    tr = run.tr
    tr.apply(CallStarted(call_id="a", counselor_id="c7"), T0)
    tr.apply(seg("a", "s1", Channel.caller, PARKING, 0.0), T0)
    tr.apply(CallEnded(call_id="a"), T0)
    tr.apply(seg("a", "s2", Channel.caller, ID_CARD, 3.0), T0 + 0.5)  # late transcript, inside the grace
    assert tr.due(T0 + 0.5).summarize == []  # finals waiting, and within the grace
    shown = suggestions(run.tick(T0 + 0.5))  # the suggestion of s1 + s2
    # the counselor's answer to the card, late too: it confirms the card's articles for the summary
    card = shown[0].passages
    answer = f"네, 말씀하신 건은 {card[0].law_name} {card[0].article_no}에 따라 안내해 드리겠습니다. {card[0].snippet}"
    tr.apply(seg("a", "c1", Channel.counselor, answer, 6.0), T0 + 0.6)
    assert tr.due(T0 + 0.9).summarize == []
    out = run.tick(T0 + 1.0)
    assert [type(e) for e in out] == [CallSummary]
    assert isinstance(out[0], CallSummary)
    assert out[0].category in ("불법주정차", "주민등록")
    # regulations come from the cards shown, confirmed by the answer: never from elsewhere
    assert out[0].regulations_cited and set(out[0].regulations_cited) <= {p.doc_id for p in card[:3]}
    assert "a" not in tr.calls and tr.is_finished("a")
    tr.apply(seg("a", "s9", Channel.caller, METER, 30.0), T0 + 2)  # after the summary: ignored
    assert "a" not in tr.calls and not tr.due(T0 + 2)


def test_one_summary_per_tick_while_other_finals_wait(assistant: Any) -> None:
    tr = tracker(assistant, summary_grace_ms=0, debounce_ms=600, batch_max=1)
    for c in ("x", "y"):
        tr.apply(CallEnded(call_id=c), T0)
    assert len(tr.due(T0).summarize) == 2 and tr.due(T0).summary_budget_s == TICK_BUDGET_S
    # a final of another call beyond this batch (batch_max 1): one summary only this tick
    tr.apply(seg("p", "p1", Channel.caller, PARKING, 0.0), T0)
    tr.apply(seg("q", "q1", Channel.caller, ID_CARD, 0.0), T0)
    plan = tr.due(T0)
    assert [r.call_id for r in plan.suggest] == ["p"] and plan.summary_budget_s == 0.0
    # the batch serves every waiting final: the summaries keep their budget
    tr2 = tracker(assistant, summary_grace_ms=0, debounce_ms=600)
    tr2.apply(CallEnded(call_id="x"), T0)
    tr2.apply(seg("p", "p1", Channel.caller, PARKING, 0.0), T0)
    plan2 = tr2.due(T0)
    assert len(plan2.suggest) == 1 and plan2.summary_budget_s == TICK_BUDGET_S
    for res in assistant.suggest_many(plan2.suggest):
        tr2.record(res, tr2.events_for(res))
    # a final in its debounce wait counts as waiting too
    tr2.apply(seg("p", "p2", Channel.caller, ID_CARD, 2.1), T0)
    plan3 = tr2.due(T0)
    assert plan3.suggest == [] and [r.call_id for r in plan3.summarize] == ["x"]
    assert plan3.summary_budget_s == 0.0


def test_batch_is_oldest_due_first_and_bounded(assistant: Any) -> None:
    tr = tracker(assistant, batch_max=2, debounce_ms=600)
    tr.apply(seg("a", "a0", Channel.caller, PARKING, 0.0), T0)
    tr.apply(seg("a", "a1", Channel.caller, ID_CARD, 2.1), T0)  # pending already: stays due at once
    tr.apply(seg("b", "b0", Channel.caller, METER, 0.0), T0)
    tr.apply(seg("c", "c0", Channel.caller, ID_FEE, 0.0), T0)
    plan = tr.due(T0)
    assert [r.call_id for r in plan.suggest] == ["a", "b"]
    assert plan.suggest[0].trigger_segment_ids == ["a0", "a1"]


def test_a_paced_batch_takes_the_oldest_within_the_limit_and_the_rest_next_tick(assistant: Any) -> None:
    tr = tracker(assistant, batch_max=32, debounce_ms=600)
    for i, (call, text) in enumerate([("a", PARKING), ("b", METER), ("c", ID_FEE)]):
        tr.apply(seg(call, f"{call}0", Channel.caller, text, 0.0), T0 + i * 0.1)
    first = tr.due(T0 + 1, limit=2)
    assert [r.call_id for r in first.suggest] == ["a", "b"]
    for res in assistant.suggest_many(first.suggest):
        tr.record(res, tr.events_for(res))
    assert [r.call_id for r in tr.due(T0 + 1, limit=2).suggest] == ["c"]
    assert [r.call_id for r in tr.due(T0 + 1, limit=0).suggest] == ["c"]  # one at least
    assert len(tr.due(T0 + 1, limit=99).suggest) == 1


def test_idle_calls_are_forgotten(assistant: Any) -> None:
    tr = tracker(assistant, call_idle_timeout_s=60)
    tr.apply(CallStarted(call_id="lost", counselor_id="c1"), T0)
    tr.apply(CallStarted(call_id="live", counselor_id="c1"), T0 + 30)
    assert tr.forget_idle(T0 + 60) == []
    tr.due(T0 + 61)
    assert set(tr.calls) == {"live"} and tr.is_finished("lost")


def test_a_failing_call_is_retried_alone_then_dropped(assistant: Any) -> None:
    tr = tracker(assistant, max_failures=3)
    tr.apply(seg("bad", "b1", Channel.caller, PARKING, 0.0), T0)
    tr.apply(seg("ok", "o1", Channel.caller, ID_CARD, 0.0), T0)
    plan = tr.due(T0)
    assert {r.call_id for r in plan.suggest} == {"bad", "ok"}
    bad = next(r for r in plan.suggest if r.call_id == "bad")
    assert tr.failed(bad, T0) is False
    for res in assistant.suggest_many([r for r in plan.suggest if r.call_id == "ok"]):
        tr.record(res, tr.events_for(res))
    assert not tr.due(T0 + RETRY_AFTER_S / 2)  # backs off
    plan = tr.due(T0 + RETRY_AFTER_S)
    assert plan.suggest == [] and [r.call_id for r in plan.alone] == ["bad"]
    assert tr.failed(plan.alone[0], T0 + RETRY_AFTER_S) is False
    last = tr.due(T0 + 2 * RETRY_AFTER_S).alone[0]
    assert tr.failed(last, T0 + 2 * RETRY_AFTER_S) is True  # the third failure: dropped
    assert tr.calls["bad"].pending == [] and "b1" not in tr.calls["bad"].covered
    assert not tr.due(T0 + 10)
    # the call goes on: its next question is tried in the batch again
    tr.apply(seg("bad", "b2", Channel.caller, METER, 20.0), T0 + 10)
    assert [r.trigger_segment_ids for r in tr.due(T0 + 10).suggest] == [["b2"]]


def test_a_failing_summary_is_retried_then_dropped(assistant: Any) -> None:
    tr = tracker(assistant, max_failures=2, summary_grace_ms=0)
    for c in ("bad", "ok"):
        tr.apply(seg(c, f"{c}1", Channel.counselor, "네, 확인해 드리겠습니다.", 0.0), T0)
        tr.apply(CallEnded(call_id=c), T0)
    plan = tr.due(T0)
    assert [r.call_id for r in plan.summarize] == ["bad", "ok"]
    assert tr.failed(plan.summarize[0], T0) is False
    assert [r.call_id for r in tr.due(T0).summarize] == ["ok"]  # the other goes first
    assert [r.call_id for r in tr.due(T0 + RETRY_AFTER_S).summarize] == ["bad", "ok"]
    assert tr.failed(plan.summarize[0], T0 + RETRY_AFTER_S) is True
    assert "bad" not in tr.calls and tr.is_finished("bad")


def test_garbage_and_empty_segments_trigger_nothing_but_a_summary(assistant: Any) -> None:
    run = Run(assistant, tracker(assistant, summary_grace_ms=0))
    run.tr.apply(CallStarted(call_id="g", counselor_id="c7"), T0)
    for i, text in enumerate(["", "   ", "ㅋㅋㅋ", "어… 네네", "@@@ ### !!!", "zzzz zzzz"]):
        run.tr.apply(seg("g", f"g{i}", Channel.caller, text, i * 3.0), T0 + i)
        assert run.tick(T0 + i) == []
    run.tr.apply(CallEnded(call_id="g"), T0 + 10)
    out = run.tick(T0 + 10)
    assert len(out) == 1 and isinstance(out[0], CallSummary) and out[0].category == "기타"


def test_takeover_rebuild_resumes_where_the_published_events_end(assistant: Any) -> None:
    """Member A handles part of two calls and publishes; member B rebuilds from the same history and
    goes on: covered segments are never suggested again, the rest is, and a written summary is not
    written twice."""
    history: list[tuple[int | None, Event]] = []

    def feed(tr: CallTracker, ev: Event, now: float) -> None:
        history.append((3, ev))
        tr.apply(ev, now, partition=3)

    a = Run(assistant, tracker(assistant, summary_grace_ms=0))
    feed(a.tr, CallStarted(call_id="open", counselor_id="c1"), T0)
    feed(a.tr, CallStarted(call_id="done", counselor_id="c2"), T0)
    feed(a.tr, seg("open", "o1", Channel.caller, PARKING, 0.0), T0)
    feed(a.tr, seg("done", "d1", Channel.caller, ID_CARD, 0.0), T0)
    feed(a.tr, CallEnded(call_id="done"), T0)
    a.tick(T0)
    a.tick(T0 + 1)  # the summary of "done" (its final was served first)
    feed(a.tr, seg("open", "o2", Channel.caller, METER, 10.0), T0 + 2)  # A dies before serving it
    history += [(None, e) for e in a.published]
    assert {type(e) for e in a.published} == {Suggestion, KeywordsUpdated, CallSummary}

    b = Run(assistant, tracker(assistant, summary_grace_ms=0))
    b.tr.rebuild(history, T0 + 100)
    assert set(b.tr.calls) == {"open"} and b.tr.is_finished("done")
    st = b.tr.calls["open"]
    assert st.counselor_id == "c1" and st.order == ["o1", "o2"] and st.covered == {"o1"}
    assert st.keywords and len(st.shown) == 1
    out = b.tick(T0 + 100)  # due at once after a rebuild
    assert [s.trigger_segment_ids for s in suggestions(out)] == [["o2"]]
    # a call that ended without a summary is summarised at once, without waiting for the grace
    c = tracker(assistant, summary_grace_ms=60_000)
    c.rebuild([(1, CallStarted(call_id="x", counselor_id="c1")), (1, CallEnded(call_id="x"))], T0)
    assert [r.call_id for r in c.due(T0).summarize] == ["x"]


def _takeover_history(assistant: Any, calls: int) -> list[tuple[int | None, Event]]:
    """What member A read and published on partition 3 before dying: ``calls`` calls, each a served
    question then one it did not serve, and one more call that ended and was summarised."""
    history: list[tuple[int | None, Event]] = []
    a = Run(assistant, tracker(assistant, summary_grace_ms=0))

    def feed(ev: Event, now: float) -> None:
        history.append((3, ev))
        a.tr.apply(ev, now, partition=3)

    feed(CallStarted(call_id="done", counselor_id="c0"), T0)
    feed(seg("done", "d1", Channel.caller, ID_CARD, 0.0), T0)
    feed(CallEnded(call_id="done"), T0)
    for i in range(calls):
        feed(CallStarted(call_id=f"open{i}", counselor_id=f"c{i}"), T0)
        feed(seg(f"open{i}", f"o{i}a", Channel.caller, PARKING, 0.0), T0)
        feed(seg(f"open{i}", f"o{i}b", Channel.counselor, "네 단속 요청 접수해 드리겠습니다.", 3.0), T0)
    a.tick(T0)
    a.tick(T0 + 1)
    for i in range(calls):
        feed(seg(f"open{i}", f"o{i}c", Channel.caller, METER, 10.0), T0 + 2)  # A dies before serving it
    return history + [(None, e) for e in a.published]


def _state(tr: CallTracker) -> dict[str, Any]:
    return {
        cid: (st.order, sorted(st.covered), st.pending, st.shown, st.keywords, st.ended is not None)
        for cid, st in tr.calls.items()
    }


def test_a_rebuild_replays_call_by_call_within_its_budget_and_ends_where_one_replay_ends(
    assistant: Any,
) -> None:
    """A rebuild re-masks every segment (seconds for many calls on a slow core): with a budget it
    replays calls until the budget is spent and the rest wait for later steps. A waiting call is not
    due and its live events wait behind its history; once all are replayed the state is the one a
    rebuild in one go makes, and a covered segment's nouns were never analysed."""
    from streaming.privacy import mask_text

    history = _takeover_history(assistant, calls=3)
    whole = tracker(assistant, summary_grace_ms=0)
    whole.rebuild(history, T0 + 100)

    clock = [0.0]
    analysed: list[str] = []

    def mask(text: str) -> str:  # each segment's masking costs 0.1 s of the scripted timer
        clock[0] += 0.1
        return mask_text(text)

    def evidence(text: str) -> list[str]:
        analysed.append(text)
        return list(assistant.evidence_terms(text))

    tr = CallTracker(AssistSettings(summary_grace_ms=0), evidence, mask=mask, timer=lambda: clock[0])
    # 0.25 s: the first call's three segments (0.3 s) overrun it, so that call alone is replayed
    assert tr.rebuild(history, T0 + 100, budget_s=0.25) == 2 and tr.replaying == 2
    assert set(tr.calls) == {"open0"} and tr.is_finished("done")
    # a live event of a waiting call waits behind its history; waiting calls are not due
    tr.apply(seg("open2", "o2d", Channel.caller, ID_FEE, 20.0), T0 + 101, partition=3)
    assert "open2" not in tr.calls
    assert [r.call_id for r in tr.due(T0 + 101).suggest] == ["open0"]
    assert tr.continue_rebuild(T0 + 101, budget_s=0.0) == 2  # nothing spent, nothing replayed
    assert tr.continue_rebuild(T0 + 101, budget_s=0.25) == 1
    assert tr.continue_rebuild(T0 + 101) == 0 and tr.replaying == 0
    st = tr.calls["open2"]
    assert st.order == ["o2a", "o2b", "o2c", "o2d"] and st.pending == ["o2c", "o2d"]
    tr.calls["open2"].order.remove("o2d")
    del tr.calls["open2"].segments["o2d"]
    tr.calls["open2"].pending.remove("o2d")
    assert _state(tr) == _state(whole)
    # the served questions (covered by the published cards) were never analysed for nouns
    assert all(PARKING not in t and ID_CARD not in t for t in analysed) and len(analysed) == 4


def test_calls_waiting_for_their_replay_are_dropped_with_their_partition(assistant: Any) -> None:
    history = _takeover_history(assistant, calls=2)
    tr = tracker(assistant, summary_grace_ms=0)
    assert tr.rebuild(history, T0 + 100, budget_s=0.0) == 3  # the summarised call is replayed too
    assert sorted(tr.forget_partitions({3})) == ["done", "open0", "open1"]
    assert tr.replaying == 0 and tr.calls == {} and tr.continue_rebuild(T0 + 101) == 0


def test_calls_of_revoked_partitions_are_dropped(assistant: Any) -> None:
    tr = tracker(assistant)
    tr.apply(CallStarted(call_id="p1", counselor_id="c"), T0, partition=1)
    tr.apply(CallStarted(call_id="p2", counselor_id="c"), T0, partition=2)
    assert tr.forget_partitions({1}) == ["p1"] and set(tr.calls) == {"p2"}
    assert not tr.is_finished("p1")  # another member follows it now; it may come back


@pytest.mark.parametrize("module", ["service.py", "tracker.py"])
def test_no_transcript_text_in_logs(module: str) -> None:
    """The service logs ids and latencies, never transcript text (checked on its source)."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[2].joinpath("assist", module).read_text()
    assert "seg.text" not in src.replace("self.mask(seg.text)", "")
    assert "log." not in src or module == "service.py"


def test_split_roles_cards_and_summaries_give_the_one_loop_result(assistant: Any) -> None:
    """The cards role publishes cards and only closes an ended call; the summaries role, fed the same
    input plus the cards role's output (as it reads assist.suggestions), writes the summary the
    single loop writes: the same regulations, from the cards shown and confirmed."""
    both = Run(assistant, tracker(assistant, summary_grace_ms=1000))
    cards = Run(assistant, tracker(assistant, summary_grace_ms=1000, role="cards"))
    summ = Run(assistant, tracker(assistant, summary_grace_ms=1000, role="summaries"))
    script: list[tuple[float, Event]] = [
        (T0, CallStarted(call_id="a", counselor_id="c7")),
        (T0, seg("a", "s1", Channel.caller, PARKING, 0.0)),
    ]
    for now, ev in script:
        for r in (both, cards, summ):
            r.tr.apply(ev, now)
    assert summ.tr.due(T0).suggest == []  # the summaries role never drafts a card
    shown = suggestions(cards.tick(T0))
    same = suggestions(both.tick(T0))
    assert shown and [(s.suggestion_id, s.passages) for s in same] == [
        (s.suggestion_id, s.passages) for s in shown
    ]
    card = shown[0].passages
    answer = f"네, 말씀하신 건은 {card[0].law_name} {card[0].article_no}에 따라 안내해 드리겠습니다. {card[0].snippet}"
    late: list[tuple[float, Event]] = [
        (T0 + 0.2, seg("a", "c1", Channel.counselor, answer, 3.0)),
        (T0 + 0.3, CallEnded(call_id="a")),
    ]
    for now, ev in late:
        for r in (both, cards, summ):
            r.tr.apply(ev, now)
    # the summaries role has not seen the card yet: the final s1 waits for it (not past the wait)
    assert summ.tr.due(T0 + 1.5).summarize == []
    for ev in cards.published:
        summ.tr.apply(ev, T0 + 1.5)
    written = summ.tick(T0 + 1.5)
    single = both.tick(T0 + 1.5)
    assert [type(e) for e in written] == [CallSummary] == [type(e) for e in single]
    assert isinstance(written[0], CallSummary) and isinstance(single[0], CallSummary)
    assert written[0].regulations_cited == single[0].regulations_cited != []
    assert written[0].event_id == single[0].event_id  # one summary per call, whoever writes it
    # the cards role writes no summary and forgets the call once its grace ran out
    assert cards.tick(T0 + 1.5) == [] and cards.tr.is_finished("a") and "a" not in cards.tr.calls


def test_summaries_role_waits_for_a_card_only_so_long(assistant: Any) -> None:
    """A final whose card never comes (the cards role did not repeat what was on screen, or is
    behind): the summary is written ``summary_cards_wait_ms`` after the grace, without it."""
    tr = tracker(assistant, summary_grace_ms=1000, summary_cards_wait_ms=4000, role="summaries")
    tr.apply(seg("a", "s1", Channel.caller, PARKING, 0.0), T0)
    tr.apply(CallEnded(call_id="a"), T0)
    assert tr.due(T0 + 4.9).summarize == []
    plan = tr.due(T0 + 5.0)
    assert [r.call_id for r in plan.summarize] == ["a"] and plan.suggest == []
    assert plan.summarize[0].cards == [] and plan.summary_budget_s == TICK_BUDGET_S
    # a card seen before its transcript (two topics): the segment never waits
    tr2 = tracker(assistant, summary_grace_ms=0, role="summaries")
    other = tracker(assistant)
    other.apply(seg("b", "b1", Channel.caller, PARKING, 0.0), T0)
    res = assistant.suggest_many(other.due(T0).suggest)[0]
    for ev in other.events_for(res):
        tr2.apply(ev, T0)
    tr2.apply(seg("b", "b1", Channel.caller, PARKING, 0.0), T0)
    tr2.apply(CallEnded(call_id="b"), T0)
    assert [len(r.cards or []) for r in tr2.due(T0).summarize] == [1]


def test_roles_have_their_groups_and_topics() -> None:
    from assist.service import topics_of

    assert AssistSettings().consumer_group == "assist"
    assert AssistSettings(role="cards").consumer_group == "assist"
    assert AssistSettings(role="summaries").consumer_group == "assist-summaries"
    assert AssistSettings(role="summaries", shadow="t1").consumer_group == "assist-summaries-shadow-t1"
    assert topics_of(AssistSettings()) == (
        ("call.events", "call.transcripts"),
        ("assist.suggestions", "call.summaries"),
    )
    assert topics_of(AssistSettings(role="cards"))[1] == ("assist.suggestions",)
    assert topics_of(AssistSettings(role="summaries")) == (
        ("call.events", "call.transcripts", "assist.suggestions"),
        ("call.summaries",),
    )
    assert topics_of(AssistSettings(role="summaries", shadow="t1")) == (
        ("call.events", "call.transcripts", "assist.suggestions.shadow"),
        ("assist.suggestions.shadow",),
    )


def test_a_request_waits_from_when_it_became_due_not_through_its_debounce(assistant: Any) -> None:
    """Load shedding counts a request's wait from the end of its debounce (a wait by design), Kafka's
    wait included; past ``shed_context_after_ms`` it is retrieved from the caller's words only."""
    from assist.assistant import shed_late

    clock = [50.0]
    tr = CallTracker(AssistSettings(debounce_ms=600), assistant.evidence_terms, timer=lambda: clock[0])
    tr.apply(seg("a", "s3", Channel.caller, ID_CARD, 10.0), T0, queue_ms=30.0)
    assert suggestions(Run(assistant, tr).tick(T0))
    tr.apply(seg("a", "s5", Channel.caller, PARKING, 12.2), T0 + 1, queue_ms=40.0)  # held by the debounce
    (req,) = tr.due(T0 + 1.6).suggest
    assert req.ready is not None and req.ready - req.started == pytest.approx(0.6)
    assert req.waited_ms(now=req.ready) == pytest.approx(40.0)  # only Kafka's wait so far
    assert shed_late([req], 400, now=req.ready + 0.3) == [] and not req.caller_only
    assert shed_late([req], 0, now=req.ready + 9.0) == []  # 0: never
    assert shed_late([req], 400, now=req.ready + 0.4) == [req] and req.caller_only
    events = tr.events_for(assistant.suggest_many([req])[0])
    assert [e.shed for e in suggestions(events)] == [True]


def test_a_closing_puts_no_new_card_up_but_stays_in_the_conversation(assistant: Any) -> None:
    closing = "네, 알겠어요. 일단 계량기 검사 신청부터 해 볼게요. 감사합니다."
    for skip, expected in ((True, []), (False, [["s2"]])):
        tr = tracker(assistant, skip_closings=skip)
        tr.apply(CallStarted(call_id="a", counselor_id="c7"), T0)
        tr.apply(seg("a", "s1", Channel.caller, METER, 0.0), T0)
        assert [r.trigger_segment_ids for r in tr.due(T0).suggest] == [["s1"]]
        tr.calls["a"].pending.clear()  # as if its card were published
        tr.apply(seg("a", "s2", Channel.caller, closing, 20.0), T0 + 20)
        assert [r.trigger_segment_ids for r in tr.due(T0 + 20).suggest] == expected
        assert "s2" in tr.calls["a"].segments  # the next question still reads it
    # a question after thanks is a question
    tr = tracker(assistant)
    tr.apply(CallStarted(call_id="b", counselor_id="c7"), T0)
    tr.apply(seg("b", "s1", Channel.caller, "감사합니다. 그런데 계량기 검사 수수료는 얼마예요", 0.0), T0)
    assert [r.trigger_segment_ids for r in tr.due(T0).suggest] == [["s1"]]


def test_a_card_that_reads_the_same_as_the_newest_is_a_repeat_whatever_its_folded_articles() -> None:
    from types import SimpleNamespace

    from assist.call_state import is_repeat, shown_key

    def p(doc: str) -> Any:
        return SimpleNamespace(doc_id=doc, effective_date="2026-01-01")

    def draft(*texts: str, abstained: bool = False) -> Any:
        return SimpleNamespace(abstained=abstained, sentences=[SimpleNamespace(text=t) for t in texts])

    a = shown_key([p("지방세법/제20조"), p("지방세법/제7조"), p("지방세법/제10조")], draft("60일 이내 신고"))
    b = shown_key([p("도로교통법/제32조")], draft("정차 금지"))
    # the same article saying the same, only the folded related articles differ
    twin = shown_key([p("지방세법/제20조"), p("지방세법_시행령/제33조")], draft("60일 이내 신고"))
    assert is_repeat(twin, [b, a])  # a is the newest card
    assert not is_repeat(twin, [a, b])  # another card is on top since: a's twin is news again
    # the same article reading another sentence is a new answer
    assert not is_repeat(shown_key([p("지방세법/제20조")], draft("가산세")), [a])
    # the same three articles led by the same one, within the window: a repeat whatever the order after
    same3 = shown_key([p("지방세법/제20조"), p("지방세법/제10조"), p("지방세법/제7조")], draft("다른 문장"))
    assert is_repeat(same3, [a, b])
    # the same three led by another article: the follow-up asked another provision, a new card
    led = shown_key([p("지방세법/제10조"), p("지방세법/제20조"), p("지방세법/제7조")], draft("다른 문장"))
    assert not is_repeat(led, [a, b])
    assert is_repeat(led, [a, led])  # ... once, not again
    # abstentions repeat each other, and never match a card
    off = shown_key([p("지방세법/제20조")], draft(abstained=True))
    assert is_repeat(off, [off]) and not is_repeat(off, [a])
    assert not is_repeat(twin, [])
