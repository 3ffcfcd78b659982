"""1. Audio ingest: the gateway's WebSocket refuses bad frames, bad starts and a 50 MB frame, ends a
call that goes silent, and serves a good call afterwards (see the package docstring)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from streaming.events import (
    CallEnded,
    CallStarted,
    Channel,
    EndReason,
)
from streaming.topics import (
    CALL_AUDIO,
    CALL_EVENTS,
)
from tests.util import wait_for

from .harness import IDLE_TIMEOUT_S, BadInputStack, start_msg

pytestmark = pytest.mark.slow


def expect_refusal(ws: Any, code: str, close_code: int) -> dict[str, Any]:
    """The gateway answers an IngestError with ``code``, then closes with ``close_code``."""
    msg = json.loads(ws.recv(timeout=15))
    assert msg["type"] == "error" and msg["code"] == code, msg
    assert msg["message"], msg
    with pytest.raises(ConnectionClosed) as exc:
        ws.recv(timeout=15)
    assert exc.value.rcvd is not None, "closed without a close frame"
    assert exc.value.rcvd.code == close_code, exc.value.rcvd
    assert exc.value.rcvd.reason == code
    return msg


def accepted(ws: Any, call_id: str) -> None:
    msg = json.loads(ws.recv(timeout=15))
    assert msg == {"type": "accepted", "call_id": call_id, "max_frame_ms": 200}, msg


def call_ended(stack: BadInputStack, call_id: str, timeout_s: float = 30) -> CallEnded:
    evs = wait_for(
        lambda: [e for e in stack.tail.events(CALL_EVENTS, call_id) if isinstance(e, CallEnded)],
        timeout_s,
        f"CallEnded of {call_id} on call.events",
        0.1,
    )
    assert len(evs) == 1, evs
    return evs[0]


def pcm_frame(ms: int, rate: int = 8000, channels: int = 2) -> bytes:
    n = rate * ms // 1000
    t = np.arange(n * channels) / rate
    return (np.sin(2 * np.pi * 440 * t) * 3000).astype("<i2").tobytes()


@pytest.mark.parametrize(
    ("case", "frame", "code", "close_code"),
    [
        pytest.param("odd-bytes", b"\x01\x02\x03\x04\x05", "bad_frame", 1003, id="odd-bytes"),
        # 3 PCM16 samples: whole samples, but not whole caller/counselor pairs
        pytest.param("half-stereo", b"\x01\x02\x03\x04\x05\x06", "bad_frame", 1003, id="half-stereo"),
        pytest.param("empty", b"", "bad_frame", 1003, id="empty"),
        # 1 s of audio in one frame; the limit is 200 ms
        pytest.param("too-long", pcm_frame(1000), "oversized", 1008, id="too-long"),
    ],
)
def test_gateway_refuses_malformed_frames(
    stack: BadInputStack, case: str, frame: bytes, code: str, close_code: int
) -> None:
    """A malformed frame after a good one ends the call: error + close, CallEnded(error) with the code."""
    call_id = f"gw-{case}-{stack.suffix}"
    with connect(stack.ingest_url, max_size=None, open_timeout=10) as ws:
        ws.send(start_msg(call_id, codec="pcm_s16le", sample_rate=8000, channels=2))
        accepted(ws, call_id)
        ws.send(pcm_frame(100))  # a good frame first
        ws.send(frame)
        expect_refusal(ws, code, close_code)
    ended = call_ended(stack, call_id)
    assert ended.reason == EndReason.error
    assert ended.detail and ended.detail.startswith(f"{code}:"), ended.detail
    assert ended.duration_s == pytest.approx(0.1)
    started = [e for e in stack.tail.events(CALL_EVENTS, call_id) if isinstance(e, CallStarted)]
    assert len(started) == 1
    frames = wait_for(lambda: stack.tail.events(CALL_AUDIO, call_id), 15, f"the good frame of {call_id}", 0.1)
    assert {(f.channel, f.seq) for f in frames} == {(Channel.caller, 0), (Channel.counselor, 0)}
    stack.assert_alive_and_ready("asr-gateway")


@pytest.mark.parametrize(
    ("case", "first", "code", "close_code"),
    [
        pytest.param(c, f, code, cc, id=c)
        for c, f, code, cc in [
            ("not-json", "{this is not json", "bad_start", 1008),
            ("json-array", "[1, 2, 3]", "bad_start", 1008),
            ("unknown-codec", start_msg("gw-codec-x", codec="opus"), "unknown_codec", 1003),
            ("bad-rate", start_msg("gw-rate-x", sample_rate=44100), "bad_start", 1008),
            ("hostile-call-id", start_msg("<script>alert(1)</script>"), "bad_start", 1008),
            ("extra-field", start_msg("gw-extra-x", admin=True), "bad_start", 1008),
            ("audio-first", b"\x00\x00" * 800, "out_of_order", 1008),
            ("end-first", json.dumps({"type": "end"}), "out_of_order", 1008),
        ]
    ],
)
def test_gateway_refuses_bad_start(
    stack: BadInputStack, case: str, first: str | bytes, code: str, close_code: int
) -> None:
    with connect(stack.ingest_url, max_size=None, open_timeout=10) as ws:
        ws.send(first)
        expect_refusal(ws, code, close_code)
    stack.assert_alive_and_ready("asr-gateway")


def test_gateway_refuses_messages_out_of_order(stack: BadInputStack) -> None:
    """A second start, or a text message that is not ``end``, ends the call with CallEnded(error)."""
    for case, msg, code, detail in (
        ("second-start", start_msg("gw-other"), "out_of_order", "second start message"),
        ("unknown-control", json.dumps({"type": "pause"}), "bad_frame", "bad control message"),
        ("garbage-text", "\x00\x01 not json", "bad_frame", "bad control message"),
    ):
        call_id = f"gw-{case}-{stack.suffix}"
        with connect(stack.ingest_url, max_size=None, open_timeout=10) as ws:
            ws.send(start_msg(call_id))
            accepted(ws, call_id)
            ws.send(pcm_frame(100))
            ws.send(msg)
            expect_refusal(ws, code, 1008 if code == "out_of_order" else 1003)
        ended = call_ended(stack, call_id)
        assert ended.reason == EndReason.error and ended.detail == detail, ended


def test_gateway_refuses_a_50mb_frame_without_growing(stack: BadInputStack) -> None:
    """A 50 MB binary frame is refused at the WebSocket layer (close 1009, with a reason) before it is
    buffered: the gateway's RSS stays far below the frame size, and it serves a good call afterwards."""
    call_id = f"gw-huge-{stack.suffix}"
    base = stack.rss("asr-gateway")
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], stack.rss("asr-gateway"))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    closed: Any = None
    try:
        with connect(stack.ingest_url, max_size=None, open_timeout=10, close_timeout=5) as ws:
            ws.send(start_msg(call_id))
            accepted(ws, call_id)
            with contextlib.suppress(ConnectionClosed, OSError):
                ws.send(b"\x00" * (50 * 1024 * 1024))
            with pytest.raises(ConnectionClosed) as exc:
                while True:
                    ws.recv(timeout=30)
            closed = exc.value.rcvd
    finally:
        stop.set()
        sampler.join(5)
    assert closed is not None, "the gateway dropped the connection without a close frame"
    assert closed.code == 1009, closed  # message too big
    assert "exceeds" in closed.reason and str(1 << 20) in closed.reason, closed.reason
    growth = peak[0] - base
    assert growth < 20 * 1024 * 1024, f"gateway RSS grew by {growth / 1e6:.1f} MB for a refused 50 MB frame"
    ended = call_ended(stack, call_id)
    assert ended.reason == EndReason.error
    stack.assert_alive_and_ready("asr-gateway")
    good_call(stack, f"gw-after-huge-{stack.suffix}")
    assert stack.rss("asr-gateway") - base < 20 * 1024 * 1024


