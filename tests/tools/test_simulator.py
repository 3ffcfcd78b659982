"""The simulator's pieces that need no running service: G.711 encoding, pacing, scripted calls."""

from __future__ import annotations

import asyncio
import audioop  # deprecated in 3.11 but present: the reference G.711 implementation to compare with
import warnings

import numpy as np
import pytest

from dasan.simulator import encode_audio, load_script, partial_prefixes, play_scripted_call, speech_seconds
from streaming.events import CallEnded, CallStarted, TranscriptSegment, TranscriptSource
from streaming.kafka import EventConsumer, EventProducer

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.mark.parametrize(("codec", "ref"), [("mulaw", audioop.lin2ulaw), ("alaw", audioop.lin2alaw)])
def test_g711_encoder_matches_the_reference(codec, ref) -> None:
    pcm = np.concatenate([np.arange(-32768, 32768, 7, dtype=np.int32), [0, 1, -1, 32767, -32768]]).astype(
        np.int16
    )
    assert encode_audio(pcm, codec) == ref(pcm.astype("<i2").tobytes(), 2)


def test_pcm_is_little_endian_int16() -> None:
    assert encode_audio(np.array([1, -2], np.int16), "pcm_s16le") == b"\x01\x00\xfe\xff"


def test_partials_grow_and_end_before_the_final() -> None:
    text = "저기요 집 앞에 차가 계속 불법으로 세워져 있어서 신고하고 싶은데요"
    dur = speech_seconds(text)
    parts = partial_prefixes(text, dur)
    assert 3 <= len(parts) <= dur + 1
    assert all(text.startswith(p) for _, p in parts)
    assert [len(p) for _, p in parts] == sorted(len(p) for _, p in parts)
    assert all(t < dur for t, _ in parts)


def test_scripted_call_reaches_kafka_in_order(kafka_settings, unique, shared_dir) -> None:
    script = load_script(shared_dir / "eval-dev" / "calls.jsonl")[0]
    script.turns = script.turns[:4]
    call_id = f"sim-{unique}"
    producer = EventProducer(kafka_settings)
    finals = asyncio.run(play_scripted_call(producer, script, call_id=call_id, speed=50.0))
    producer.close()
    got: list = []
    consumer = EventConsumer(
        ["call.events", "call.transcripts"],
        f"sim-{unique}",
        lambda e, r: got.append(e) if e.call_id == call_id else None,
        kafka_settings,
    )
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(isinstance(e, CallEnded) for e in got):
        consumer.poll_once(200)
    consumer.close()
    assert finals == 4
    # call.events and call.transcripts are separate topics: no order between them, only within each
    started = [e for e in got if isinstance(e, CallStarted)]
    assert len(started) == 1 and started[0].source == TranscriptSource.scripted
    segs = [e for e in got if isinstance(e, TranscriptSegment)]
    final_texts = [s.text for s in segs if s.is_final]
    assert final_texts == [t["text"].strip() for t in script.turns]
    assert all(s.source == TranscriptSource.scripted for s in segs)
    # a segment's partials come before its final and carry increasing revisions
    by_seg: dict[str, list] = {}
    for s in segs:
        by_seg.setdefault(s.segment_id, []).append(s)
    for revs in by_seg.values():
        assert [r.revision for r in revs] == sorted(r.revision for r in revs)
        assert revs[-1].is_final and not any(r.is_final for r in revs[:-1])
