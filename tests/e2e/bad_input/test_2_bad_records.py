"""2. Bad records on every topic of the registry reach the DLQ of every consumer group that reads it;
a good call goes all the way through afterwards, on the same partitions (see the package docstring)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from websockets.sync.client import connect

from streaming.codec import encode, read_dead_letter
from streaming.events import (
    AudioFrame,
    CallStarted,
    CallSummary,
    Channel,
    Codec,
    KeywordsUpdated,
    TranscriptSegment,
    TranscriptSource,
)
from streaming.kafka import EventProducer
from streaming.privacy import mask_text
from streaming.topics import (
    ASSIST_SUGGESTIONS,
    ASSIST_SUGGESTIONS_SHADOW,
    CALL_AUDIO,
    CALL_EVENTS,
    CALL_SUMMARIES,
    CALL_TRANSCRIPTS,
    TOPICS,
    dlq_name,
)
from tests.util import wait_for

from .harness import CONSUMERS, COUNSELOR, BadInputStack, Rec, start_msg

pytestmark = pytest.mark.slow


def pipeline_call_id(stack: BadInputStack) -> str:
    return f"pipe-{stack.suffix}"


def partition_of(key: str, partitions: int = 12) -> int:
    """The default partitioner's choice (kafka-python and the Java client agree)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _valid_event(topic: str, call_id: str) -> Any:
    if topic == CALL_EVENTS:
        return CallStarted(call_id=call_id, counselor_id=COUNSELOR, team="A")
    if topic == CALL_AUDIO:
        return AudioFrame(
            call_id=call_id,
            channel=Channel.caller,
            seq=0,
            codec=Codec.pcm_s16le,
            sample_rate=8000,
            capture_ts=0.0,
            audio=b"\x00\x00" * 160,
        )
    if topic == CALL_TRANSCRIPTS:
        return TranscriptSegment(
            call_id=call_id,
            segment_id=f"{call_id}-s0",
            channel=Channel.caller,
            start_s=0,
            end_s=1,
            text="주차 문의요",
            is_final=True,
            asr_model="test",
        )
    if topic in (ASSIST_SUGGESTIONS, ASSIST_SUGGESTIONS_SHADOW):
        return KeywordsUpdated(call_id=call_id, keywords=["주차"])
    if topic == CALL_SUMMARIES:
        return CallSummary(
            call_id=call_id,
            summary_id=f"{call_id}-sum",
            category="기타",
            call_reason="문의",
            generator="test",
        )
    raise AssertionError(f"no valid event for {topic}: add one (and its consumers to CONSUMERS)")


# an event type that exists, but that the topic does not carry
_WRONG_TYPE = {
    CALL_EVENTS: CALL_SUMMARIES,
    CALL_AUDIO: CALL_EVENTS,
    CALL_TRANSCRIPTS: CALL_EVENTS,
    ASSIST_SUGGESTIONS: CALL_SUMMARIES,
    CALL_SUMMARIES: ASSIST_SUGGESTIONS,
    ASSIST_SUGGESTIONS_SHADOW: CALL_EVENTS,
}


@dataclass
class Bad:
    case: str
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]
    reason: str
    offset: int = -1


def _with(headers: list[tuple[str, bytes]], **repl: bytes) -> list[tuple[str, bytes]]:
    """The headers with some values replaced (``dasan_meta=`` replaces ``dasan-meta``)."""
    return [(k, repl.get(k.replace("-", "_"), v)) for k, v in headers]


