"""The ingest gateway over a real WebSocket (Starlette TestClient) and the real test broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from asr.audio import encode_mulaw
from asr.gateway import create_gateway_app
from asr.settings import AsrSettings
from streaming.callers import caller_key, mask_caller_number, normalize_number
from streaming.events import AudioFrame, CallEnded, CallStarted, Channel, Codec, EndReason
from streaming.ingest import INGEST_PATH, start_token
from streaming.settings import KafkaSettings
from streaming.topics import CALL_AUDIO, CALL_EVENTS

from .conftest import read_events

SECRET = "test-secret"
INGEST_SECRET = "test-ingest-secret"


@pytest.fixture()
def gw_settings() -> AsrSettings:
    return AsrSettings(
        max_calls=2,
        idle_timeout_s=0.8,
        max_frame_ms=100,
        caller_key_secret=SECRET,
        ingest_secret=INGEST_SECRET,
    )


@pytest.fixture()
def client(gw_settings: AsrSettings, kafka_settings: KafkaSettings) -> Iterator[TestClient]:
    app = create_gateway_app(gw_settings, kafka_settings)
    with TestClient(app) as c:
        yield c


def start_msg(call_id: str, **kw: object) -> str:
    """A start message signed with the gateway's ingest secret (as the PBX adapter signs it)."""
    msg = {"type": "start", "call_id": call_id, "counselor_id": "c-17", **kw}
    team, number = msg.get("team"), msg.get("caller_number")
    assert team is None or isinstance(team, str)
    assert number is None or isinstance(number, str)
    msg.setdefault("token", start_token(INGEST_SECRET, call_id, "c-17", team, number))
    return json.dumps(msg)


def expect_error(ws, code: str, close_code: int) -> dict:
    msg = ws.receive_json()
    assert msg["type"] == "error", msg
    assert msg["code"] == code, msg
    with pytest.raises(WebSocketDisconnect) as exc:
        ws.receive_text()
    assert exc.value.code == close_code
    return msg


def test_caller_number_masking_and_key() -> None:
    assert mask_caller_number("010-1234-5678") == "010-****-5678"
    assert mask_caller_number("+82 10 1234 5678") == "010-****-5678"
    assert mask_caller_number("02-123-4567") == "02-***-4567"
    assert mask_caller_number("12") is None
    assert normalize_number("+82-10-1234-5678") == "01012345678"
    k1 = caller_key("010-1234-5678", SECRET)
    assert k1 == caller_key("+82 10 1234 5678", SECRET)
    assert k1 != caller_key("010-1234-5678", "other-secret")
    assert k1 != caller_key("010-1234-5679", SECRET)
    assert k1 is not None and len(k1) == 64


def test_stereo_mulaw_call_publishes_events(
    client: TestClient, kafka_settings: KafkaSettings, unique: str
) -> None:
    call_id = f"gw-ok-{unique}"
    rate, n = 8000, 400  # 50 ms frames
    t = np.arange(n * 6) / rate
    caller = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)
    counselor = (np.sin(2 * np.pi * 500 * t) * 4000).astype(np.int16)
    with client.websocket_connect(INGEST_PATH) as ws:
        ws.send_text(
            start_msg(call_id, codec="mulaw", sample_rate=8000, channels=2, caller_number="010-9876-5432")
        )
        acc = ws.receive_json()
        assert acc == {"type": "accepted", "call_id": call_id, "max_frame_ms": 100}
        for i in range(6):
            inter = np.stack([caller[i * n : (i + 1) * n], counselor[i * n : (i + 1) * n]], 1).reshape(-1)
            ws.send_bytes(encode_mulaw(inter))
        ws.send_text(json.dumps({"type": "end"}))
        closed = ws.receive_json()
        assert closed == {"type": "closed", "call_id": call_id, "frames": 6, "audio_s": 0.3}

    events = read_events(kafka_settings, CALL_EVENTS, call_id, lambda ev: len(ev) >= 2)
    started = [e for e in events if isinstance(e, CallStarted)]
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert len(started) == 1 and len(ended) == 1
    assert started[0].caller_number_masked == "010-****-5432"
    assert started[0].caller_key == caller_key("01098765432", SECRET)
    assert started[0].counselor_id == "c-17"
    assert ended[0].reason == EndReason.hangup and ended[0].duration_s == pytest.approx(0.3)

    frames = read_events(kafka_settings, CALL_AUDIO, call_id, lambda ev: len(ev) >= 12)
    audio = [f for f in frames if isinstance(f, AudioFrame)]
    assert audio == frames
    for ch, ref in ((Channel.caller, caller), (Channel.counselor, counselor)):
        mine = sorted((f for f in audio if f.channel == ch), key=lambda f: f.seq)
        assert [f.seq for f in mine] == list(range(6))
        assert [f.capture_ts for f in mine] == pytest.approx([i * 0.05 for i in range(6)])
        assert all(f.codec == Codec.mulaw and f.sample_rate == 8000 for f in mine)
        assert b"".join(f.audio for f in mine) == encode_mulaw(ref)


