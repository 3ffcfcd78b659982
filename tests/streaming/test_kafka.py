"""The Kafka plumbing against a real broker (Tansu): round trips, ordering, group takeover, DLQ."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from streaming.admin import admin_client
from streaming.codec import OversizedMessage, encode, read_dead_letter
from streaming.events import AudioFrame, Channel, Codec, Event, TranscriptSegment
from streaming.kafka import EventConsumer, EventProducer
from streaming.topics import CALL_EVENTS, CALL_TRANSCRIPTS
from tests.util import wait_for

from .test_contracts import examples

HERE = Path(__file__).parent


def revision(e: Event) -> int:
    assert isinstance(e, TranscriptSegment)
    return e.revision


def make_topic(settings, name: str, partitions: int) -> None:
    admin = admin_client(settings)
    try:
        admin.create_topics([NewTopic(name, partitions, 1), NewTopic(f"{name}.dlq", 1, 1)])
    finally:
        admin.close()


def consume_until(consumer: EventConsumer, predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        consumer.poll_once(200)
        if predicate():
            return
    raise AssertionError("timed out waiting for events")


def segment(call_id: str, i: int) -> TranscriptSegment:
    return TranscriptSegment(
        call_id=call_id,
        segment_id=f"{call_id}-{i}",
        channel=Channel.caller,
        start_s=i,
        end_s=i + 1,
        text=f"발화 {i}",
        is_final=True,
        revision=i,
        asr_model="test",
    )


def read_dlq(settings, topic: str, expect: int, timeout_s: float = 20.0) -> list:
    c = KafkaConsumer(**settings.common_config(), auto_offset_reset="earliest", enable_auto_commit=False)
    tps = [TopicPartition(f"{topic}.dlq", p) for p in c.partitions_for_topic(f"{topic}.dlq") or [0]]
    c.assign(tps)
    c.seek_to_beginning()
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expect and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=300).values():
            out.extend(recs)
    c.close()
    return out


def test_round_trip_of_every_event_type(kafka_settings, unique) -> None:
    events = []
    for e in examples():
        events.append(e.model_copy(update={"call_id": f"rt-{unique}"}))
    got: list = []
    consumer = EventConsumer(
        ["call.events", "call.audio", "call.transcripts", "assist.suggestions", "call.summaries"],
        f"rt-{unique}",
        lambda e, r: got.append(e) if e.call_id == f"rt-{unique}" else None,
        kafka_settings,
    )
    with EventProducer(kafka_settings) as producer:
        for e in events:
            producer.send(e).get(timeout=10)
    consume_until(consumer, lambda: len(got) >= len(events))
    consumer.close()
    assert sorted(got, key=lambda e: e.event_id) == sorted(events, key=lambda e: e.event_id)


def test_per_call_order_is_kept_across_partitions(kafka_settings, unique) -> None:
    topic = f"order.{unique}"
    make_topic(kafka_settings, topic, 6)
    calls = [f"ord-{unique}-{i}" for i in range(12)]
    with EventProducer(kafka_settings) as producer:
        for i in range(20):  # interleave calls
            for cid in calls:
                producer.send(segment(cid, i), topic=topic)
    seen: dict[str, list[int]] = {c: [] for c in calls}
    partitions: dict[str, set[int]] = {c: set() for c in calls}

    def handle(e, r) -> None:
        seen[e.call_id].append(e.revision)
        partitions[e.call_id].add(r.partition)

    consumer = EventConsumer([topic], f"order-{unique}", handle, kafka_settings)
    consume_until(consumer, lambda: sum(map(len, seen.values())) >= 240)
    consumer.close()
    assert all(seen[c] == list(range(20)) for c in calls)
    assert all(len(p) == 1 for p in partitions.values()), "a call's events must stay on one partition"
    assert len(set().union(*partitions.values())) > 1, "calls should spread over partitions"


def test_group_takeover_after_a_member_is_killed(kafka_settings, unique, tmp_path) -> None:
    topic = f"takeover.{unique}"
    make_topic(kafka_settings, topic, 6)
    group = f"takeover-{unique}"
    sink, logf = tmp_path / "sink.db", tmp_path / "consumers.log"
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}

    def spawn(name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                str(HERE / "consumer_proc.py"),
                kafka_settings.bootstrap,
                topic,
                group,
                str(sink),
                str(logf),
                name,
            ],
            env=env,
            stderr=open(tmp_path / f"{name}.err", "w"),
        )

    def joined(line: str, procs: list[subprocess.Popen], seconds: float) -> None:
        # Members join one after the other: a join waits out the group's rebalance timeout on
        # Tansu (max.poll.interval), and two members racing into an empty group can take several
        # rounds there. Failure messages carry each member's log and stderr.
        def logged() -> bool:
            if any(p.poll() is not None for p in procs):
                raise AssertionError("a member exited")
            return line in (logf.read_text() if logf.exists() else "")

        try:
            wait_for(logged, seconds, repr(line))
        except AssertionError as exc:
            errs = {
                n: (tmp_path / f"{n}.err").read_text()[-2000:]
                for n in ("A", "B")
                if (tmp_path / f"{n}.err").exists()
            }
            pytest.fail(
                f"no {line!r} ({exc}): log={logf.read_text() if logf.exists() else ''!r} stderr={errs}"
            )

    a = spawn("A")
    b: subprocess.Popen | None = None
    try:
        joined("assigned A", [a], 90)
        b = spawn("B")
        joined("assigned B", [a, b], 90)
        # Both members share the partitions.
        n_calls, per_call = 30, 20
        total = n_calls * per_call
        with EventProducer(kafka_settings) as producer:
            for i in range(per_call):
                for c in range(n_calls):
                    producer.send(segment(f"tk-{unique}-{c}", i), topic=topic)
                producer.flush()
                if i == per_call // 2:
                    time.sleep(1.0)  # let both members work, then kill A mid-stream without a commit
                    a.send_signal(signal.SIGKILL)
                    a.wait(10)
                time.sleep(0.05)

        def counts() -> tuple[int, int, dict[str, int]]:
            db = sqlite3.connect(sink, timeout=30)
            try:
                distinct = db.execute("SELECT COUNT(*) FROM handled").fetchone()[0]
                deliveries = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
                by = dict(
                    db.execute("SELECT consumer, COUNT(*) FROM deliveries GROUP BY consumer").fetchall()
                )
                return distinct, deliveries, by
            finally:
                db.close()

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and counts()[0] < total:
            time.sleep(0.5)
        distinct, deliveries, by = counts()
        assert distinct == total, f"lost events: {total - distinct} of {total}"
        assert by.get("A", 0) > 0 and by.get("B", 0) > 0, f"both members should have worked: {by}"
        assert deliveries >= distinct  # redeliveries after the kill are absorbed by the idempotent sink
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
    assert b is not None and b.returncode == 0, "the surviving member stops cleanly on SIGTERM"
    assert "stopped B" in logf.read_text()


def test_poison_messages_go_to_the_dlq_and_processing_continues(kafka_settings, unique) -> None:
    topic = f"poison.{unique}"
    make_topic(kafka_settings, topic, 1)
    cid = f"p-{unique}"
    good1, good2 = segment(cid, 1), segment(cid, 2)
    future = json.loads(encode(segment(cid, 3))[1])
    future["schema_version"] = 99
    with EventProducer(kafka_settings) as producer:
        producer.send(good1, topic=topic)
        producer.send_raw(
            topic, cid.encode(), b"{definitely not json", [("event_type", b"transcript_segment")]
        )
        producer.send_raw(topic, cid.encode(), json.dumps(future).encode(), [])
        producer.send_raw(
            topic,
            cid.encode(),
            json.dumps({"type": "transcript_segment", "call_id": cid, "schema_version": 1}).encode(),
            [],
        )
        producer.send_raw(topic, cid.encode(), b"\x00\x01\x02", [("event_type", b"audio_frame")])
        producer.send(good2, topic=topic)
    got: list = []

    def handle(e, r) -> None:
        if e.revision == 2 and not got:
            raise AssertionError("unreachable ordering")  # good1 must come first
        got.append(e)

    consumer = EventConsumer([topic], f"poison-{unique}", handle, kafka_settings)
    consume_until(consumer, lambda: len(got) == 2 and consumer.dead_lettered == 4)
    consumer.close()
    assert [e.revision for e in got] == [1, 2]
    dead = read_dlq(kafka_settings, topic, 4)
    reasons = sorted(read_dead_letter(r.headers)["dlq-reason"] for r in dead)
    assert reasons == ["invalid_json", "invalid_schema", "missing_header", "unsupported_schema_version"]
    first = next(r for r in dead if read_dead_letter(r.headers)["dlq-reason"] == "invalid_json")
    meta = read_dead_letter(first.headers)
    assert first.value == b"{definitely not json"  # raw bytes kept
    assert meta["dlq-source-topic"] == topic and meta["dlq-source-offset"] == "1"


def test_a_failing_handler_is_retried_then_dead_lettered(kafka_settings, unique) -> None:
    topic = f"fail.{unique}"
    make_topic(kafka_settings, topic, 1)
    cid = f"f-{unique}"
    attempts: list[int] = []
    ok: list[int] = []

    def handle(e, r) -> None:
        if e.revision == 1:
            attempts.append(1)
            raise RuntimeError("downstream exploded")
        ok.append(e.revision)

    with EventProducer(kafka_settings) as producer:
        for i in range(3):
            producer.send(segment(cid, i), topic=topic)
    consumer = EventConsumer([topic], f"fail-{unique}", handle, kafka_settings, handler_attempts=3)
    consume_until(consumer, lambda: ok == [0, 2])
    consumer.close()
    assert len(attempts) == 3
    dead = read_dlq(kafka_settings, topic, 1)
    assert read_dead_letter(dead[0].headers)["dlq-reason"] == "handler_error"
    assert "downstream exploded" in read_dead_letter(dead[0].headers)["dlq-error"]


def test_redelivered_events_are_deduplicated(kafka_settings, unique) -> None:
    topic = f"dup.{unique}"
    make_topic(kafka_settings, topic, 1)
    cid = f"d-{unique}"
    e = segment(cid, 7)
    with EventProducer(kafka_settings) as producer:
        for _ in range(3):
            producer.send(e, topic=topic)  # the same event id three times (a producer retry, a replay)
        producer.send(segment(cid, 8), topic=topic)
    got: list = []
    consumer = EventConsumer([topic], f"dup-{unique}", lambda ev, r: got.append(revision(ev)), kafka_settings)
    consume_until(consumer, lambda: 8 in got)
    consumer.close()
    assert got == [7, 8] and consumer.duplicates == 2


def test_dedupe_forgets_the_ids_of_revoked_partitions() -> None:
    """Records a partition delivers again after it was revoked and reassigned are handled again
    (the handler may have dropped its state for that partition); other partitions stay deduped."""
    from streaming.kafka import Dedupe

    d = Dedupe(10)
    assert not d.seen("a", "p0") and not d.seen("b", "p1")
    assert d.seen("a", "p0")
    d.forget({"p0"})
    assert not d.seen("a", "p0") and d.seen("b", "p1")


def test_oversized_message_is_refused_before_sending(kafka_settings, unique) -> None:
    frame = AudioFrame(
        call_id=f"o-{unique}",
        channel=Channel.caller,
        seq=0,
        codec=Codec.pcm_s16le,
        sample_rate=16000,
        capture_ts=0,
        audio=b"\0" * (50 * 1024 * 1024),
    )
    with EventProducer(kafka_settings) as producer, pytest.raises(OversizedMessage):
        producer.send(frame)


def test_committed_offsets_survive_a_restart_of_the_consumer(kafka_settings, unique) -> None:
    topic = f"commit.{unique}"
    make_topic(kafka_settings, topic, 2)
    cid = f"cm-{unique}"
    with EventProducer(kafka_settings) as producer:
        for i in range(5):
            producer.send(segment(cid, i), topic=topic)
    first: list[int] = []
    c1 = EventConsumer([topic], f"commit-{unique}", lambda e, r: first.append(revision(e)), kafka_settings)
    consume_until(c1, lambda: len(first) == 5)
    c1.close()  # commits and leaves
    with EventProducer(kafka_settings) as producer:
        for i in range(5, 8):
            producer.send(segment(cid, i), topic=topic)
    second: list[int] = []
    c2 = EventConsumer([topic], f"commit-{unique}", lambda e, r: second.append(revision(e)), kafka_settings)
    consume_until(c2, lambda: len(second) >= 3)
    c2.close()
    assert second == [5, 6, 7]


def test_a_poll_loop_that_overruns_its_interval_has_its_commit_refused_and_counted(
    kafka_settings, unique
) -> None:
    """What a slow core did to the assist before its batches were paced (docs/assist.md): the work
    between two polls outlasts max.poll.interval, the group drops the member, and the commit of that
    batch is refused. The refusal is counted (attribute and metric) and the records come again."""
    from streaming import metrics

    topic = f"overrun.{unique}"
    make_topic(kafka_settings, topic, 1)
    with EventProducer(kafka_settings) as producer:
        for i in range(3):
            producer.send(segment(f"ov-{unique}", i), topic=topic)
    group = f"overrun-{unique}"
    seen: list[int] = []
    slow = [True]

    def handle(e: Event, r) -> None:
        seen.append(revision(e))
        if slow[0]:  # the first record's work outlasts the 1 s interval by far
            slow[0] = False
            time.sleep(4.0)

    refused = metrics.COMMIT_FAILURES.labels(group=group)
    before = refused._value.get()
    c = EventConsumer([topic], group, handle, kafka_settings, max_poll_interval_ms=1000, max_poll_records=1)
    try:
        consume_until(c, lambda: c.commit_failures >= 1, timeout_s=40)
        assert refused._value.get() == before + 1
        consume_until(c, lambda: len(seen) >= 4, timeout_s=40)
        assert seen.count(0) == 2  # the batch whose commit was refused is delivered again
    finally:
        c.close()


def test_topics_create_is_idempotent(kafka_settings) -> None:
    from streaming.admin import create_topics, describe_topics

    assert set(create_topics(kafka_settings).values()) == {"exists"}
    have = describe_topics(kafka_settings)
    assert have[CALL_EVENTS] == 12 and have[CALL_TRANSCRIPTS] == 12 and have[f"{CALL_EVENTS}.dlq"] == 3


def test_two_topics_are_co_partitioned_within_a_group(kafka_settings, unique) -> None:
    """A member gets the same partition numbers of every input topic, so it sees a call's events
    and its audio/transcripts (keyed by call id) together."""
    import threading

    t1, t2 = f"cop1.{unique}", f"cop2.{unique}"
    make_topic(kafka_settings, t1, 6)
    make_topic(kafka_settings, t2, 6)
    members = [EventConsumer([t1, t2], f"cop-{unique}", lambda e, r: None, kafka_settings) for _ in range(2)]
    stop = threading.Event()

    def spin(c: EventConsumer) -> None:
        while not stop.is_set():
            c.poll_once(100)

    threads = [threading.Thread(target=spin, args=(c,), daemon=True) for c in members]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 40
    try:
        while time.monotonic() < deadline:
            parts = [c.assignment() for c in members]
            if all(parts) and sum(len(p) for p in parts) == 12:
                break
            time.sleep(0.2)
        for p in parts:
            assert {tp.partition for tp in p if tp.topic == t1} == {
                tp.partition for tp in p if tp.topic == t2
            }
            assert p
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for c in members:
            c.close()


def test_commit_limits_hold_back_offsets_until_the_work_is_done(kafka_settings, unique) -> None:
    """A handler that keeps records in memory (an utterance not yet final) caps the committed
    offset; a member that takes over re-reads from the cap, and the cap lifts once work is done."""
    topic = f"cap.{unique}"
    make_topic(kafka_settings, topic, 1)
    tp = TopicPartition(topic, 0)
    cid = f"cap-{unique}"
    with EventProducer(kafka_settings) as producer:
        for i in range(6):
            producer.send(segment(cid, i), topic=topic)
    pending: dict[int, int] = {}  # revision → offset, for records still "in memory"

    def handler(e, r) -> None:
        pending[e.revision] = r.offset

    def limits() -> dict[TopicPartition, int]:
        return {tp: min(pending.values())} if pending else {}

    group = f"cap-{unique}"
    c1 = EventConsumer([topic], group, handler, kafka_settings, commit_limits=limits)
    consume_until(c1, lambda: len(pending) == 6)
    for rev in (0, 1):  # the first two are done; records 2.. are still in memory
        pending.pop(rev)
    c1.poll_once(100)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and c1._committed.get(tp) != 2:
        c1.poll_once(100)
    assert c1._committed.get(tp) == 2, "the cap did not move up when the first records were done"
    c1.close()  # a clean stop also commits no further than the cap
    seen: list[int] = []
    c2 = EventConsumer([topic], group, lambda e, r: seen.append(revision(e)), kafka_settings)
    consume_until(c2, lambda: len(seen) >= 4)
    c2.close()
    assert seen == [2, 3, 4, 5]


def test_read_partitions_reads_a_range_and_stops_at_the_ends_it_saw(kafka_settings, unique) -> None:
    """The takeover helper: a range of partitions from a time, an offset or the beginning, outside any
    group, up to the end offsets taken at the start, even while a producer keeps writing."""
    import threading

    from kafka import KafkaProducer

    from streaming.kafka import read_partitions

    topic = f"range.{unique}"
    make_topic(kafka_settings, topic, 2)
    base = int(time.time() * 1000) - 100_000
    raw = KafkaProducer(**kafka_settings.producer_config())
    for part, call, n in ((0, f"r0-{unique}", 10), (1, f"r1-{unique}", 5)):
        for i in range(n):
            key, value, headers = encode(segment(call, i), kafka_settings.max_message_bytes)
            raw.send(
                topic, key=key, value=value, headers=headers, partition=part, timestamp_ms=base + i * 1000
            )
    raw.send(topic, key=b"junk", value=b"\x00not an event", partition=0, timestamp_ms=base + 9500)
    raw.flush()

    def revisions(got, part=None) -> list[int]:
        return [ev.revision for rec, ev in got if part is None or rec.partition == part]

    everything = read_partitions(kafka_settings, [topic], [0, 1, 7])  # 7: no such partition
    assert revisions(everything, 0) == list(range(10)) and revisions(everything, 1) == list(range(5))
    assert all(rec.topic == topic for rec, _ in everything)
    assert revisions(read_partitions(kafka_settings, [topic], [1])) == list(range(5))
    # from a time: partition 1 has nothing that recent
    assert revisions(read_partitions(kafka_settings, [topic], [0, 1], since_ms=base + 5000)) == [
        5,
        6,
        7,
        8,
        9,
    ]
    # from an offset (partition 1 not named: from its beginning)
    got = read_partitions(kafka_settings, [topic], [0, 1], start_offsets={TopicPartition(topic, 0): 7})
    assert revisions(got, 0) == [7, 8, 9] and revisions(got, 1) == list(range(5))

    stop, sent = threading.Event(), [0]

    def talk() -> None:
        with EventProducer(kafka_settings) as p:
            while not stop.is_set() and sent[0] < 600:  # at most 30 s of a busy call
                p.send(segment(f"r0-{unique}", 100 + sent[0]), topic=topic).get(timeout=10)
                sent[0] += 1
                time.sleep(0.05)

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    try:
        deadline = time.monotonic() + 20
        while sent[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        live = read_partitions(kafka_settings, [topic], [0, 1])
        still_talking = talker.is_alive()
    finally:
        stop.set()
        talker.join(10)
        raw.close()
    assert still_talking, "the read waited for the producer to fall silent"
    assert len(live) >= 15 + 20


@pytest.mark.parametrize("interval_ms", [3000, None, 300_000])
def test_a_rebuild_read_ends_inside_the_poll_interval(interval_ms: int | None) -> None:
    """A state rebuild runs inside the poll loop: its read budget must leave the batch after it
    time before the group's max.poll.interval (the e2e tests run with 3 s, development 6 s,
    production 300 s), or a loaded machine rejoins and re-reads forever."""
    from streaming.kafka import read_budget_s
    from streaming.settings import KafkaSettings

    for env in ("development", "production"):
        s = KafkaSettings(env=env, max_poll_interval_ms=interval_ms)
        assert 0 < read_budget_s(s) <= s.poll_interval_ms / 1000 / 2
