"""Schema evolution during a rolling upgrade: an old consumer reads a newer producer's events.

A newer producer of the same major version may add optional fields (docs/streaming.md). These tests
simulate that producer by adding fields to the JSON this version writes (top level, nested models,
the audio header), and check that this version's consumer, against a real broker, handles those
events instead of dead-lettering them, while a newer *major* version still goes to the DLQ.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from streaming.codec import DecodeError, decode, encode, read_dead_letter
from streaming.events import SCHEMA_VERSION, CallEnded, RetrievedPassage
from streaming.kafka import EventConsumer, EventProducer

from ..streaming.test_contracts import examples
from ..streaming.test_kafka import consume_until, make_topic, read_dlq


def _newer(event, extra: dict, nested: dict | None = None) -> tuple[bytes, bytes, list]:
    """The event as a newer producer of the same major version would write it."""
    key, value, headers = encode(event)
    if event.type == "audio_frame":
        meta = {**json.loads(dict(headers)["dasan-meta"]), **extra}
        headers = [(k, json.dumps(meta).encode() if k == "dasan-meta" else v) for k, v in headers]
        return key, value, headers
    data = {**json.loads(value), **extra}
    for path, fields in (nested or {}).items():
        node = data
        for part in path.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        node.update(fields)
    return key, json.dumps(data, ensure_ascii=False).encode(), headers


def test_every_event_type_with_a_new_optional_field_decodes() -> None:
    for event in examples():
        key, value, headers = _newer(event, {"added_in_a_later_release": {"any": ["shape", 1]}})
        ignored: list[str] = []
        back = decode(value, headers, key, ignored=ignored)
        assert back == event
        assert ignored == [f"{type(event).__name__}.added_in_a_later_release"]


def test_new_fields_inside_nested_models_are_dropped_too() -> None:
    suggestion = next(e for e in examples() if e.type == "suggestion")
    summary = next(e for e in examples() if e.type == "call_summary")
    for event, nested in (
        (
            suggestion,
            {
                "passages.0": {"rerank_score": 0.7},
                "draft": {"style": "brief"},
                "draft.sentences.0": {"confidence": 0.9},
                "latency": {"rerank_ms": 3.0},
            },
        ),
        (summary, {"actions.0": {"due": "2026-08-01"}}),
    ):
        ignored: list[str] = []
        assert decode(*_newer(event, {}, nested)[1:], ignored=ignored) == event
        assert len(ignored) == len(nested), ignored


def test_producers_stay_strict() -> None:
    suggestion = next(e for e in examples() if e.type == "suggestion")
    with pytest.raises(ValidationError, match="Extra inputs"):
        CallEnded(call_id="c-1", hold_time_s=3.0)  # type: ignore[call-arg]  # the unknown field is the point
    with pytest.raises(ValidationError, match="Extra inputs"):
        RetrievedPassage.model_validate({**suggestion.passages[0].model_dump(), "typo_field": 1})
    # what this version writes never carries a field it does not declare
    for event in examples():
        _, value, headers = encode(event)
        if event.type != "audio_frame":
            assert set(json.loads(value)) == set(type(event).model_fields)


def test_a_newer_major_version_is_still_refused() -> None:
    event = CallEnded(call_id="c-1")
    key, value, headers = _newer(event, {"schema_version": SCHEMA_VERSION + 1, "new_meaning": 1})
    with pytest.raises(DecodeError) as exc:
        decode(value, headers, key)
    assert exc.value.reason == "unsupported_schema_version"


def test_unknown_fields_do_not_relax_the_known_ones() -> None:
    """Tolerance is for names this version does not know; a known field still has to be valid."""
    key, value, headers = _newer(CallEnded(call_id="c-1"), {"duration_s": -1, "new_field": 1})
    with pytest.raises(DecodeError) as exc:
        decode(value, headers, key)
    assert exc.value.reason == "invalid_schema"


def test_an_old_consumer_reads_a_newer_event_from_the_broker(kafka_settings, unique) -> None:
    """The rolling-upgrade case of issue 14: a CallEnded with one new field, and friends."""
    topic = f"evolve.{unique}"
    make_topic(kafka_settings, topic, 1)
    cid = f"evo-{unique}"
    events = [e.model_copy(update={"call_id": cid}) for e in examples()]
    ended = next(e for e in events if e.type == "call_ended")
    suggestion = next(e for e in events if e.type == "suggestion")
    with EventProducer(kafka_settings) as producer:
        producer.send_raw(topic, *_newer(ended, {"hold_time_s": 12.5}))
        producer.send_raw(topic, *_newer(suggestion, {"rerank_model": "x"}, {"passages.0": {"rerank": 1}}))
        audio = next(e for e in events if e.type == "audio_frame")
        producer.send_raw(topic, *_newer(audio, {"gain_db": -3}))
        # a newer major version: the one thing an old consumer must not read
        producer.send_raw(topic, *_newer(events[0], {"schema_version": SCHEMA_VERSION + 1}))
    got: list = []
    consumer = EventConsumer([topic], f"evolve-{unique}", lambda e, r: got.append(e), kafka_settings)
    try:
        consume_until(consumer, lambda: len(got) == 3 and consumer.dead_lettered == 1)
    finally:
        consumer.close()
    assert got == [ended, suggestion, audio]
    assert consumer.unknown_fields == 3
    dead = read_dlq(kafka_settings, topic, 1)
    assert [read_dead_letter(r.headers)["dlq-reason"] for r in dead] == ["unsupported_schema_version"]
