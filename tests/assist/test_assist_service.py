"""The assist service's Kafka side against the real broker: publishing, per-call failure isolation, the
state rebuild under live traffic, and takeover of live calls by a second instance after the first is
killed (SIGKILL) mid-call. The per-call rules are tested without a broker in test_assist_tracker.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from assist.assistant import Assistant
from assist.service import AssistService
from assist.settings import AssistSettings
from streaming import metrics
from streaming.admin import describe_topics
from streaming.events import (
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    Event,
    KeywordsUpdated,
    Suggestion,
    TranscriptSegment,
)
from streaming.kafka import EventProducer, Record
from streaming.topics import ASSIST_SUGGESTIONS, CALL_SUMMARIES, CALL_TRANSCRIPTS
from tests.assist.call_script import ID_CARD, ID_FEE, METER, PARKING, seg
from tests.kafka_util import read_records, read_topic
from tests.util import wait_for


def read_events(kafka_settings: Any, topic: str, call_ids: set[str]) -> list[Event]:
    return read_topic(kafka_settings, topic, call_ids, timeout_s=20)


def _rec(partition: int = 0) -> Record:
    return Record("call.transcripts", partition, 0, int(time.time() * 1000))


def test_publishes_masked_suggestions_keywords_and_a_summary(
    assistant: Any, kafka_settings: Any, unique: str
) -> None:
    """The adapter publishes what the tracker decides (its rules: test_assist_tracker.py)."""
    settings = AssistSettings(group_id=f"assist-{unique}", summary_grace_ms=0)
    svc = AssistService(assistant, settings, kafka_settings, instance="t1")
    call = f"svc-{unique}"
    try:
        svc.handle(CallStarted(call_id=call, counselor_id="c7"), _rec())
        svc.handle(seg(call, "s1", Channel.caller, METER, 0.0), _rec())
        svc.handle(seg(call, "c1", Channel.counselor, "네 고객님, 확인해 드리겠습니다.", 2.5), _rec())
        svc.tick()
        svc.handle(seg(call, "s3", Channel.caller, ID_CARD, 10.0), _rec())
        svc.handle(seg(call, "s4", Channel.caller, ID_FEE, 12.1), _rec())
        svc.tick()
        # the counselor answers the card: the summary cites what the answer confirms
        answer = "주민등록증 재발급은 주민센터에서 신청하시면 되고, 재발급 수수료도 거기서 안내해 드립니다."
        svc.handle(seg(call, "c2", Channel.counselor, answer, 15.0), _rec())
        svc.handle(CallEnded(call_id=call), _rec())
        svc.tick()
        svc.producer.flush()
        assert svc.published_suggestions == 2 and svc.published_summaries == 1
        assert call not in svc.calls
    finally:
        svc.close()
    events = read_events(kafka_settings, ASSIST_SUGGESTIONS, {call})
    sugg = [e for e in events if isinstance(e, Suggestion)]
    assert [s.trigger_segment_ids for s in sugg] == [["s1"], ["s3", "s4"]]
    first = sugg[0]
    assert "[전화번호]" in first.query and "팔팔구구" not in first.model_dump_json()
    assert first.passages and not first.draft.abstained
    lat = first.latency
    assert lat.total_ms >= lat.retrieval_ms > 0 and lat.queue_ms >= 0
    kws = [e for e in events if isinstance(e, KeywordsUpdated)]
    assert kws and 3 <= len(kws[0].keywords) <= 8 and not any("팔팔" in k for k in kws[0].keywords)
    summaries = read_events(kafka_settings, CALL_SUMMARIES, {call})
    assert len(summaries) == 1 and isinstance(summaries[0], CallSummary)
    sm = summaries[0]
    assert sm.category in ("상수도요금", "주민등록") and sm.regulations_cited
    # only articles of cards that were on screen
    assert set(sm.regulations_cited) <= {p.doc_id for s in sugg for p in s.passages[:3]}
    assert "팔팔구구" not in sm.model_dump_json()


class _FailingFor(Assistant):
    """The real assistant, except that a batch holding one of ``bad`` raises (a fault injected)."""

    def __init__(self, base: Assistant, bad: set[str]) -> None:
        self.__dict__.update(base.__dict__)
        self.bad = bad
        self.batches: list[list[str]] = []

    def suggest_many(self, requests: Any) -> Any:
        self.batches.append([r.call_id for r in requests])
        if any(r.call_id in self.bad for r in requests):
            raise RuntimeError("injected retrieval failure")
        return super().suggest_many(requests)


def test_a_call_that_keeps_failing_does_not_hold_back_the_others(
    assistant: Any, kafka_settings: Any, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad, good = f"bad-{unique}", f"good-{unique}"
    flaky = _FailingFor(assistant, {bad})
    settings = AssistSettings(group_id=f"assist-{unique}", summary_grace_ms=0, max_failures=2)
    now = [1000.0]
    svc = AssistService(flaky, settings, kafka_settings, instance="t4", clock=lambda: now[0])
    dropped = metrics.ERRORS.labels(service="assist", kind="suggestion_dropped")
    summary_dropped = metrics.ERRORS.labels(service="assist", kind="summary_dropped")
    before, before_sm = dropped._value.get(), summary_dropped._value.get()
    real_summarize = svc.summarizer.summarize

    def summarize(turns: Any, cards: Any = None) -> Any:
        if any("불법주차" in t.text for t in turns):  # the bad call's summary fails too
            raise RuntimeError("injected summary failure")
        return real_summarize(turns, cards)

    svc.summarizer.summarize = summarize  # type: ignore[method-assign]  # the injected failure
    try:
        with caplog.at_level("ERROR", logger="dasan.assist.service"):
            svc.handle(seg(bad, "b1", Channel.caller, PARKING, 0.0), _rec())
            svc.handle(seg(good, "g1", Channel.caller, ID_CARD, 0.0), _rec())
            svc.tick()  # the batch fails, each call is tried on its own: good is published
            assert svc.published_suggestions == 1
            svc.handle(seg(good, "g2", Channel.caller, METER, 10.0), _rec())
            now[0] += 5
            svc.tick()  # bad alone (its second failure: dropped), good in the batch
            assert svc.published_suggestions == 2
            assert [b for b in flaky.batches if bad in b][-1] == [bad]
            assert dropped._value.get() == before + 1
            for c in (bad, good):
                svc.handle(CallEnded(call_id=c), _rec())
            for _ in range(3):
                now[0] += 5
                svc.tick()
            assert summary_dropped._value.get() == before_sm + 1 and svc.calls == {}
        svc.producer.flush()
    finally:
        svc.close()
    published = read_events(kafka_settings, ASSIST_SUGGESTIONS, {bad, good})
    assert [e.trigger_segment_ids for e in published if isinstance(e, Suggestion)] == [["g1"], ["g2"]]
    assert [e.call_id for e in read_events(kafka_settings, CALL_SUMMARIES, {bad, good})] == [good]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors and all(getattr(r, "call_id", None) == bad for r in errors)
    assert all("불법" not in r.getMessage() and "불법" not in str(r.__dict__) for r in errors)


class _Warming(Assistant):
    """The real assistant, composing its context queries from per-turn vectors (as a ranker trained
    on ``composed`` context vectors does), recording what the service asks it to embed ahead."""

    def __init__(self, base: Assistant) -> None:
        self.__dict__.update(base.__dict__)
        self.warmed: list[list[str]] = []

    @property
    def warms_context(self) -> bool:
        return True

    def warm_context(self, texts: Any) -> int:
        self.warmed.append(list(texts))
        return len(texts)


class _Slow(Assistant):
    """The real assistant on a slow core: each request costs ``per_request_s`` on the tick's timer."""

    def __init__(self, base: Assistant, timer: list[float], per_request_s: float) -> None:
        self.__dict__.update(base.__dict__)
        self.timer, self.per_request_s = timer, per_request_s
        self.batches: list[int] = []

    def suggest_many(self, requests: Any) -> Any:
        self.batches.append(len(requests))
        self.timer[0] += self.per_request_s * len(requests)
        return super().suggest_many(requests)


