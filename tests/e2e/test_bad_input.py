"""Bad input at every boundary, against the real services as separate processes and the real broker.

One stack per module (``dasan asr gateway``, ``dasan asr worker``, ``dasan assist run``,
``dasan console run``, each with its own consumer group), shared by the tests below in file order:

1. **Audio ingest** (the gateway's WebSocket): malformed frames, bad start messages, frames out of
   order, a 50 MB frame (refused with close 1009 while the gateway's RSS stays flat), a call that
   goes silent (ended after the idle timeout with ``CallEnded(reason=idle_timeout)``), and a good
   call afterwards.
2. **Kafka topics**: invalid JSON, a newer ``schema_version``, an unknown event type and an event
   type that belongs on another topic, produced with a raw ``KafkaProducer`` to every topic of the
   registry. Every consumer group that reads the topic must dead-letter each record to the topic's
   DLQ with the error headers, and stay ready. Who consumes what (``CONSUMERS`` below):

   ==================  ===============================================
   call.events         asr workers, assist, console recorder
   call.audio          asr workers
   call.transcripts    assist, console recorder
   assist.suggestions  console recorder
   call.summaries      console recorder
   ==================  ===============================================

   Every registry topic has at least one consumer, so every topic's DLQ is asserted; the test
   fails if a topic is added to the registry without deciding who consumes it. After all the bad
   records, a good call (real speech through the gateway) must still go all the way through:
   transcript, summary, console — its events share the partitions the bad records went to.
3. **Console back-pressure**: a websocket client that never reads is dropped while a call produces
   large events; the console's RSS stays bounded; the client resumes with ``?after=SEQ``; a normal
   client on the same call receives everything exactly once.
4. **Hostile transcripts** in a real browser (Chromium via Playwright): shown literally, nothing
   executes. Screenshot in ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from dasan.demo import Service, _dasan
from streaming.broker import free_port
from streaming.codec import DecodeError, decode, encode, read_dead_letter
from streaming.events import (
    AudioFrame,
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    Codec,
    DraftAnswer,
    EndReason,
    KeywordsUpdated,
    RetrievedPassage,
    Suggestion,
    TranscriptSegment,
    TranscriptSource,
)
from streaming.ingest import INGEST_PATH
from streaming.kafka import EventProducer
from streaming.privacy import mask_text
from streaming.topics import (
    ASSIST_SUGGESTIONS,
    CALL_AUDIO,
    CALL_EVENTS,
    CALL_SUMMARIES,
    CALL_TRANSCRIPTS,
    TOPICS,
    dlq_name,
)
from tests.console.conftest import CallScript
from tests.e2e.conftest import wait_ready

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KB_CACHE = REPO / "var" / "test-cache" / "e2e-kb"
PASSWORD = "bad-input-password-0123"
COUNSELOR = "kim"
IDLE_TIMEOUT_S = 2.0
WS_QUEUE_MAX = 8

# Which service's consumer group reads which topic (see the module docstring).
CONSUMERS: dict[str, tuple[str, ...]] = {
    CALL_EVENTS: ("asr-worker", "assist", "console"),
    CALL_AUDIO: ("asr-worker",),
    CALL_TRANSCRIPTS: ("assist", "console"),
    ASSIST_SUGGESTIONS: ("console",),
    CALL_SUMMARIES: ("console",),
}


# --------------------------------------------------------------------------- Kafka tail


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Tail:
    """Reads topics from (at most) their current end in a background thread and keeps every record."""

    def __init__(self, kafka: Any, topics: list[str]) -> None:
        cfg = kafka.consumer_config(None)
        cfg.update(enable_auto_commit=False, fetch_max_wait_ms=50)
        self.consumer = KafkaConsumer(**cfg)
        tps = [
            TopicPartition(t, p) for t in topics for p in sorted(self.consumer.partitions_for_topic(t) or ())
        ]
        assert tps, f"no partitions for {topics}"
        self.consumer.assign(tps)
        # Tansu's end offsets are a lower bound (see docs/STATUS.md): at worst a little history is read.
        for tp, end in self.consumer.end_offsets(tps).items():
            self.consumer.seek(tp, end)
        self.records: list[Rec] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = self.consumer.poll(timeout_ms=200)
            with self._lock:
                for tp, recs in batches.items():
                    for r in recs:
                        self.records.append(
                            Rec(tp.topic, tp.partition, r.offset, r.key, r.value, list(r.headers or []))
                        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()

    def select(self, topic: str, key: str | None = None) -> list[Rec]:
        with self._lock:
            return [r for r in self.records if r.topic == topic and (key is None or r.key == key.encode())]

    def events(self, topic: str, call_id: str) -> list[Any]:
        out = []
        for r in self.select(topic, call_id):
            with contextlib.suppress(DecodeError):
                out.append(decode(r.value, r.headers, r.key))
        return out

    def wait(self, what: str, fn: Callable[[], Any], timeout_s: float = 60) -> Any:
        """Poll ``fn`` until it returns something truthy; fail with ``what`` at the deadline."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = fn()
            if got:
                return got
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def poll_until(what: str, fn: Callable[[], Any], timeout_s: float = 60, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    services: dict[str, Service]
    groups: dict[str, str]
    env: dict[str, str]
    kafka: Any
    tail: Tail
    log_dir: Path
    suffix: str
    cookies: dict[str, str] = field(default_factory=dict)

    def url(self, name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.services[name].port}{path}"  # type: ignore[attr-defined]

    @property
    def ingest_url(self) -> str:
        return f"ws://127.0.0.1:{self.services['asr-gateway'].port}{INGEST_PATH}"  # type: ignore[attr-defined]

    def rss(self, name: str) -> int:
        proc = self.services[name].proc
        assert proc is not None
        return psutil.Process(proc.pid).memory_info().rss

    def log_tail(self, name: str, n: int = 3000) -> str:
        p = self.services[name].log_path
        return p.read_text(errors="replace")[-n:] if p else ""

    def assert_alive_and_ready(self, *names: str) -> None:
        for name in names or tuple(self.services):
            svc = self.services[name]
            assert svc.alive(), f"{name} died:\n{self.log_tail(name)}"
            r = httpx.get(self.url(name, "/readyz"), timeout=5)
            assert r.status_code == 200, f"{name} not ready: {r.status_code} {r.text}\n{self.log_tail(name)}"

    def metric(self, name: str, metric: str, **labels: str) -> float:
        """Sum of a Prometheus metric of one service (samples whose labels include ``labels``)."""
        text = httpx.get(self.url(name, "/metrics"), timeout=5).text
        total = 0.0
        for line in text.splitlines():
            m = re.match(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$", line)
            if not m or m.group(1) != metric:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def console_cookie(self, username: str = COUNSELOR) -> str:
        if username not in self.cookies:
            with httpx.Client(base_url=self.url("console"), follow_redirects=False, timeout=10) as c:
                r = c.get("/login")
                token = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
                assert token, r.text[:500]
                r = c.post(
                    "/login",
                    data={
                        "username": username,
                        "password": PASSWORD,
                        "csrf_token": token.group(1),
                        "next": "/",
                    },
                )
                assert r.status_code == 303, r.text[:500]
                self.cookies[username] = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        return self.cookies[username]

    def api(self, path: str, username: str = COUNSELOR) -> httpx.Response:
        return httpx.get(
            self.url("console", path), headers={"Cookie": self.console_cookie(username)}, timeout=10
        )


@pytest.fixture(scope="module")
def stack(
    e2e_env: dict[str, str], kafka_settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The four services, started once for the module, each with its own consumer group."""
    u = uuid.uuid4().hex[:8]
    log_dir = tmp_path_factory.mktemp("bad-input-logs")
    groups = {
        "asr-worker": f"asr-workers-bad-{u}",
        "assist": f"assist-bad-{u}",
        "console": f"console-bad-{u}",
    }
    env = {
        **e2e_env,
        "DASAN_CONSOLE_DATABASE_URL": f"sqlite:///{log_dir / 'console.db'}",
        # Index folders are keyed by corpus content, models and settings: a cache across sessions is
        # safe, and spares the slice's build (1.5 min on a quiet 2-core machine, 4 under load).
        "DASAN_KB_INDEX_DIR": str(KB_CACHE),
    }
    specs: list[tuple[str, list[str], str, dict[str, str]]] = [
        (
            "asr-gateway",
            ["asr", "gateway"],
            "DASAN_ASR_GATEWAY_PORT",
            {"DASAN_ASR_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)},
        ),
        (
            "asr-worker",
            ["asr", "worker"],
            "DASAN_ASR_WORKER_PORT",
            {"DASAN_ASR_GROUP_ID": groups["asr-worker"]},
        ),
        (
            "assist",
            ["assist", "run"],
            "DASAN_ASSIST_HEALTH_PORT",
            {"DASAN_ASSIST_GROUP_ID": groups["assist"]},
        ),
        (
            "console",
            ["console", "run"],
            "DASAN_CONSOLE_PORT",
            {
                "DASAN_CONSOLE_RECORDER_GROUP": groups["console"],
                "DASAN_CONSOLE_SESSION_SECRET": "bad-input-session-secret-0123456789",
                "DASAN_CONSOLE_CALLER_KEY_SECRET": "bad-input-caller-secret-0123456789",
                "DASAN_CONSOLE_WS_QUEUE_MAX": str(WS_QUEUE_MAX),
                "DASAN_CONSOLE_WS_SEND_TIMEOUT_S": "2",
                "DASAN_CONSOLE_WS_HEARTBEAT_S": "1",
                # glibc keeps freed ~600 KB blocks in per-thread arenas (a dynamic mmap threshold):
                # a fixed threshold returns them at once, so RSS tracks live memory in the
                # back-pressure test instead of the allocator's high-water mark
                "MALLOC_MMAP_THRESHOLD_": "131072",
                "MALLOC_ARENA_MAX": "2",
            },
        ),
    ]
    # The tail starts before any service, so it sees every record the tests cause.
    tail = Tail(kafka_settings, [*TOPICS, *(dlq_name(t) for t in TOPICS)])
    services: dict[str, Service] = {}
    try:
        for name, args, port_env, extra in specs:
            port = free_port()
            svc = Service(name, args, f"http://127.0.0.1:{port}/readyz", env={port_env: str(port), **extra})
            svc.port = port  # type: ignore[attr-defined]
            svc.start(env, log_dir)
            services[name] = svc
        for svc in services.values():
            wait_ready(svc, 480)
        rc = subprocess.call(
            [
                _dasan(),
                "users",
                "add",
                COUNSELOR,
                "--role",
                "counselor",
                "--team",
                "A",
                "--password",
                PASSWORD,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        assert rc == 0, "dasan users add failed"
        yield Stack(services, groups, env, kafka_settings, tail, log_dir, u)
    finally:
        for svc in reversed(list(services.values())):
            svc.stop()
        tail.close()


# --------------------------------------------------------------------------- 1. audio ingest


def start_msg(call_id: str, **kw: Any) -> str:
    return json.dumps({"type": "start", "call_id": call_id, "counselor_id": COUNSELOR, "team": "A", **kw})


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


def call_ended(stack: Stack, call_id: str, timeout_s: float = 30) -> CallEnded:
    evs = stack.tail.wait(
        f"CallEnded of {call_id} on call.events",
        lambda: [e for e in stack.tail.events(CALL_EVENTS, call_id) if isinstance(e, CallEnded)],
        timeout_s,
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
    stack: Stack, case: str, frame: bytes, code: str, close_code: int
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
    frames = stack.tail.wait(
        f"the good frame of {call_id}", lambda: stack.tail.events(CALL_AUDIO, call_id), timeout_s=15
    )
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
    stack: Stack, case: str, first: str | bytes, code: str, close_code: int
) -> None:
    with connect(stack.ingest_url, max_size=None, open_timeout=10) as ws:
        ws.send(first)
        expect_refusal(ws, code, close_code)
    stack.assert_alive_and_ready("asr-gateway")


def test_gateway_refuses_messages_out_of_order(stack: Stack) -> None:
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


def test_gateway_refuses_a_50mb_frame_without_growing(stack: Stack) -> None:
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


def good_call(stack: Stack, call_id: str, frames: int = 10) -> None:
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
    audio = stack.tail.wait(
        f"{2 * frames} audio frames of {call_id}",
        lambda: (a := stack.tail.events(CALL_AUDIO, call_id)) and len(a) >= 2 * frames and a,
        timeout_s=30,
    )
    for ch in (Channel.caller, Channel.counselor):
        seqs = sorted(f.seq for f in audio if f.channel == ch)
        assert seqs == list(range(frames)), (ch, seqs)


def test_gateway_ends_a_call_that_goes_silent(stack: Stack) -> None:
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


# --------------------------------------------------------------------------- 2. bad records on every topic


def pipeline_call_id(stack: Stack) -> str:
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
    if topic == ASSIST_SUGGESTIONS:
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
    (or stated as consumed by no service, in which case nothing dead-letters its bad records)."""
    assert set(CONSUMERS) == set(TOPICS)
    assert all(CONSUMERS.values())


@pytest.mark.parametrize("topic", list(CONSUMERS))
def test_bad_records_reach_the_dlq_of_every_consumer(stack: Stack, topic: str) -> None:
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


def test_a_good_call_goes_through_after_the_bad_records(stack: Stack, shared_dir: Path) -> None:
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
    summaries = stack.tail.wait(
        f"the summary of {call_id}",
        lambda: stack.tail.events(CALL_SUMMARIES, call_id),
        timeout_s=90,
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

    items = poll_until(f"{call_id} in the console", recorded, timeout_s=60, every_s=0.5)
    segs = [e for e in items if e["type"] == "segment" and e["is_final"]]
    assert any(s["text"] == mask_text(finals[0].text) for s in segs)
    stack.assert_alive_and_ready()


# --------------------------------------------------------------------------- 3. console back-pressure


def _raw_ws_handshake(port: int, path: str, cookie: str) -> socket.socket:
    """A websocket client that completes the handshake and then never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, f"handshake refused: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _read_until_closed(s: socket.socket, timeout_s: float) -> tuple[bytes, bool]:
    """Everything the server sent, and whether it closed the connection within ``timeout_s``."""
    buf = b""
    deadline = time.monotonic() + timeout_s
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 16)
        except TimeoutError:
            continue
        except OSError:  # reset
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
    return buf, False


def _ws_messages(buf: bytes) -> list[tuple[int, bytes]]:
    """Complete (opcode, payload) messages in a server→client byte stream (unmasked frames)."""
    out: list[tuple[int, bytes]] = []
    i, partial, partial_op = 0, b"", 0
    while len(buf) - i >= 2:
        b0, b1 = buf[i], buf[i + 1]
        n, j = b1 & 0x7F, i + 2
        if n == 126:
            if len(buf) - j < 2:
                break
            n, j = int.from_bytes(buf[j : j + 2], "big"), j + 2
        elif n == 127:
            if len(buf) - j < 8:
                break
            n, j = int.from_bytes(buf[j : j + 8], "big"), j + 8
        if len(buf) - j < n:
            break
        op, payload = b0 & 0x0F, buf[j : j + n]
        i = j + n
        if op == 0:
            partial += payload
        else:
            partial, partial_op = payload, op
        if b0 & 0x80:
            out.append((partial_op, partial))
            partial = b""
    return out


def _big_suggestion(call: CallScript, n: int) -> Suggestion:
    """≈ 600 KB on the websocket: 100 passages with 2,000-character snippets."""
    text = ("불법주차 신고 안내 " * 250)[:1990] + f"{n:05d}"
    passages = [
        RetrievedPassage(
            doc_id=f"도로교통법/제{k}조",
            passage_id=f"도로교통법/제{k}조#{n}",
            citation=f"「도로교통법」 제{k}조",
            law_name="도로교통법",
            article_no=f"제{k}조",
            score=0.5,
            snippet=text,
        )
        for k in range(100)
    ]
    return Suggestion(
        call_id=call.call_id,
        suggestion_id=f"{call.call_id}-big-{n}",
        trigger_segment_ids=[f"{call.call_id}-caller-{n}"],
        query="불법주차 신고",
        passages=passages,
        draft=DraftAnswer(generator="grounded", abstained=True, abstain_reason="test"),
    )


def test_console_drops_a_client_that_never_reads(stack: Stack) -> None:
    """While a call produces large events (≈ 600 KB each on the websocket), a client that never reads
    is dropped, not buffered: the console's RSS stays bounded, the server closes the connection, the
    client resumes with ``?after=<last seq it got>`` and receives the rest exactly once, and a normal
    client on the same call gets every event without being dropped.

    A warm-up of the same events with only the normal client comes first, so the RSS bound measures
    what the stalled client costs, not the first large rows the console ever handled."""
    call = CallScript(f"bp-{stack.suffix}", counselor=COUNSELOR, team="A")
    warmup, flood = 20, 40
    total = 1 + warmup + flood  # call_started, then the suggestions
    port = stack.services["console"].port  # type: ignore[attr-defined]
    cookie = stack.console_cookie()
    normal: list[int] = []
    normal_closed: list[str] = []
    stop = threading.Event()

    def read_normally() -> None:
        url = f"ws://127.0.0.1:{port}/ws/calls/{call.call_id}?after=0"
        try:
            with connect(url, additional_headers={"Cookie": cookie}, max_size=None) as ws:
                while not stop.is_set():
                    try:
                        msg = json.loads(ws.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    if msg["type"] == "events":
                        normal.extend(i["seq"] for i in msg["items"])
        except ConnectionClosed as exc:
            normal_closed.append(repr(exc))

    with EventProducer(stack.kafka) as producer:

        def produce(first: int, last: int) -> None:
            # Paced: the next event only once the normal client has the previous one, so only a client
            # that does not read can fall behind.
            for n in range(first, last + 1):
                producer.send(_big_suggestion(call, n)).get(timeout=30)
                poll_until(
                    f"event {n + 1} at the normal client",
                    lambda n=n: normal_closed or (normal and normal[-1] >= n + 1),
                    60,
                    0.02,
                )
                assert not normal_closed, f"the normal client was dropped: {normal_closed}"

        producer.send(call.started()).get(timeout=30)
        poll_until(
            "the call in the console", lambda: stack.api(f"/api/calls/{call.call_id}").status_code == 200, 60
        )
        clients0 = stack.metric("console", "dasan_console_ws_clients")
        drops0 = stack.metric("console", "dasan_console_ws_dropped_total")
        reader = threading.Thread(target=read_normally, daemon=True)
        reader.start()
        poll_until("the normal client", lambda: normal, 30)
        produce(1, warmup)
        slow = _raw_ws_handshake(port, f"/ws/calls/{call.call_id}?after=0", cookie)
        try:
            poll_until(
                "both clients subscribed",
                lambda: stack.metric("console", "dasan_console_ws_clients") == clients0 + 2,
                30,
            )
            base = stack.rss("console")
            peak = [base]
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.is_set():
                    with contextlib.suppress(psutil.Error):
                        peak[0] = max(peak[0], stack.rss("console"))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                produce(warmup + 1, warmup + flood)
            finally:
                sampling.set()
                sampler.join(5)
            growth = peak[0] - base
            print(
                f"console RSS {base / 1e6:.0f} MB after warm-up, peak +{growth / 1e6:.1f} MB over {flood} events"
            )
            assert stack.metric("console", "dasan_console_ws_dropped_total") > drops0, (
                "slow client never dropped"
            )
            poll_until(
                "the slow client to be unsubscribed",
                lambda: stack.metric("console", "dasan_console_ws_clients") == clients0 + 1,
                30,
            )
            # ≈ 24 MB of payload went out during the flood; a buffered stalled client would hold it
            assert growth < 12 * 1024 * 1024, f"console RSS grew by {growth / 1e6:.1f} MB"
            # The server closed the slow connection; what it had sent tells the client where to resume.
            buf, closed = _read_until_closed(slow, 30)
            assert closed, "the console kept the dropped client's connection open"
        finally:
            slow.close()
        got: list[int] = []
        for op, payload in _ws_messages(buf):
            if op == 1:
                msg = json.loads(payload)
                if msg["type"] == "events":
                    got.extend(i["seq"] for i in msg["items"])
        assert got == list(range(1, len(got) + 1)), got
        assert len(got) < total, "the slow client received everything: it was not slow"
        last = got[-1] if got else 0
        resumed: list[int] = []
        url = f"ws://127.0.0.1:{port}/ws/calls/{call.call_id}?after={last}"
        with connect(url, additional_headers={"Cookie": cookie}, max_size=None) as ws:
            while not resumed or resumed[-1] < total:
                msg = json.loads(ws.recv(timeout=30))
                if msg["type"] == "events":
                    resumed.extend(i["seq"] for i in msg["items"])
        assert resumed == list(range(last + 1, total + 1))
        stop.set()
        reader.join(10)
    assert normal == list(range(1, total + 1)), "the normal client missed or repeated events"
    assert not normal_closed
    stack.assert_alive_and_ready("console")


# --------------------------------------------------------------------------- 4. hostile transcripts


HOSTILE = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '"><svg onload="window.__pwned=1">',
    '불법주차 신고요 </span></li><iframe src="javascript:window.__pwned=1"></iframe> 어디로 하나요?',
    "' onmouseover='window.__pwned=1' data-x='",
    "<b>굵게</b> &lt;이미 이스케이프&gt; &amp; {{7*7}} ${7*7} 😀 끝",
]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.mark.browser
def test_hostile_transcripts_are_shown_literally(stack: Stack, artifacts_dir: Path) -> None:
    """Hostile strings injected at call.transcripts for a live call reach the counselor's page over the
    websocket and are shown as text: no element is created, nothing runs (the page's CSP would also
    block inline handlers, so the DOM and the CSP reports are checked, not only window.__pwned)."""
    from playwright.sync_api import sync_playwright

    call = CallScript(f"xss-{stack.suffix}", counselor=COUNSELOR, team="A")
    expected = {f"{call.call_id}-caller-{i}": mask_text(h) for i, h in enumerate(HOSTILE)}
    assert sum("window.__pwned" in t for t in expected.values()) >= 4  # masking left the payloads in
    shots = artifacts_dir / "e2e"
    shots.mkdir(parents=True, exist_ok=True)
    base = stack.url("console")
    with EventProducer(stack.kafka) as producer, sync_playwright() as pw:
        producer.send(call.started()).get(timeout=30)
        poll_until(
            "the call in the console", lambda: stack.api(f"/api/calls/{call.call_id}").status_code == 200, 60
        )
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ko-KR").new_page()
            dialogs: list[str] = []
            errors: list[str] = []
            console_msgs: list[str] = []
            frames: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: console_msgs.append(m.text))
            page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(str(p))))
            page.goto(f"{base}/login")
            page.fill("input[name=username]", COUNSELOR)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/desk")
            page.goto(f"{base}/calls/{call.call_id}")
            page.wait_for_selector("#call-state.oncall", timeout=30_000)
            assert frames, "the page has no websocket"
            for i, h in enumerate(HOSTILE):
                producer.send(call.segment(i, h, Channel.caller, t=2.0 * i))
            producer.flush()
            for seg_id, text in expected.items():
                node = page.wait_for_selector(f'[data-segment-id="{seg_id}"].final', timeout=30_000)
                assert node is not None
                shown = page.text_content(f'[data-segment-id="{seg_id}"] .text')
                assert shown == text, (seg_id, shown, text)
            # they came over the websocket (the page was loaded before they were produced)
            arrived = set()
            for f in frames:
                with contextlib.suppress(ValueError):
                    for item in json.loads(f).get("items", []):
                        if item["event"].get("type") == "segment":
                            arrived.add(item["event"]["segment_id"])
            assert set(expected) <= arrived
            page.screenshot(path=str(shots / "bad-input-hostile-transcript.png"), full_page=True)
            injected = page.locator(
                "#transcript script, #transcript img, #transcript svg, #transcript iframe, #transcript b, "
                "[onerror], [onload], [onmouseover]"
            ).count()
            assert injected == 0, "markup from a transcript became elements"
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert not dialogs, dialogs
            assert not errors, errors
            csp = [m for m in console_msgs if "Content Security Policy" in m or "Refused to" in m]
            assert not csp, csp
            assert page.locator("#transcript li").count() == len(HOSTILE)
        finally:
            browser.close()
    stack.assert_alive_and_ready("console")
