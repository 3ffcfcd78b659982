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
from streaming.events import AudioFrame, CallEnded, Channel, Codec, TranscriptSegment
from streaming.ingest import INGEST_PATH
from streaming.kafka import EventProducer
from streaming.topics import CALL_TRANSCRIPTS

from .conftest import load_mono, read_events

pytestmark = pytest.mark.slow


@pytest.fixture()
def worker(
    kafka_settings: object, whisper_decoder, asr_settings: AsrSettings, unique: str
) -> Iterator[AsrWorker]:
    w = AsrWorker(
        asr_settings,
        kafka_settings,
        whisper_decoder.decode,
        whisper_decoder.model_name,
        group_id=f"asr-{unique}",
    )  # type: ignore[arg-type]
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    yield w
    w.stop()
    t.join(30)


def finals_of(events: list) -> list[TranscriptSegment]:
    return [e for e in events if isinstance(e, TranscriptSegment) and e.is_final]


def test_call_through_gateway_and_worker(
    worker: AsrWorker, kafka_settings: object, audio_dev: list[dict], unique: str
) -> None:
    row = next(r for r in audio_dev if r["id"] == "zeroth_104_003_0294")
    audio, rate = load_mono(row["path"])
    x8, _ = telephone(audio, rate, "16k8k" if False else "8k")
    caller = (np.clip(np.concatenate([np.zeros(4000), x8, np.zeros(8000)]), -1, 1) * 32767).astype(np.int16)
    counselor = np.zeros_like(caller)  # the counselor stays silent: no text on that channel
    call_id = f"e2e-{unique}"
    app = create_gateway_app(AsrSettings(max_frame_ms=200), kafka_settings)  # type: ignore[arg-type]
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
    assert {f.channel for f in events} == {Channel.caller}  # type: ignore[attr-defined]
    assert cer([row["text"]], [" ".join(f.text for f in finals)]) <= 0.25
    f = finals[0]
    assert f.asr_model == "whisper-base" and f.confidence is not None and 0 < f.confidence <= 1
    assert 0.3 < f.start_s < f.end_s <= len(caller) / 8000
    assert f.audio_end_at is not None
    partials = [e for e in events if isinstance(e, TranscriptSegment) and not e.is_final]
    assert all(p.segment_id == f.segment_id and p.revision < f.revision for p in partials)


def test_worker_joins_a_call_mid_stream(
    worker: AsrWorker, kafka_settings: object, audio_dev: list[dict], unique: str
) -> None:
    """Takeover: audio of a call whose CallStarted this worker never saw, starting at seq 300 / 60 s."""
    row = next(r for r in audio_dev if r["id"] == "zeroth_104_003_0374")
    audio, rate = load_mono(row["path"])
    pcm = (np.clip(np.concatenate([audio, np.zeros(rate)]), -1, 1) * 32767).astype("<i2")
    call_id = f"takeover-{unique}"
    n = rate // 5
    with EventProducer(kafka_settings) as prod:  # type: ignore[arg-type]
        for k, i in enumerate(range(0, len(pcm), n)):
            prod.send(
                AudioFrame(
                    call_id=call_id,
                    channel=Channel.counselor,
                    seq=300 + k,
                    codec=Codec.pcm_s16le,
                    sample_rate=16000,
                    capture_ts=60.0 + i / rate,
                    audio=pcm[i : i + n].tobytes(),
                )
            )
            if k == 5:  # a redelivered frame is ignored
                prod.send(
                    AudioFrame(
                        call_id=call_id,
                        channel=Channel.counselor,
                        seq=300 + k,
                        codec=Codec.pcm_s16le,
                        sample_rate=16000,
                        capture_ts=60.0 + i / rate,
                        audio=pcm[i : i + n].tobytes(),
                    )
                )
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