def bad_records(topic: str, prefix: str) -> list[Bad]:
    """Records a producer outside the project could write to ``topic``, and the DLQ reason of each."""
    out: list[Bad] = []

    def add(case: str, make: Callable[[str], tuple[bytes, list[tuple[str, bytes]]]], reason: str) -> None:
        key = f"{prefix}-{case}"
        value, headers = make(key)
        out.append(Bad(case, key, value, headers, reason))

    def good(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
        _k, value, headers = encode(_valid_event(topic, key))
        return value, headers

    def wrong_type(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
        _k, value, headers = encode(_valid_event(_WRONG_TYPE[topic], key))
        return value, headers

    if topic == CALL_AUDIO:
        # audio frames: raw bytes in the value, the metadata as JSON in the dasan-meta header

        def meta_of(key: str) -> tuple[bytes, list[tuple[str, bytes]], dict[str, Any]]:
            value, headers = good(key)
            meta = json.loads(dict(headers)["dasan-meta"])
            return value, headers, meta

        def invalid_json(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
            value, headers, _m = meta_of(key)
            return value, _with(headers, dasan_meta=b'{"call_id": "' + key.encode() + b'", \xff')

        def newer(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
            value, headers, meta = meta_of(key)
            meta["schema_version"] = 99
            return value, _with(headers, schema_version=b"99", dasan_meta=json.dumps(meta).encode())

        def unknown_type(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
            value, headers, meta = meta_of(key)
            meta["type"] = "video_frame"
            return value, _with(headers, dasan_meta=json.dumps(meta).encode())

        def odd_pcm(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
            _value, headers, _m = meta_of(key)
            return b"\x01\x02\x03", headers

        add("invalid-json", invalid_json, "invalid_json")
        add("newer-schema", newer, "unsupported_schema_version")
        add("unknown-type", unknown_type, "invalid_schema")
        add("odd-pcm", odd_pcm, "invalid_schema")
    else:

        def invalid_json(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
            value, headers = good(key)
            return value[: len(value) // 2] + b"\xff\xfe", headers

        def newer(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
            value, headers = good(key)
            data = json.loads(value)
            data["schema_version"] = 99
            return json.dumps(data).encode(), _with(headers, schema_version=b"99")

        def unknown_type(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
            value, headers = good(key)
            data = json.loads(value)
            data["type"] = "call_teleported"
            return json.dumps(data).encode(), _with(headers, event_type=b"call_teleported")

        def not_an_object(key: str) -> tuple[bytes, list[tuple[str, bytes]]]:
            _value, headers = good(key)
            return b'["call_started", 1]', headers

        add("invalid-json", invalid_json, "invalid_json")
        add("newer-schema", newer, "unsupported_schema_version")
        add("unknown-type", unknown_type, "invalid_schema")
        add("not-an-object", not_an_object, "invalid_schema")
    add("wrong-topic", wrong_type, "wrong_topic")
    return out


def test_every_registry_topic_has_a_consumer_here() -> None:
    """The DLQ test below covers exactly the registry's topics; a new topic must be placed in CONSUMERS
    (or stated as consumed by no service, in which case nothing dead-letters its bad records).
    A control topic without a dead-letter topic (``kb.versions``: every assist reads it from its start
    without a group; a bad announcement is logged and skipped, tests/assist/test_kb_versions.py) is
    not an event topic."""
    assert set(CONSUMERS) == {name for name, spec in TOPICS.items() if spec.dead_letters}
    assert all(CONSUMERS.values())


@pytest.mark.parametrize("topic", list(CONSUMERS))
def test_bad_records_reach_the_dlq_of_every_consumer(stack: BadInputStack, topic: str) -> None:
    """Each bad record is dead-lettered by every group that consumes the topic, with the raw bytes,
    the original headers, the reason, the error and the source offset; the services stay ready.

    The records go to the partition of the pipeline call, whose good events come afterwards
    (``test_a_good_call_goes_through_after_the_bad_records``): a consumer stuck on a bad record would
    never get to them."""
    partition = partition_of(pipeline_call_id(stack))
    bads = bad_records(topic, f"bad-{topic.replace('.', '-')}-{stack.suffix}")
    producer = KafkaProducer(bootstrap_servers=stack.kafka.bootstrap, acks="all")
    try:
        for b in bads:
            md = producer.send(
                topic, key=b.key.encode(), value=b.value, headers=b.headers, partition=partition
            )
            b.offset = md.get(timeout=30).offset
    finally:
        producer.close()
    dlq = dlq_name(topic)
    groups = {stack.groups[svc]: svc for svc in CONSUMERS[topic]}

    def dead_letters() -> dict[tuple[str, str], list[Rec]]:
        found: dict[tuple[str, str], list[Rec]] = {}
        for r in stack.tail.select(dlq):
            h = read_dead_letter(r.headers)
            key = (r.key or b"").decode(errors="replace")
            found.setdefault((key, h.get("dlq-consumer-group", "")), []).append(r)
        return found

    want = {(b.key, g) for b in bads for g in groups}
    deadline = time.monotonic() + 90
    found = dead_letters()
    while not want <= set(found) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = dead_letters()
    missing = want - set(found)
    assert not missing, f"not dead-lettered: {sorted(missing)}"
    for b in bads:
        for g in groups:
            for r in found[(b.key, g)]:
                h = read_dead_letter(r.headers)
                where = f"{topic} {b.case} by {groups[g]}"
                assert h["dlq-reason"] == b.reason, (where, h)
                assert h["dlq-error"].strip(), where
                assert h["dlq-source-topic"] == topic, where
                assert h["dlq-source-partition"] == str(partition), where
                assert h["dlq-source-offset"] == str(b.offset), where
                assert r.value == b.value, f"{where}: the raw bytes were not kept"
                original = [(k, v) for k, v in r.headers if not k.startswith("dlq-")]
                assert original == b.headers, f"{where}: the original headers were not kept"
    stack.assert_alive_and_ready(*CONSUMERS[topic])
    for svc in set(CONSUMERS[topic]):
        dead = stack.metric(svc, "dasan_dead_letters_total", topic=topic)
        assert dead >= len(bads), (svc, topic, dead)


def speech_pcm16(shared_dir: Path) -> np.ndarray:
    import soundfile as sf

    rows = [
        json.loads(x) for x in (shared_dir / "audio-dev" / "manifest.jsonl").read_text().splitlines() if x
    ]
    row = min(rows, key=lambda r: r["duration_s"])
    data, rate = sf.read(str(shared_dir / "audio-dev" / row["audio"]), dtype="int16", always_2d=True)
    assert rate == 16000
    return data[:, 0]


def test_a_good_call_goes_through_after_the_bad_records(stack: BadInputStack, shared_dir: Path) -> None:
    """Real speech through the gateway, on the partitions the bad records went to: the worker
    transcribes it, assist summarises it, the console records all of it (call.events, call.audio,
    call.transcripts, assist.suggestions, call.summaries each carry a good event after the bad ones)."""
    call_id = pipeline_call_id(stack)
    pcm = speech_pcm16(shared_dir)
    per = 3200  # 200 ms at 16 kHz
    with connect(stack.ingest_url, max_size=None, open_timeout=10) as ws:
        ws.send(start_msg(call_id, sample_rate=16000, channels=1))
        msg = json.loads(ws.recv(timeout=15))
        assert msg["type"] == "accepted", msg
        for i in range(0, len(pcm) - per + 1, per):
            ws.send(pcm[i : i + per].astype("<i2").tobytes())
        # keep the line open with silence, in real time, until the utterance's final transcript is out
        silence = np.zeros(1600, "<i2").tobytes()
        deadline = time.monotonic() + 150
        finals: list[TranscriptSegment] = []
        while not finals:
            assert time.monotonic() < deadline, f"no final transcript:\n{stack.log_tail('asr-worker')}"
            ws.send(silence)
            time.sleep(0.1)
            finals = [
                e for e in stack.tail.events(CALL_TRANSCRIPTS, call_id) if e.is_final and e.text.strip()
            ]
        ws.send(json.dumps({"type": "end"}))
        closed = json.loads(ws.recv(timeout=15))
        assert closed["type"] == "closed", closed
    assert re.search(r"[가-힣]", finals[0].text), finals[0].text
    assert finals[0].source == TranscriptSource.asr and finals[0].channel == Channel.caller
    with EventProducer(stack.kafka) as producer:
        producer.send(KeywordsUpdated(call_id=call_id, keywords=["검증키워드"])).get(timeout=30)
        # no shadow assist runs in this stack: a shadow's output for the call, after the bad records
        shadow_kw = KeywordsUpdated(call_id=call_id, keywords=["섀도키워드"])
        producer.send(shadow_kw, ASSIST_SUGGESTIONS_SHADOW).get(timeout=30)
    summaries = wait_for(
        lambda: stack.tail.events(CALL_SUMMARIES, call_id), 90, f"the summary of {call_id}", 0.1
    )
    assert summaries[0].call_reason
    # every topic carried good events of this call after the bad records, on the same partition
    part = partition_of(call_id)
    for topic in CONSUMERS:
        good = stack.tail.select(topic, call_id)
        assert good and {r.partition for r in good} == {part}, topic
        bad = [
            r for r in stack.tail.select(topic) if r.partition == part and (r.key or b"").startswith(b"bad-")
        ]
        assert bad and min(r.offset for r in good) > max(r.offset for r in bad), topic

    def recorded() -> list[dict[str, Any]] | None:
        r = stack.api(f"/api/calls/{call_id}/events")
        if r.status_code != 200:
            return None
        items = [i["event"] for i in r.json()]
        types = {e["type"] for e in items}
        kw = any(e["type"] == "keywords" and "검증키워드" in e["keywords"] for e in items)
        return items if {"call_started", "segment", "call_ended", "summary"} <= types and kw else None

    items = wait_for(recorded, 60, f"{call_id} in the console", 0.5)
    segs = [e for e in items if e["type"] == "segment" and e["is_final"]]
    assert any(s["text"] == mask_text(finals[0].text) for s in segs)
    stack.assert_alive_and_ready()