def test_batches_are_paced_to_fit_the_poll_interval_on_a_slow_core(
    assistant: Any, kafka_settings: Any, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten calls due at once on a core where a card costs 0.5 s: a batch of 32 would hold the poll
    loop 5 s, near the 6 s interval. The first batch is small, then each fits a quarter of it."""
    timer, now = [0.0], [1000.0]
    slow = _Slow(assistant, timer, per_request_s=0.5)
    settings = AssistSettings(group_id=f"assist-{unique}", batch_max=32, batch_time_share=0.25)
    svc = AssistService(
        slow,
        settings,
        kafka_settings,
        instance="t-paced",
        consumer_overrides={"max_poll_interval_ms": 6000},
        clock=lambda: now[0],
        timer=lambda: timer[0],
    )
    texts = [PARKING, METER, ID_CARD, ID_FEE]
    calls = [f"paced{i}-{unique}" for i in range(10)]
    try:
        assert svc.pacer.budget_s == pytest.approx(1.5)
        for i, call in enumerate(calls):
            svc.handle(seg(call, f"p{i}", Channel.caller, texts[i % 4], 0.0), _rec())
        now[0] += 5  # past any debounce: all ten are due
        with caplog.at_level("INFO", logger="dasan.assist.service"):
            for _ in range(3):
                svc.tick()
        assert slow.batches == [4, 3, 3]  # 2 s, then 1.5 s each: every call got its card
        assert svc.published_suggestions == 10
        assert metrics.BATCH_LIMIT.labels(service="assist")._value.get() == 3
        paced = [r for r in caplog.records if "paced below batch_max" in r.getMessage()]
        assert len(paced) == 1 and paced[0].limit == 3 and paced[0].per_request_ms == 500  # type: ignore[attr-defined]
    finally:
        svc.close()


def test_a_tick_that_rebuilt_taken_over_calls_polls_before_any_batch(
    assistant: Any, kafka_settings: Any, unique: str
) -> None:
    """A rebuild takes up to half the poll interval and then replays every open call; a batch in the
    same tick overran the interval on a slow core, and each rejoin was dropped again (session 29)."""
    from kafka import TopicPartition

    timer, now = [0.0], [1000.0]
    slow = _Slow(assistant, timer, per_request_s=0.1)
    settings = AssistSettings(group_id=f"assist-{unique}")
    svc = AssistService(slow, settings, kafka_settings, instance="t-rebuild", clock=lambda: now[0])
    rebuilt: list[list[int]] = []

    def start_rebuild(parts: list[int]) -> None:  # the read itself is tested below
        rebuilt.append(parts)

    svc.start_rebuild = start_rebuild  # type: ignore[method-assign,assignment]
    call = f"rb-{unique}"
    try:
        svc.handle(seg(call, "r1", Channel.caller, PARKING, 0.0), _rec())
        now[0] += 5
        svc.on_assigned({TopicPartition(CALL_TRANSCRIPTS, 3)})
        svc.tick()  # the rebuild only
        assert rebuilt == [[3]] and slow.batches == []
        svc.tick()  # then the batch
        assert rebuilt == [[3]] and slow.batches == [1] and svc.published_suggestions == 1
    finally:
        svc.close()


def test_an_idle_tick_embeds_the_new_turns_ahead_masked_and_a_busy_one_does_not(
    assistant: Any, kafka_settings: Any, unique: str
) -> None:
    call = f"warm-{unique}"
    warming = _Warming(assistant)
    now = [1000.0]
    settings = AssistSettings(group_id=f"assist-{unique}", summary_grace_ms=0)
    svc = AssistService(warming, settings, kafka_settings, instance="t5", clock=lambda: now[0])
    try:
        said = "네 고객님, 연락처 010-2345-6789 로 안내 문자 드리겠습니다."
        svc.handle(seg(call, "k1", Channel.counselor, said, 0.0), _rec())
        svc.handle(seg(call, "k2", Channel.counselor, "잠시만요", 2.0, final=False), _rec())
        svc.tick()  # nothing due: the counselor's final turn is embedded ahead, masked
        assert len(warming.warmed) == 1 and len(warming.warmed[0]) == 1
        assert "010-2345-6789" not in warming.warmed[0][0] and "안내 문자" in warming.warmed[0][0]
        svc.handle(seg(call, "c1", Channel.caller, PARKING, 4.0), _rec())
        now[0] += 5
        svc.tick()  # a card is due: no warm-up in this tick, the caller's turn waits for an idle one
        assert svc.published_suggestions == 1 and len(warming.warmed) == 1
        svc.tick()
        assert len(warming.warmed) == 2 and "불법" in warming.warmed[1][0]
        svc.tick()
        assert len(warming.warmed) == 2  # nothing new
        svc.producer.flush()
    finally:
        svc.close()


def test_rebuild_reads_history_and_returns_while_calls_keep_talking(
    assistant: Any, kafka_settings: Any, unique: str
) -> None:
    """The state rebuild on assignment stops at the end offsets it saw, not at a quiet moment: a
    rebuild that waited for an empty poll never ended under live traffic, held the poll loop past
    max.poll.interval and lost the partitions again (found in the 30-call soak)."""
    settings = AssistSettings(group_id=f"assist-{unique}", summary_grace_ms=0)
    svc = AssistService(assistant, settings, kafka_settings, instance="t3")
    old, live = f"hist-{unique}", f"live-{unique}"
    stop = threading.Event()
    sent = 0

    def talk() -> None:
        nonlocal sent
        with EventProducer(kafka_settings) as p:
            while not stop.is_set() and sent < 600:  # at most 30 s of a busy call
                p.send(seg(live, f"l{sent}", Channel.caller, PARKING, sent * 2.0))
                p.flush()
                sent += 1
                time.sleep(0.05)

    talker = threading.Thread(target=talk, daemon=True)
    try:
        with EventProducer(kafka_settings) as p:
            p.send(CallStarted(call_id=old, counselor_id="c7"))
            for i in range(5):
                p.send(seg(old, f"h{i}", Channel.caller, ID_CARD, i * 3.0))
            p.flush()
        talker.start()
        wait_for(lambda: sent >= 20, 20, "live traffic")
        n = svc.rebuild(list(range(describe_topics(kafka_settings)[CALL_TRANSCRIPTS])))
        still_talking = talker.is_alive()
    finally:
        stop.set()
        talker.join(10)
        svc.close()
    assert still_talking, "the rebuild waited for the live call to fall silent"
    assert n >= 6
    st = svc.calls[old]
    assert list(st.order) == [f"h{i}" for i in range(5)] and st.counselor_id == "c7"


def test_cards_and_summaries_in_their_own_groups(assistant: Any, kafka_settings: Any, unique: str) -> None:
    """Two roles, two consumer groups, one broker: the cards role publishes the card and no summary;
    the summaries role reads the card from assist.suggestions and writes the summary, citing only it."""
    group = f"assist-{unique}"
    cards = AssistService(
        assistant,
        AssistSettings(group_id=group, role="cards", summary_grace_ms=0),
        kafka_settings,
        instance="c",
    )
    summ = AssistService(
        assistant,
        AssistSettings(group_id=group, role="summaries", summary_grace_ms=0, summary_cards_wait_ms=20_000),
        kafka_settings,
        instance="s",
    )
    assert summ.consumer.group_id == f"{group}-summaries"
    call = f"roles-{unique}"
    threads = [threading.Thread(target=svc.run, daemon=True) for svc in (cards, summ)]
    try:
        for t in threads:
            t.start()
        with EventProducer(kafka_settings) as p:
            p.send(CallStarted(call_id=call, counselor_id="c7"))
            p.send(seg(call, "s1", Channel.caller, ID_CARD, 0.0))
            p.flush()
            # (the groups are new: they also read earlier tests' calls on the shared broker, so wait on
            # this call's own state, not on the counters)
            wait_for(lambda: call in cards.calls and "s1" in cards.calls[call].covered, 90, "the card")
            answer = (
                "주민등록증 재발급은 주민센터에서 신청하시면 되고, 재발급 수수료도 거기서 안내해 드립니다."
            )
            p.send(seg(call, "c1", Channel.counselor, answer, 3.0))
            p.flush()
            # call.transcripts and call.events are two topics with no order between them: with no
            # grace (summary_grace_ms=0, to keep the test short) a CallEnded read before the answer
            # would be summarised without it and cite nothing (a flake seen once in CI). The service
            # covers this with its grace (1 s by default); the test waits for the answer instead.
            wait_for(lambda: call in summ.calls and "c1" in summ.calls[call].segments, 90, "the answer")
            p.send(CallEnded(call_id=call))
            p.flush()
        wait_for(lambda: summ.tracker.is_finished(call), 90, "the summary")
        wait_for(lambda: cards.tracker.is_finished(call), 30, "the cards role closing the call")
    finally:
        for svc in (cards, summ):
            svc.stop()
        for t in threads:
            t.join(20)
        for svc in (cards, summ):
            svc.close()
    assert cards.published_summaries == 0 and summ.published_suggestions == 0
    sugg = [e for e in read_events(kafka_settings, ASSIST_SUGGESTIONS, {call}) if isinstance(e, Suggestion)]
    summaries = read_events(kafka_settings, CALL_SUMMARIES, {call})
    assert len(sugg) == 1 and len(summaries) == 1 and isinstance(summaries[0], CallSummary)
    regs = summaries[0].regulations_cited
    assert regs and set(regs) <= {p.doc_id for p in sugg[0].passages[:3]}


# --------------------------------------------------------------------------- takeover


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    dasan = Path(sys.executable).with_name("dasan")
    fh = log.open("ab")
    return subprocess.Popen([str(dasan), "assist", "run", "--instance", name], env=env, stdout=fh, stderr=fh)


def _digest(log: Path, limit: int = 60) -> str:
    """What a failure message needs of an instance's log: membership, rebuild steps, cards published
    (with their segments), warnings and errors, one short line each."""
    keep = (
        "assigned",
        "revoked",
        "rebuil",
        "reading the history",
        "suggestion published",
        "summary published",
    )
    out = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        msg = str(rec.get("msg", ""))
        if rec.get("level") in ("warning", "error") or any(k in msg for k in keep):
            extra = {
                k: rec[k] for k in ("segments", "records", "calls_waiting", "partitions", "error") if k in rec
            }
            out.append(f"{rec.get('ts', '')[11:23]} {rec.get('level')} {msg} {extra}"[:240])
    return "\n".join(out[-limit:])


def _assigned(log: Path) -> bool:
    return log.exists() and "state rebuilt for assigned partitions" in log.read_text(errors="replace")


def test_takeover_mid_call_no_duplicate_no_lost_suggestion(
    slice_kb: Any, kb_env: dict[str, str], kafka_settings: Any, unique: str, tmp_path: Path
) -> None:
    port_a, port_b = _free_port(), _free_port()
    base = {
        **os.environ,
        **kb_env,
        "DASAN_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "DASAN_KAFKA_MAX_POLL_INTERVAL_MS": "3000",
        "DASAN_ASSIST_GROUP_ID": f"assist-{unique}",
        "DASAN_ASSIST_REBUILD_LOOKBACK_S": "3600",
        "DASAN_LOG_LEVEL": "INFO",
    }
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    calls = [f"tk-{unique}-{i}" for i in range(4)]
    ids = set(calls)
    producer = EventProducer(kafka_settings)
    a = _spawn("A", {**base, "DASAN_ASSIST_HEALTH_PORT": str(port_a)}, log_a)
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: _assigned(log_a), 90, "instance A to join")
        for c in calls:
            producer.send(CallStarted(call_id=c, counselor_id="c1"))
            producer.send(seg(c, f"{c}-s1", Channel.caller, PARKING, 0.0))
            producer.send(seg(c, f"{c}-c1", Channel.counselor, "네, 확인해 드리겠습니다.", 3.0))
        producer.flush()

        def first_done() -> bool:
            got = read_events(kafka_settings, ASSIST_SUGGESTIONS, ids)
            return {s.call_id for s in got if isinstance(s, Suggestion)} == ids

        wait_for(first_done, 60, "A's first suggestions")
        # second question on every call, then A dies at once (SIGKILL: no commit, no goodbye)
        for c in calls:
            producer.send(seg(c, f"{c}-s2", Channel.caller, METER, 10.0))
        producer.flush()
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        b = _spawn("B", {**base, "DASAN_ASSIST_HEALTH_PORT": str(port_b)}, log_b)
        wait_for(lambda: _assigned(log_b), 90, "instance B to take over")
        for c in calls:
            producer.send(seg(c, f"{c}-s3", Channel.caller, ID_CARD, 20.0))
            producer.send(CallEnded(call_id=c))
        producer.flush()
        wait_for(
            lambda: {e.call_id for e in read_events(kafka_settings, CALL_SUMMARIES, ids)} == ids,
            90,
            "a summary of every call",
        )
        expected = {f"{c}-s{i}" for c in calls for i in (1, 2, 3)}

        def carded() -> set[str]:
            got = read_events(kafka_settings, ASSIST_SUGGESTIONS, ids)
            return {s for e in got if isinstance(e, Suggestion) for s in e.trigger_segment_ids}

        # a summary waits for its call's cards, so they are published; the read waits for them to show
        try:
            wait_for(lambda: carded() >= expected, 30, "a card for every caller question on the topic")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nA:\n{_digest(log_a)}\nB:\n{_digest(log_b)}") from None
        with urllib.request.urlopen(f"http://127.0.0.1:{port_b}/healthz", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port_b}/readyz", timeout=5) as r:
            ready = json.loads(r.read())
            assert ready["ready"] is True
            assert ready["calls_waiting_for_rebuild"] == 0  # B replayed every call it took over
            assert ready["partitions_being_read"] == 0  # after reading their whole history
        with urllib.request.urlopen(f"http://127.0.0.1:{port_b}/metrics", timeout=5) as r:
            assert b"dasan_stage_latency_seconds" in r.read()
        b.send_signal(signal.SIGTERM)
        assert b.wait(timeout=30) == 0
    finally:
        producer.close()
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    suggestions = [
        e for e in read_events(kafka_settings, ASSIST_SUGGESTIONS, ids) if isinstance(e, Suggestion)
    ]
    per_segment = Counter(s for e in suggestions for s in e.trigger_segment_ids)
    story = f"\nA:\n{_digest(log_a)}\nB:\n{_digest(log_b)}"
    assert set(per_segment) == expected, f"lost: {expected - set(per_segment)}{story}"
    assert all(n == 1 for n in per_segment.values()), f"shown twice: {per_segment}"
    assert len({e.event_id for e in suggestions}) == len(suggestions)
    # B really took over: it published part of them, and it knew about A's
    assert "suggestion published" in log_b.read_text(errors="replace")
    summaries = read_events(kafka_settings, CALL_SUMMARIES, ids)
    assert len(summaries) == len(calls)


class _SteppedReader:
    """A history read that needs ``steps`` reads to reach its ends, each giving part of ``history``."""

    opened: list[_SteppedReader] = []

    def __init__(self, history: list[Any], steps: int, partitions: list[int]) -> None:
        self.history, self.steps, self.partitions = history, steps, partitions
        self.events: list[Any] = []
        self.reads: list[float] = []
        self.closed = False

    def read(self, budget_s: float) -> bool:
        self.reads.append(budget_s)
        n = len(self.reads)
        per = -(-len(self.history) // self.steps)
        self.events = self.history[: per * n]
        return n >= self.steps

    def close(self) -> None:
        self.closed = True


def test_a_history_read_past_a_ticks_budget_goes_on_next_tick_and_loses_nothing(
    assistant: Any, kafka_settings: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taken-over partition's history read gets a tick's budget at a time and is never cut: its
    live records stay paused until the tracker has the whole history (CI, session 31: a read cut at
    its budget never re-read the transcripts, and the questions the dead member had committed but not
    carded were lost). A revoked partition restarts the read for the partitions kept."""
    from kafka import TopicPartition

    import assist.service as service

    call = f"step-{unique}"
    history = [
        (service.Record(service.CALL_EVENTS, 1, 0, 0), CallStarted(call_id=call, counselor_id="c7")),
        (service.Record(CALL_TRANSCRIPTS, 1, 0, 0), seg(call, "s1", Channel.caller, PARKING, 0.0)),
        (
            service.Record(CALL_TRANSCRIPTS, 1, 1, 0),
            seg(call, "c1", Channel.counselor, "네, 확인해 보겠습니다.", 3.0),
        ),
        (service.Record(CALL_TRANSCRIPTS, 1, 2, 0), seg(call, "s2", Channel.caller, METER, 10.0)),
    ]
    readers: list[_SteppedReader] = []

    def open_reader(settings: Any, topics: Any, partitions: Any, *, since_ms: Any = None) -> _SteppedReader:
        readers.append(_SteppedReader(history, 3, list(partitions)))
        return readers[-1]

    monkeypatch.setattr(service, "PartitionReader", open_reader)
    svc = AssistService(assistant, AssistSettings(group_id=f"assist-{unique}"), kafka_settings, instance="t5")
    paused: list[list[int]] = []
    resumed: list[list[int]] = []
    monkeypatch.setattr(svc.consumer, "pause", lambda parts: paused.append(sorted(parts)))
    monkeypatch.setattr(svc.consumer, "resume", lambda parts: resumed.append(sorted(parts)))
    tps = {TopicPartition(t, p) for t in service.INPUTS for p in (1, 2)}
    try:
        svc.on_assigned(tps)
        assert paused == [[1, 2]]  # nothing of theirs is handled before their history
        svc.tick()
        svc.tick()
        assert svc.rebuild_pending and call not in svc.calls and not resumed
        # a rebalance takes partition 2 away mid-read, gives it back: the read starts again
        svc.on_revoked({tp for tp in tps if tp.partition == 2})
        assert readers[0].closed and svc.rebuild_pending
        svc.tick()
        assert readers[1].partitions == [1] and len(readers[1].reads) == 1
        svc.on_assigned({tp for tp in tps if tp.partition == 2})
        for _ in range(3):
            svc.tick()
        assert readers[2].partitions == [1, 2] and len(readers[2].reads) == 3 and readers[2].closed
        assert resumed == [[1, 2]] and not svc.rebuild_pending
        # every read had the pacer's budget; the tracker had the whole history, and both questions wait
        assert all(b == svc.pacer.budget_s for r in readers for b in r.reads)
        assert svc.calls[call].pending == ["s1", "s2"] and svc.calls[call].counselor_id == "c7"
        svc.tick()
        assert svc.published_suggestions == 1 and call not in {c for c, st in svc.calls.items() if st.pending}
    finally:
        svc.close()


def test_a_stepped_history_read_against_the_broker_reads_every_record_once(
    kafka_settings: Any, unique: str
) -> None:
    """The real reader, a few records a step: it goes on where it stopped and ends at the offsets it saw
    when it opened, though more records arrive meanwhile."""
    from streaming.kafka import PartitionReader

    call = f"rd-{unique}"
    with EventProducer(kafka_settings) as p:
        for i in range(12):
            p.send(seg(call, f"s{i}", Channel.caller, PARKING, float(i)))
        p.flush()
    part = next(rec.partition for rec in read_records(kafka_settings, CALL_TRANSCRIPTS, {call}))
    small = kafka_settings.model_copy(update={"max_poll_records": 3})
    reader = PartitionReader(small, [CALL_TRANSCRIPTS], [part])
    try:
        steps = 0
        while not reader.read(0.0):
            steps += 1
            if steps == 1:  # records produced after it opened are the live consumer's
                with EventProducer(kafka_settings) as p:
                    p.send(seg(call, "late", Channel.caller, PARKING, 99.0))
                    p.flush()
        mine = [
            ev.segment_id
            for _r, ev in reader.events
            if isinstance(ev, TranscriptSegment) and ev.call_id == call
        ]
    finally:
        reader.close()
    assert steps >= 2
    assert mine == [f"s{i}" for i in range(12)]
