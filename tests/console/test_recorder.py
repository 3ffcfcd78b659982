"""The recorder against the real broker: every topic lands in the store; redelivered events
(duplicates on the topic, a second consumer group replaying everything) add no rows."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from console.hub import Hub
from console.models import CallEvent
from console.recorder import Recorder
from console.store import Store
from streaming.kafka import EventProducer
from tests.util import wait_for


def _count(store: Store, call_id: str) -> int:
    with store.sessions() as s:
        return s.scalar(select(func.count()).select_from(CallEvent).where(CallEvent.call_id == call_id)) or 0


def test_recorder_writes_all_topics_idempotently(
    kafka_settings, store: Store, call_script, unique: str
) -> None:
    script = call_script()
    events = script.full()
    with EventProducer(kafka_settings) as producer:
        for e in events:
            producer.send(e)
        producer.flush()
    rec = Recorder(store, Hub(), kafka_settings, group_id=f"console-recorder-{unique}")
    rec.start()
    try:
        wait_for(lambda: _count(store, script.call_id) == len(events), 90, "all events recorded")
        # The same events again, as a producer retry or an upstream replay would send them.
        with EventProducer(kafka_settings) as producer:
            for e in events[3:]:
                producer.send(e)
            producer.flush()
        marker = script.segment(99, "마지막 문장", t=20)
        with EventProducer(kafka_settings) as producer:
            producer.send(marker)
            producer.flush()
        wait_for(lambda: _count(store, script.call_id) == len(events) + 1, 90, "the marker event")
    finally:
        rec.stop()
    # A second group reads every topic from the start: all of this call's events are redeliveries.
    rec2 = Recorder(store, None, kafka_settings, group_id=f"console-recorder-{unique}-b")
    rec2.start()
    try:
        wait_for(lambda: rec2.redelivered >= len(events) + 1, 90, "the replay")
    finally:
        rec2.stop()
    assert _count(store, script.call_id) == len(events) + 1
    items = store.events_after(script.call_id, 0)
    assert [i["seq"] for i in items] == list(range(1, len(events) + 2))
    call = store.get_call(script.call_id)
    assert call.counselor_id == "kim" and call.ended_at is not None
    assert store.summary_for_call(script.call_id) is not None


def test_recorder_reports_unhealthy_and_recovers_after_broker_restart(store: Store, call_script) -> None:
    """A broker of its own (the session broker must stay up): stop it, start it again on the same port."""
    if store.engine.dialect.name != "sqlite":
        pytest.skip("about the broker, not the database: once is enough")
    from streaming.admin import create_topics
    from streaming.broker import LocalBroker, free_port
    from streaming.settings import KafkaSettings

    port = free_port()
    broker = LocalBroker(port=port)
    broker.start()
    try:
        ks = KafkaSettings(bootstrap=broker.bootstrap, max_poll_interval_ms=3000)
        create_topics(ks)
        script = call_script()
        rec = Recorder(store, Hub(), ks, group_id="console-recorder-restart")
        rec.start()
        try:
            first = script.started()
            with EventProducer(ks) as p:
                p.send(first)
            wait_for(lambda: store.last_seq(script.call_id) == 1, 90, "the first event")
            wait_for(rec.healthy, 90, "a healthy recorder")
            broker.stop()
            wait_for(lambda: not rec.healthy(), 90, "the recorder to notice the broker is gone")
            broker = LocalBroker(port=port)
            broker.start()
            create_topics(ks)
            # Tansu keeps its log in memory, so the restarted broker is empty, where a real Kafka
            # would still hold the first record. The recorder's fetch position (1) is then the end
            # of the partition: a new record at offset 0 would be behind it and never fetched.
            # Put back what a real broker would hold (the same event again: a redelivery the
            # recorder absorbs), then send the new one.
            with EventProducer(ks) as p:
                p.send(first)
                p.send(script.segment(1, "브로커가 다시 살아난 뒤의 문장", t=1))
            wait_for(lambda: store.last_seq(script.call_id) == 2, 90, "the event after the restart")
            wait_for(rec.healthy, 90, "the recorder to report healthy again")
        finally:
            rec.stop()
    finally:
        broker.stop()