def test_unknown_codec(client: TestClient, unique: str) -> None:
    with client.websocket_connect(INGEST_PATH) as ws:
        ws.send_text(start_msg(f"gw-codec-{unique}", codec="opus"))
        msg = expect_error(ws, "unknown_codec", 1003)
        assert "opus" in msg["message"]


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        json.dumps({"type": "start", "call_id": "bad id!", "counselor_id": "c"}),
        json.dumps([1]),
        json.dumps({"type": "start", "call_id": "gw-codec-list", "counselor_id": "c", "codec": ["pcm"]}),
        json.dumps({"type": "start", "call_id": "gw-long", "counselor_id": "c" * 100_000}),
    ],
)
def test_bad_start(client: TestClient, raw: str) -> None:
    with client.websocket_connect(INGEST_PATH) as ws:
        ws.send_text(raw)
        expect_error(ws, "bad_start", 1008)


def test_audio_before_start_is_out_of_order(client: TestClient) -> None:
    with client.websocket_connect(INGEST_PATH) as ws:
        ws.send_bytes(b"\x00\x00")
        expect_error(ws, "out_of_order", 1008)


def test_frame_errors_end_the_call(client: TestClient, kafka_settings: KafkaSettings, unique: str) -> None:
    # Odd byte count for stereo PCM16 (4 bytes per sample frame).
    cid = f"gw-frame-{unique}"
    with client.websocket_connect(INGEST_PATH) as ws:
        ws.send_text(start_msg(cid, codec="pcm_s16le", sample_rate=16000, channels=2))
        assert ws.receive_json()["type"] == "accepted"
        ws.send_bytes(b"\x00" * 4 * 10)
        ws.send_bytes(b"\x00" * 6)
        expect_error(ws, "bad_frame", 1003)
    ended = [
        e
        for e in read_events(kafka_settings, CALL_EVENTS, cid, lambda ev: len(ev) >= 2)
        if isinstance(e, CallEnded)
    ]
    assert ended and ended[0].reason == EndReason.error and "bad_frame" in (ended[0].detail or "")

    # More than max_frame_ms (100 ms) of audio in one message.
    with client.websocket_connect(INGEST_PATH) as ws:
        ws.send_text(start_msg(f"gw-big-{unique}", codec="mulaw", sample_rate=8000, channels=1))
        assert ws.receive_json()["type"] == "accepted"
        ws.send_bytes(b"\xff" * 801)
        expect_error(ws, "oversized", 1008)

    # Empty frame, a second start, and garbage text.
    for i, (send, code, close) in enumerate(
        [
            (lambda ws: ws.send_bytes(b""), "bad_frame", 1003),
            (lambda ws: ws.send_text(start_msg("again")), "out_of_order", 1008),
            (lambda ws: ws.send_text("hello"), "bad_frame", 1003),
        ]
    ):
        with client.websocket_connect(INGEST_PATH) as ws:
            ws.send_text(start_msg(f"gw-misc{i}-{unique}", codec="mulaw", channels=1))
            assert ws.receive_json()["type"] == "accepted"
            send(ws)
            expect_error(ws, code, close)


def test_idle_timeout_ends_call(client: TestClient, kafka_settings: KafkaSettings, unique: str) -> None:
    cid = f"gw-idle-{unique}"
    with client.websocket_connect(INGEST_PATH) as ws:
        ws.send_text(start_msg(cid, codec="alaw", channels=1))
        assert ws.receive_json()["type"] == "accepted"
        ws.send_bytes(b"\xd5" * 160)
        expect_error(ws, "idle_timeout", 1008)  # the gateway waits 0.8 s, then ends the call
    ended = [
        e
        for e in read_events(kafka_settings, CALL_EVENTS, cid, lambda ev: len(ev) >= 2)
        if isinstance(e, CallEnded)
    ]
    assert len(ended) == 1 and ended[0].reason == EndReason.idle_timeout
    assert ended[0].duration_s == pytest.approx(0.02)


def test_busy_when_at_capacity(client: TestClient, unique: str) -> None:
    with client.websocket_connect(INGEST_PATH) as a, client.websocket_connect(INGEST_PATH) as b:
        for i, ws in enumerate((a, b)):
            ws.send_text(start_msg(f"gw-busy{i}-{unique}", codec="mulaw", channels=1))
            assert ws.receive_json()["type"] == "accepted"
        with client.websocket_connect(INGEST_PATH) as c:
            expect_error(c, "busy", 1013)
        assert client.get("/readyz").status_code == 503
        for ws in (a, b):
            ws.send_text(json.dumps({"type": "end"}))
            assert ws.receive_json()["type"] == "closed"
    deadline = time.monotonic() + 5
    while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/readyz").json()["calls"] == 0


def test_duplicate_call_id_refused(client: TestClient, unique: str) -> None:
    cid = f"gw-dup-{unique}"
    with client.websocket_connect(INGEST_PATH) as a:
        a.send_text(start_msg(cid, codec="mulaw", channels=1))
        assert a.receive_json()["type"] == "accepted"
        with client.websocket_connect(INGEST_PATH) as b:
            b.send_text(start_msg(cid, codec="mulaw", channels=1))
            expect_error(b, "bad_start", 1008)
        a.send_text(json.dumps({"type": "end"}))
        assert a.receive_json()["type"] == "closed"


def test_health_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["broker"] is True
    assert "dasan_events_out_total" in client.get("/metrics").text


def test_production_refuses_the_dev_caller_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASAN_ENV", "production")
    with pytest.raises(ValueError, match="CALLER_KEY_SECRET"):
        AsrSettings()
    assert AsrSettings(caller_key_secret="site-secret", ingest_secret="site-ingest").env == "production"
