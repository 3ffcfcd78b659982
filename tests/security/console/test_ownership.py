"""Issue 14, call ownership: a second ``CallStarted`` for a call already started must not move the
call to another counselor, team or caller. The real recorder on the real broker: the forged start
goes to ``call.events.dlq`` with reason ``owner_conflict``, the stored call is unchanged; the same
event delivered again, or a start with the same owner, changes nothing and is not dead-lettered."""

from __future__ import annotations

from console.hub import Hub
from console.recorder import OWNER_CONFLICTS, Recorder
from console.store import OwnerConflict, Store
from streaming.codec import read_dead_letter
from streaming.events import CallStarted
from streaming.kafka import EventProducer
from streaming.settings import KafkaSettings
from streaming.topics import CALL_EVENTS, dlq_name
from tests.kafka_util import read_records
from tests.util import wait_for


def _dead_letters(kafka: KafkaSettings, topic: str, call_id: str) -> list[tuple[bytes, dict[str, str]]]:
    """(value, dlq-* headers) of every dead letter of ``call_id`` on ``topic``."""
    return [(r.value, read_dead_letter(list(r.headers or []))) for r in read_records(kafka, topic, {call_id})]


def test_forged_call_started_is_dead_lettered_and_the_call_unchanged(
    kafka_settings, store: Store, call_script, unique: str
) -> None:
    script = call_script(counselor="kim", team="A", caller_key="k" * 64)
    real = script.started()
    forged = CallStarted(
        call_id=script.call_id,
        counselor_id="mallory",
        team="Z",
        caller_key="f" * 64,
        caller_number_masked="010-****-9999",
        started_at=script.t0,
    )
    same_owner = CallStarted(  # a new event id, the same owner: accepted
        call_id=script.call_id, counselor_id="kim", team="A", caller_key="k" * 64, started_at=script.t0
    )
    conflicts0 = OWNER_CONFLICTS._value.get()
    rec = Recorder(store, Hub(), kafka_settings, group_id=f"console-recorder-{unique}")
    rec.start()
    try:
        with EventProducer(kafka_settings) as p:
            p.send(real)
            p.send(script.segment(1, "첫 문장", t=1))
        wait_for(lambda: store.last_seq(script.call_id) == 2, 90, "the real start")
        with EventProducer(kafka_settings) as p:
            p.send(forged)
            p.send(real)  # the same event again: a redelivery
            p.send(same_owner)
            p.send(script.segment(2, "표시 문장", t=2))
        wait_for(lambda: store.last_seq(script.call_id) == 4, 90, "the events after the forgery")
    finally:
        rec.stop()
    call = store.get_call(script.call_id)
    assert (call.counselor_id, call.team, call.caller_key) == ("kim", "A", "k" * 64)
    assert call.caller_number_masked == "010-****-5678"
    types = [i["event"]["type"] for i in store.events_after(script.call_id, 0)]
    assert sorted(types) == ["call_started", "call_started", "segment", "segment"]  # two topics: any order
    # (at least: a new group also reads earlier tests' forgeries from the start of the topic)
    assert OWNER_CONFLICTS._value.get() >= conflicts0 + 1
    letters = _dead_letters(kafka_settings, dlq_name(CALL_EVENTS), script.call_id)
    assert len(letters) == 1, letters
    value, dl = letters[0]
    assert dl["dlq-reason"] == "owner_conflict"
    assert "counselor_id" in dl["dlq-error"] and "team" in dl["dlq-error"] and "caller_key" in dl["dlq-error"]
    assert "mallory" not in dl["dlq-error"]  # names of fields, not values
    assert forged.event_id.encode() in value


def test_owner_conflict_in_the_store(store: Store, call_script) -> None:
    """The store refuses it in one batch too (a forged start right after the real one), on both databases."""
    script = call_script(counselor="kim", team="A")
    forged = CallStarted(call_id=script.call_id, counselor_id="kim", team="B", started_at=script.t0)
    try:
        store.record_many([script.started(), forged])
    except OwnerConflict as exc:
        assert exc.fields == ["team"]
    else:
        raise AssertionError("the forged start was recorded")
    assert store.last_seq(script.call_id) == 0  # the batch was refused whole; the recorder retries one by one
    store.record(script.started())
    try:
        store.record(forged)
        raise AssertionError("the forged start was recorded")
    except OwnerConflict:
        pass
    assert store.get_call(script.call_id).team == "A" and store.last_seq(script.call_id) == 1
