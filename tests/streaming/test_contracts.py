"""Event contracts and the wire codec, without a broker (property tests with hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.codec import DecodeError, OversizedMessage, decode, encode
from streaming.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    AudioFrame,
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    Codec,
    DraftAnswer,
    DraftSentence,
    EndReason,
    FollowUpKind,
    KeywordsUpdated,
    RetrievedPassage,
    StageLatency,
    Suggestion,
    SummaryAction,
    TranscriptSegment,
)
from streaming.topics import TOPICS, all_topic_specs, topic_for_event

call_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,20}", fullmatch=True)
korean = st.text(
    alphabet=st.sampled_from("가나다라마바사아자차카타파하 주정차과태료대형폐기물123.,?!"), max_size=200
)
times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))


def passage(pid: str = "도로교통법/제32조#1") -> RetrievedPassage:
    return RetrievedPassage(
        doc_id=pid.split("#")[0],
        passage_id=pid,
        citation="「도로교통법」 제32조(정차 및 주차의 금지)",
        law_name="도로교통법",
        article_no="제32조",
        score=0.83,
        snippet="모든 차의 운전자는 다음 각 호의 어느 하나에 해당하는 곳에서는 차를 정차하거나 주차하여서는 아니 된다.",
        effective_date="2026-07-01",
        ranks={"bm25": 1, "dense": 2},
    )


def examples() -> list:
    return [
        CallStarted(call_id="c-1", counselor_id="kim", team="A", caller_number_masked="010-****-5678"),
        CallEnded(call_id="c-1", reason=EndReason.idle_timeout, detail="no audio for 30 s", duration_s=31.5),
        AudioFrame(
            call_id="c-1",
            channel=Channel.caller,
            seq=3,
            codec=Codec.mulaw,
            sample_rate=8000,
            capture_ts=0.06,
            audio=bytes(range(160)),
        ),
        TranscriptSegment(
            call_id="c-1",
            segment_id="caller-0001",
            channel=Channel.caller,
            start_s=1.0,
            end_s=2.5,
            text="불법 주차 신고하려고요",
            is_final=True,
            revision=2,
            confidence=0.9,
            asr_model="whisper-base",
        ),
        KeywordsUpdated(call_id="c-1", keywords=["불법주차", "신고"], trigger_segment_ids=["caller-0001"]),
        Suggestion(
            call_id="c-1",
            suggestion_id="s-1",
            trigger_segment_ids=["caller-0001"],
            query="불법 주차 신고",
            keywords=["주정차"],
            passages=[passage()],
            draft=DraftAnswer(
                generator="grounded",
                sentences=[
                    DraftSentence(text="그곳에는 주차하시면 안 됩니다.", citations=["도로교통법/제32조#1"])
                ],
            ),
            latency=StageLatency(masking_ms=0.2, retrieval_ms=40, total_ms=55),
        ),
        CallSummary(
            call_id="c-1",
            summary_id="sum-1",
            category="불법주정차",
            call_reason="불법 주차 신고 문의",
            key_facts=["자택 앞 불법 주차"],
            actions=[SummaryAction(kind=FollowUpKind.registered, text="신고 접수")],
            regulations_cited=["도로교통법/제32조"],
            generator="grounded",
        ),
    ]


@pytest.mark.parametrize("event", examples(), ids=lambda e: e.type)
def test_round_trip_every_event_type(event) -> None:
    key, value, headers = encode(event)
    assert key == event.call_id.encode()
    back = decode(value, headers, key)
    assert back == event
    assert type(back) is type(event)


def test_every_event_type_has_a_topic_and_example() -> None:
    assert {e.type for e in examples()} == set(EVENT_TYPES)
    for t in EVENT_TYPES:
        assert topic_for_event(t) in TOPICS


def test_audio_travels_as_raw_bytes_with_metadata_header() -> None:
    frame = examples()[2]
    _, value, headers = encode(frame)
    assert value == frame.audio
    meta = json.loads(dict(headers)["dasan-meta"])
    assert "audio" not in meta and meta["seq"] == 3 and meta["codec"] == "mulaw"


def test_json_is_compact() -> None:
    _, value, _ = encode(examples()[0])
    assert b": " not in value and b", " not in value


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"{not json", [("event_type", b"call_started")], "invalid_json"),
        (b"[1,2]", [], "invalid_schema"),
        (
            json.dumps({"type": "call_started", "schema_version": 1, "call_id": "c"}).encode(),
            [],
            "invalid_schema",
        ),
        (json.dumps({"type": "nope", "schema_version": 1, "call_id": "c"}).encode(), [], "invalid_schema"),
        (
            json.dumps({"type": "call_ended", "schema_version": 99, "call_id": "c"}).encode(),
            [],
            "unsupported_schema_version",
        ),
        (
            json.dumps({"type": "call_ended", "schema_version": "x", "call_id": "c"}).encode(),
            [],
            "bad_schema_version",
        ),
        (b"\x00\x01", [("event_type", b"audio_frame")], "missing_header"),
        (None, [], "empty"),
    ],
)
def test_decode_errors_are_explicit(value, headers, reason) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(value, headers)
    assert exc.value.reason == reason


def test_key_must_match_call_id() -> None:
    _, value, headers = encode(examples()[1])
    with pytest.raises(DecodeError) as exc:
        decode(value, headers, b"another-call")
    assert exc.value.reason == "key_mismatch"


def test_oversized_event_is_refused() -> None:
    big = AudioFrame(
        call_id="c",
        channel=Channel.caller,
        seq=0,
        codec=Codec.pcm_s16le,
        sample_rate=16000,
        capture_ts=0,
        audio=b"\0" * 2_000_000,
    )
    with pytest.raises(OversizedMessage, match="over the 1048576-byte"):
        encode(big)


def test_invalid_events_are_rejected_at_construction() -> None:
    with pytest.raises(ValueError):
        CallStarted(call_id="bad id with spaces", counselor_id="x")
    with pytest.raises(ValueError):
        AudioFrame(
            call_id="c",
            channel=Channel.caller,
            seq=0,
            codec=Codec.pcm_s16le,
            sample_rate=8000,
            capture_ts=0,
            audio=b"\0\0\0",
        )  # odd byte count
    with pytest.raises(ValueError):
        AudioFrame(
            call_id="c",
            channel=Channel.caller,
            seq=0,
            codec=Codec.pcm_s16le,
            sample_rate=11025,
            capture_ts=0,
            audio=b"\0\0",
        )
    with pytest.raises(ValueError):
        TranscriptSegment(
            call_id="c",
            segment_id="s",
            channel=Channel.caller,
            start_s=2,
            end_s=1,
            text="",
            is_final=True,
            asr_model="m",
        )
    with pytest.raises(ValueError, match="not retrieved"):
        Suggestion(
            call_id="c",
            suggestion_id="s",
            trigger_segment_ids=["x"],
            query="q",
            passages=[passage()],
            draft=DraftAnswer(generator="g", sentences=[DraftSentence(text="t", citations=["other#1"])]),
        )
    with pytest.raises(ValueError, match="at least one cited sentence"):
        DraftAnswer(generator="g", sentences=[], abstained=False)


def test_topic_registry_has_a_dlq_for_every_topic() -> None:
    names = {s.name for s in all_topic_specs()}
    for topic, spec in TOPICS.items():
        assert (f"{topic}.dlq" in names) == spec.dead_letters  # all but the control topic kb.versions
    assert all(s.replication_factor == 3 for s in all_topic_specs(replication_factor=3))


@settings(max_examples=60, deadline=None)
@given(
    call_id=call_ids,
    text=korean,
    start=st.floats(0, 3600),
    dur=st.floats(0, 30),
    final=st.booleans(),
    rev=st.integers(0, 50),
    conf=st.none() | st.floats(0, 1),
    at=times,
)
def test_transcript_segment_round_trip_property(call_id, text, start, dur, final, rev, conf, at) -> None:
    seg = TranscriptSegment(
        call_id=call_id,
        segment_id=f"{call_id}-caller-1",
        channel=Channel.caller,
        start_s=start,
        end_s=start + dur,
        text=text,
        is_final=final,
        revision=rev,
        confidence=conf,
        asr_model="whisper-base",
        emitted_at=at,
    )
    assert decode(*encode(seg)[1:], key=call_id.encode()) == seg


@settings(max_examples=60, deadline=None)
@given(
    call_id=call_ids,
    audio=st.binary(min_size=2, max_size=4000).filter(lambda b: len(b) % 2 == 0),
    seq=st.integers(0, 10**9),
    rate=st.sampled_from([8000, 16000]),
    ch=st.sampled_from(list(Channel)),
    ts=st.floats(0, 10**5),
)
def test_audio_frame_round_trip_property(call_id, audio, seq, rate, ch, ts) -> None:
    frame = AudioFrame(
        call_id=call_id,
        channel=ch,
        seq=seq,
        codec=Codec.pcm_s16le,
        sample_rate=rate,
        capture_ts=ts,
        audio=audio,
    )
    key, value, headers = encode(frame)
    assert decode(value, headers, key) == frame


@settings(max_examples=40, deadline=None)
@given(
    call_id=call_ids,
    kws=st.lists(korean.filter(bool), max_size=8),
    facts=st.lists(korean, max_size=5),
    at=times,
)
def test_summary_round_trip_property(call_id, kws, facts, at) -> None:
    s = CallSummary(
        call_id=call_id,
        summary_id="s",
        category="기타",
        call_reason="문의",
        key_facts=facts,
        keywords=kws,
        generator="grounded",
        produced_at=at,
    )
    assert decode(*encode(s)[1:]) == s


def test_schema_version_is_stamped() -> None:
    for e in examples():
        assert e.schema_version == SCHEMA_VERSION
