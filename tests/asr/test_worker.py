"""The worker end to end through the real broker: gateway → call.audio → worker → call.transcripts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from asr.audio import encode_mulaw
from asr.evaluate import cer, telephone
from asr.gateway import create_gateway_app
from asr.settings import AsrSettings
from asr.worker import AsrWorker, create_health_app
from streaming.events import AudioFrame, CallEnded, CallStarted, Channel, Codec, TranscriptSegment
from streaming.ingest import INGEST_PATH, start_token
from streaming.kafka import EventProducer
from streaming.settings import KafkaSettings
from streaming.topics import CALL_TRANSCRIPTS
from tests.util import wait_for

from .conftest import load_mono, read_events

pytestmark = pytest.mark.slow


@pytest.fixture()
def worker(
    kafka_settings: KafkaSettings, whisper_decoder, asr_settings: AsrSettings, unique: str
) -> Iterator[AsrWorker]:
    w = AsrWorker(
        asr_settings,
        kafka_settings,
        whisper_decoder.decode,
        whisper_decoder.model_name,
        group_id=f"asr-{unique}",
    )
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    yield w
    w.stop()
    t.join(30)


def finals_of(events: list) -> list[TranscriptSegment]:
    return [e for e in events if isinstance(e, TranscriptSegment) and e.is_final]


def test_call_through_gateway_and_worker(
    worker: AsrWorker, kafka_settings: KafkaSettings, audio_dev: list[dict], unique: str
) -> None:
    row = next(r for r in audio_dev if r["id"] == "zeroth_104_003_0294")
    audio, rate = load_mono(row["path"])
    x8, _ = telephone(audio, rate, "16k8k" if False else "8k")
    caller = (np.clip(np.concatenate([np.zeros(4000), x8, np.zeros(8000)]), -1, 1) * 32767).astype(np.int16)
    counselor = np.zeros_like(caller)  # the counselor stays silent: no text on that channel
    call_id = f"e2e-{unique}"
    # The recording is sent as fast as the socket takes it: the gateway's pacing check is off.
    settings = AsrSettings(max_frame_ms=200, max_ahead_s=0, ingest_secret="worker-test-secret")
    app = create_gateway_app(settings, kafka_settings)
    with TestClient(app) as client, client.websocket_connect(INGEST_PATH) as ws:
        ws.send_text(
            json.dumps(
                {
                    "type": "start",
                    "call_id": call_id,
                    "counselor_id": "c-1",
                    "codec": "mulaw",
                    "sample_rate": 8000,
                    "channels": 2,
                    "token": start_token("worker-test-secret", call_id, "c-1", None, None),
                }
            )
        )
        assert ws.receive_json()["type"] == "accepted"
        n = 1600  # 200 ms
        for i in range(0, len(caller), n):
            inter = np.stack([caller[i : i + n], counselor[i : i + n]], 1).reshape(-1)
            ws.send_bytes(encode_mulaw(inter))
        ws.send_text(json.dumps({"type": "end"}))
        assert ws.receive_json()["type"] == "closed"

    events = read_events(
        kafka_settings, CALL_TRANSCRIPTS, call_id, lambda ev: bool(finals_of(ev)), timeout_s=40
    )
    finals = finals_of(events)
    assert finals, f"no final segment; got {events}"
    assert all(isinstance(f, TranscriptSegment) and f.channel == Channel.caller for f in events)
    assert cer([row["text"]], [" ".join(f.text for f in finals)]) <= 0.25
    f = finals[0]
    assert f.asr_model == "whisper-base" and f.confidence is not None and 0 < f.confidence <= 1
    assert 0.3 < f.start_s < f.end_s <= len(caller) / 8000
    assert f.audio_end_at is not None
    partials = [e for e in events if isinstance(e, TranscriptSegment) and not e.is_final]
    assert all(p.segment_id == f.segment_id and p.revision < f.revision for p in partials)


def test_worker_joins_a_call_mid_stream(
    worker: AsrWorker, kafka_settings: KafkaSettings, audio_dev: list[dict], unique: str
) -> None:
    """Takeover: audio of a call whose CallStarted this worker never saw, starting at seq 300 / 60 s."""
    row = next(r for r in audio_dev if r["id"] == "zeroth_104_003_0374")
    audio, rate = load_mono(row["path"])
    pcm = (np.clip(np.concatenate([audio, np.zeros(rate)]), -1, 1) * 32767).astype("<i2")
    call_id = f"takeover-{unique}"
    n = rate // 5

    def frame(k: int, i: int) -> AudioFrame:  # a new event id each time
        return AudioFrame(
            call_id=call_id,
            channel=Channel.counselor,
            seq=300 + k,
            codec=Codec.pcm_s16le,
            sample_rate=16000,
            capture_ts=60.0 + i / rate,
            audio=pcm[i : i + n].tobytes(),
        )

    with EventProducer(kafka_settings) as prod:
        for k, i in enumerate(range(0, len(pcm), n)):
            prod.send(frame(k, i))
            if k == 5:  # a frame sent again (its seq again, a new event id) is ignored
                prod.send(frame(k, i))
        prod.send(CallEnded(call_id=call_id))
    events = read_events(
        kafka_settings, CALL_TRANSCRIPTS, call_id, lambda ev: bool(finals_of(ev)), timeout_s=40
    )
    finals = finals_of(events)
    assert finals and all(f.channel == Channel.counselor for f in finals)
    assert 60.0 <= finals[0].start_s < 62.0
    assert finals[0].segment_id.startswith(f"{call_id}:counselor:6")
    assert cer([row["text"]], [" ".join(f.text for f in finals)]) <= 0.2
    # The health app reports the worker; streams of finished calls are released once decoded.
    client = TestClient(create_health_app(worker))
    assert client.get("/healthz").status_code == 200
    deadline = time.monotonic() + 60
    while worker.streams and time.monotonic() < deadline:
        time.sleep(0.1)
    body = client.get("/readyz").json()
    assert body["published"] >= 1 and body["streams"] == 0, (body, list(worker.streams))


def _pcm16(*parts: np.ndarray) -> np.ndarray:
    return (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2")


def _send_frames(
    prod: EventProducer, call_id: str, pcm: np.ndarray, rate: int, first: int, last: int
) -> None:
    """Frames ``first`` … ``last - 1`` (200 ms each) of ``pcm`` on the caller channel."""
    n = rate // 5
    for k in range(first, last):
        prod.send(
            AudioFrame(
                call_id=call_id,
                channel=Channel.caller,
                seq=k,
                codec=Codec.pcm_s16le,
                sample_rate=rate,
                capture_ts=k * n / rate,
                audio=pcm[k * n : (k + 1) * n].tobytes(),
            )
        )
    prod.flush()


def test_rebalance_mid_utterance_loses_no_audio(
    kafka_settings: KafkaSettings,
    whisper_decoder,
    asr_settings: AsrSettings,
    audio_dev: list[dict],
    unique: str,
) -> None:
    """A second worker joins the group and leaves again while an utterance is open.

    Whoever holds the call's partition after each rebalance re-reads the audio that is not yet in
    a final (the committed offset is held back there) and rebuilds the stream from it, even the
    worker that had read those records before and dropped its state when they were revoked: the
    utterance that was open during the rebalances is transcribed whole.
    """
    rows = {r["id"]: r for r in audio_dev}
    a, rate = load_mono(rows["zeroth_104_003_0294"]["path"])
    b, _ = load_mono(rows["zeroth_104_003_0374"]["path"])
    b_start = 0.5 + len(a) / rate + 1.5
    pcm = _pcm16(np.zeros(rate // 2), a, np.zeros(rate * 3 // 2), b, np.zeros(rate))
    frames = -(-len(pcm) // (rate // 5))
    cut = int((b_start + len(b) / rate / 2) * 5)  # the middle of utterance b
    call_id = f"rebalance-{unique}"
    group = f"asr-{unique}"

    def start_worker() -> tuple[AsrWorker, threading.Thread]:
        w = AsrWorker(
            asr_settings, kafka_settings, whisper_decoder.decode, whisper_decoder.model_name, group_id=group
        )
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        return w, t

    worker_a, thread_a = start_worker()
    try:
        with EventProducer(kafka_settings) as prod:
            _send_frames(prod, call_id, pcm, rate, 0, cut)
            # Utterance a is final; b is open (its second half is not sent yet).
            read_events(kafka_settings, CALL_TRANSCRIPTS, call_id, lambda ev: bool(finals_of(ev)), 120)
            wait_for(lambda: len(worker_a.consumer.assignment()) == 24, 120, "worker a's assignment", 0.1)
            worker_b, thread_b = start_worker()
            wait_for(
                lambda: len(worker_a.consumer.assignment()) == len(worker_b.consumer.assignment()) == 12,
                120,
                "the partitions to be shared by two workers",
                0.1,
            )
            worker_b.stop()
            thread_b.join(60)
            wait_for(
                lambda: len(worker_a.consumer.assignment()) == 24,
                120,
                "worker a to hold every partition again",
                0.1,
            )
            _send_frames(prod, call_id, pcm, rate, cut, frames)
            prod.send(CallEnded(call_id=call_id, duration_s=round(len(pcm) / rate, 3)))
        events = read_events(
            kafka_settings,
            CALL_TRANSCRIPTS,
            call_id,
            lambda ev: any(f.end_s > b_start + 1 for f in finals_of(ev)),
            timeout_s=120,
        )
    finally:
        worker_a.stop()
        thread_a.join(60)
    finals = finals_of(events)
    by_id: dict[str, set[str]] = {}
    for f in finals:
        by_id.setdefault(f.segment_id, set()).add(f.text)
    assert all(len(texts) == 1 for texts in by_id.values()), by_id  # a re-emitted final keeps its id
    # a may be transcribed again if the rebalance came before its final's offset was committed
    # (at-least-once); each of its finals is the whole utterance.
    first = [f.text for f in finals if f.end_s <= b_start]
    assert first and all(cer([rows["zeroth_104_003_0294"]["text"]], [t]) <= 0.2 for t in first), first
    second = {f.segment_id: f.text for f in finals if f.start_s >= b_start - 0.6}
    # b's speech starts 0.6 s into its recording; the second half began at the cut (≈ 12 s).
    assert min(f.start_s for f in finals if f.segment_id in second) < b_start + 1.0, finals
    assert cer([rows["zeroth_104_003_0374"]["text"]], [" ".join(second.values())]) <= 0.2, finals


def test_whole_call_in_kafka_before_the_worker_starts(
    kafka_settings: KafkaSettings,
    whisper_decoder,
    asr_settings: AsrSettings,
    audio_dev: list[dict],
    unique: str,
) -> None:
    """A worker that gets a call's partitions after all of the call is in Kafka (a backlog after a
    rebalance or a restart) transcribes every utterance of both channels. Its CallEnded (on the
    small call.events topic) is read long before the last audio frames; the end grace counts from
    the last frame, so the streams are not cut while their audio still arrives."""
    rows = {r["id"]: r for r in audio_dev}
    rate = 8000

    def band(name: str) -> np.ndarray:
        x, r = load_mono(rows[name]["path"])
        return telephone(x, r, "8k")[0]

    a, b, c = band("zeroth_104_003_0294"), band("zeroth_104_003_0374"), band("zeroth_104_003_0352")
    caller = np.concatenate([np.zeros(rate // 2), a, np.zeros(2 * rate), b, np.zeros(rate)])
    counselor = np.zeros_like(caller)
    c_at = len(a) + 2 * rate  # the counselor speaks during the caller's first utterance and pause
    counselor[c_at - len(c) // 2 : c_at - len(c) // 2 + len(c)] = c
    spans = {
        Channel.caller: [(0.5, 0.5 + len(a) / rate, "zeroth_104_003_0294")],
        Channel.counselor: [
            ((c_at - len(c) // 2) / rate, (c_at + len(c) - len(c) // 2) / rate, "zeroth_104_003_0352")
        ],
    }
    b0 = 0.5 + (len(a) + 2 * rate) / rate
    spans[Channel.caller].append((b0, b0 + len(b) / rate, "zeroth_104_003_0374"))
    call_id = f"backlog-{unique}"
    n = rate // 5
    with EventProducer(kafka_settings) as prod:
        prod.send(
            CallStarted(call_id=call_id, counselor_id="c-1", channels=[Channel.caller, Channel.counselor])
        )
        for k, i in enumerate(range(0, len(caller), n)):
            for ch, x in ((Channel.caller, caller), (Channel.counselor, counselor)):
                pcm = (np.clip(x[i : i + n], -1, 1) * 32767).astype(np.int16)
                prod.send(
                    AudioFrame(
                        call_id=call_id,
                        channel=ch,
                        seq=k,
                        codec=Codec.mulaw,
                        sample_rate=rate,
                        capture_ts=i / rate,
                        audio=encode_mulaw(pcm),
                    )
                )
        prod.send(CallEnded(call_id=call_id, duration_s=round(len(caller) / rate, 3)))

    def covered(events: list) -> bool:
        finals = finals_of(events)
        return all(
            any(f.channel == ch and start - 0.6 <= f.start_s <= end for f in finals)
            for ch, items in spans.items()
            for start, end, _ in items
        )

    def call_done(w: AsrWorker) -> bool:
        info = w.calls.get(call_id)
        return (
            info is not None
            and len(info.finished) == 2
            and not any(st.call_id == call_id for st in list(w.streams.values()))
        )

    settings = asr_settings.model_copy(update={"end_grace_s": 0.5})
    w = AsrWorker(
        settings, kafka_settings, whisper_decoder.decode, whisper_decoder.model_name, group_id=f"asr-{unique}"
    )
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        wait_for(
            lambda: call_done(w), 600, "the worker to finish the call (both channels, every final out)", 0.1
        )
    finally:
        w.stop()
        t.join(60)
    events = read_events(kafka_settings, CALL_TRANSCRIPTS, call_id, covered, timeout_s=30)
    finals = finals_of(events)
    for ch, items in spans.items():
        for start, end, name in items:
            inside = {
                f.segment_id: f.text
                for f in finals
                if f.channel == ch and start - 0.6 <= f.start_s and f.end_s <= end + 0.6
            }
            assert cer([rows[name]["text"]], [" ".join(inside.values())]) <= 0.25, (ch, name, finals)