def good_call(stack: BadInputStack, call_id: str, frames: int = 10) -> None:
    """A well-formed stereo call: accepted, closed with the right counts, events and audio on Kafka."""
    with connect(stack.ingest_url, max_size=None, open_timeout=10) as ws:
        ws.send(start_msg(call_id, caller_number="010-2345-6789"))
        accepted(ws, call_id)
        for _ in range(frames):
            ws.send(pcm_frame(100))
        ws.send(json.dumps({"type": "end"}))
        closed = json.loads(ws.recv(timeout=15))
        assert closed == {"type": "closed", "call_id": call_id, "frames": frames, "audio_s": frames / 10}
    ended = call_ended(stack, call_id)
    assert ended.reason == EndReason.hangup and ended.duration_s == pytest.approx(frames / 10)
    started = [e for e in stack.tail.events(CALL_EVENTS, call_id) if isinstance(e, CallStarted)]
    assert len(started) == 1 and started[0].caller_number_masked == "010-****-6789"
    audio = wait_for(
        lambda: (a := stack.tail.events(CALL_AUDIO, call_id)) and len(a) >= 2 * frames and a,
        30,
        f"{2 * frames} audio frames of {call_id}",
        0.1,
    )
    for ch in (Channel.caller, Channel.counselor):
        seqs = sorted(f.seq for f in audio if f.channel == ch)
        assert seqs == list(range(frames)), (ch, seqs)


def test_gateway_ends_a_call_that_goes_silent(stack: BadInputStack) -> None:
    """No end message and no audio: after the idle timeout the gateway says so, closes, and publishes
    CallEnded(reason=idle_timeout) with the audio received so far."""
    call_id = f"gw-idle-{stack.suffix}"
    with connect(stack.ingest_url, max_size=None, open_timeout=10) as ws:
        ws.send(start_msg(call_id))
        accepted(ws, call_id)
        for _ in range(3):
            ws.send(pcm_frame(100))
        t0 = time.monotonic()
        msg = expect_refusal(ws, "idle_timeout", 1008)
        waited = time.monotonic() - t0
    assert waited >= IDLE_TIMEOUT_S * 0.9, f"ended after {waited:.1f} s, before the idle timeout"
    assert "call ended" in msg["message"]
    ended = call_ended(stack, call_id)
    assert ended.reason == EndReason.idle_timeout
    assert ended.detail == f"no audio for {IDLE_TIMEOUT_S:g} s"
    assert ended.duration_s == pytest.approx(0.3)
    stack.assert_alive_and_ready("asr-gateway")
    health = httpx.get(stack.url("asr-gateway", "/healthz"), timeout=5).json()
    assert health["calls"] == 0  # nothing left open by any of the refused calls
