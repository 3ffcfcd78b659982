"""Ingest authentication and admission (security issue #14).

Who may start a call on the gateway: only a start signed with the site's ingest secret for exactly
that call (call id, counselor, team, caller number), before its expiry. What one client may take:
one of ``max_calls`` slots from the moment its socket is accepted, audio at about real time, and at
most ``max_call_s`` of call.

The sign/verify tests are pure (an injected clock). The gateway tests run the real gateway app
under uvicorn on a loopback port, real WebSocket clients and the real test broker; every wait ends
on something the gateway reports (a reply, a close, an event on Kafka, its readiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from asr.gateway import create_gateway_app
from asr.settings import AsrSettings
from streaming.codec import decode, encode
from streaming.events import CallEnded, CallStarted, EndReason, Event
from streaming.ingest import INGEST_PATH, StartTokenError, sign_start, start_token, verify_start
from streaming.settings import KafkaSettings
from streaming.topics import CALL_EVENTS
from tests.asr.conftest import read_events

KEY = "site-ingest-secret-for-tests"
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
CALL = {"call_id": "call-a", "counselor_id": "kim", "team": "1팀", "caller_number": "010-1234-5678"}
NUMBER = "010-2222-3333"


def _sign(secret: str = KEY, ttl_s: float = 60, **over: Any) -> str:
    f = {**CALL, **over}
    return sign_start(
        secret,
        f["call_id"],
        f["counselor_id"],
        f["team"],
        f["caller_number"],
        T0 + timedelta(seconds=ttl_s),
    )


def _verify(token: str | None, secrets: str | list[str] = KEY, now: datetime = T0, **over: Any) -> datetime:
    f = {**CALL, **over}
    return verify_start(
        secrets,
        token,
        f["call_id"],
        f["counselor_id"],
        f["team"],
        f["caller_number"],
        max_ttl_s=300,
        now=now,
    )


def _reason(token: str | None, **kw: Any) -> str:
    with pytest.raises(StartTokenError) as exc:
        _verify(token, **kw)
    return exc.value.reason


# --------------------------------------------------------------------------- sign / verify (pure)


def test_a_token_verifies_for_its_own_start_until_it_expires() -> None:
    token = _sign(ttl_s=60)
    assert re.fullmatch(r"v1\.\d+\.[A-Za-z0-9_-]{43}", token)
    assert _verify(token) == T0 + timedelta(seconds=60)
    assert _verify(token, now=T0 + timedelta(seconds=59)) == T0 + timedelta(seconds=60)
    assert _reason(token, now=T0 + timedelta(seconds=60)) == "expired"
    assert _reason(token, now=T0 + timedelta(hours=1)) == "expired"


@pytest.mark.parametrize(
    "over",
    [
        {"call_id": "call-b"},
        {"counselor_id": "lee"},
        {"team": "2팀"},
        {"team": None},
        {"team": ""},
        {"caller_number": "010-1234-5679"},
        {"caller_number": None},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_a_token_is_bound_to_every_identity_field(over: dict[str, Any]) -> None:
    assert _reason(_sign(), **over) == "bad_signature"


def test_the_encoding_is_unambiguous() -> None:
    """Fields cannot be shifted across a separator: ("a.b", "c") and ("a", "b.c") sign differently."""
    a = sign_start(KEY, "a.b", "c", None, None, T0)
    b = sign_start(KEY, "a", "b.c", None, None, T0)
    c = sign_start(KEY, "a", "b", "c", None, T0)
    d = sign_start(KEY, "a", "b", None, "c", T0)
    assert len({a, b, c, d}) == 4


def test_wrong_secret_changed_expiry_and_malformed_tokens() -> None:
    good = _sign()
    assert _reason(_sign(secret="another-site")) == "bad_signature"
    _, exp, sig = good.split(".")
    assert _reason(f"v1.{int(exp) + 3600}.{sig}") == "bad_signature"  # the expiry is signed too
    assert _reason(None) == "missing"
    assert _reason("") == "missing"
    for bad in [
        "v1",
        "v2." + good[3:],
        f"v1.{exp}",
        f"v1.-5.{sig}",
        f"v1.{exp}.{sig}.x",
        f"v1.{exp}.{sig[:-1]}",
    ]:
        assert _reason(bad) == "malformed", bad
    assert _reason(f"v1.{exp}.{'é' * 43}") == "malformed"


def test_a_token_expiring_too_far_ahead_is_refused() -> None:
    assert _reason(_sign(ttl_s=301)) == "too_far_ahead"
    assert _verify(_sign(ttl_s=300)) == T0 + timedelta(seconds=300)


def test_rotation_accepts_the_previous_secret_while_it_is_configured() -> None:
    old = _sign(secret="old-secret")
    assert _verify(old, secrets=["new-secret", "old-secret"])
    assert _reason(old, secrets=["new-secret"]) == "bad_signature"


def test_signing_needs_a_secret_and_an_aware_expiry() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign_start("", "c", "k", None, None, T0)
    with pytest.raises(ValueError, match="timezone"):
        sign_start(KEY, "c", "k", None, None, datetime(2026, 1, 1))  # naive on purpose
    assert start_token(KEY, "c", "k", None, None, ttl_s=30, now=T0) == sign_start(
        KEY, "c", "k", None, None, T0 + timedelta(seconds=30)
    )


def test_production_refuses_the_dev_ingest_secret_and_no_pacing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASAN_ENV", "production")
    monkeypatch.setenv("DASAN_ASR_CALLER_KEY_SECRET", "site-caller-secret")
    with pytest.raises(ValidationError, match="DASAN_ASR_INGEST_SECRET"):
        AsrSettings()
    with pytest.raises(ValidationError, match="DASAN_ASR_INGEST_SECRET"):
        AsrSettings(ingest_secret="site", ingest_secret_previous="dev-only-ingest-secret")
    with pytest.raises(ValidationError, match="MAX_AHEAD_S=0"):
        AsrSettings(ingest_secret="site", max_ahead_s=0)
    s = AsrSettings(ingest_secret="site", ingest_secret_previous="old")
    assert s.ingest_secrets() == ["site", "old"]


def test_a_consumer_reads_an_end_reason_it_does_not_know_as_error() -> None:
    """A newer gateway may add a reason within schema version 1: a consumer must not dead-letter it."""
    key, value, headers = encode(CallEnded(call_id="c-1", reason=EndReason.too_fast))
    assert decode(value, headers, key).reason == EndReason.too_fast  # type: ignore[attr-defined]
    newer = value.replace(b'"too_fast"', b'"reason_of_the_future"')
    ignored: list[str] = []
    ev = decode(newer, headers, key, ignored=ignored)
    assert isinstance(ev, CallEnded) and ev.reason == EndReason.error
    assert ignored == ["CallEnded.reason"]
    with pytest.raises(ValidationError):
        CallEnded.model_validate({**json.loads(newer), "reason": "reason_of_the_future"})


# --------------------------------------------------------------------------- the gateway, live


@dataclass
class LiveGateway:
    """The gateway app under uvicorn on a free loopback port, in a thread."""

    settings: AsrSettings
    kafka: KafkaSettings

    def __post_init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = create_gateway_app(self.settings, self.kafka)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                log_config=None,
                lifespan="on",
                ssl_certfile=str(self.settings.tls_certfile) if self.settings.tls_certfile else None,
                ssl_keyfile=str(self.settings.tls_keyfile) if self.settings.tls_keyfile else None,
            )
        )
        self.scheme = "https" if self.settings.tls_certfile else "http"
        self.url = f"{'wss' if self.settings.tls_certfile else 'ws'}://127.0.0.1:{self.port}{INGEST_PATH}"

    def __enter__(self) -> LiveGateway:
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "gateway did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)

    def get(self, path: str) -> httpx.Response:
        ca = str(self.settings.tls_cafile) if self.settings.tls_cafile else True
        return httpx.get(f"{self.scheme}://127.0.0.1:{self.port}{path}", timeout=5, verify=ca)

    def refused(self, reason: str) -> float:
        m = re.search(
            rf'^dasan_ingest_refused_total\{{reason="{reason}"\}} (\S+)$', self.get("/metrics").text, re.M
        )
        return float(m.group(1)) if m else 0.0

    def wait_idle(self) -> None:
        """Until the gateway reports no connection holding a slot (every exit path released it)."""
        deadline = time.monotonic() + 10
        while (body := self.get("/readyz").json())["connections"] != 0:
            assert time.monotonic() < deadline, body
            time.sleep(0.02)


def settings(**kw: Any) -> AsrSettings:
    base: dict[str, Any] = {
        "ingest_secret": KEY,
        "caller_key_secret": "caller-secret",
        "idle_timeout_s": 10.0,
        "max_frame_ms": 100,
        "max_calls": 8,
    }
    return AsrSettings(**{**base, **kw})


@pytest.fixture()
def live(kafka_settings: KafkaSettings) -> Iterator[Callable[..., LiveGateway]]:
    """live(**settings) → a started gateway with those settings (stopped after the test)."""
    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(LiveGateway(settings(**kw), kafka_settings))


def start(call_id: str, token: str | None = "sign", **kw: Any) -> str:
    msg: dict[str, Any] = {
        "type": "start",
        "call_id": call_id,
        "counselor_id": "kim",
        "team": "1팀",
        "codec": "mulaw",
        "sample_rate": 8000,
        "channels": 1,
        **kw,
    }
    if token == "sign":
        token = start_token(KEY, call_id, msg["counselor_id"], msg["team"], msg.get("caller_number"))
    if token is not None:
        msg["token"] = token
    return json.dumps(msg)


FRAME = b"\xff" * 800  # 100 ms of μ-law silence, 8 kHz mono


async def reply_and_close(ws: ClientConnection) -> tuple[dict[str, Any], int | None]:
    """The gateway's next message, then (the socket being closed by it) the close code."""
    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    return msg, ws.close_code


async def send_audio(ws: ClientConnection, frames: int, speed: float = 1.0) -> int:
    """Send ``frames`` FRAMEs at ``speed`` × real time (paced against the clock); returns how many were
    sent before the gateway closed the socket."""
    t0 = time.monotonic()
    for k in range(frames):
        try:
            await ws.send(FRAME)
        except ConnectionClosed:
            return k
        await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.1 / speed - time.monotonic()))
    return frames


def events(kafka: KafkaSettings, call_id: str) -> list[Event]:
    """The call's call.events, read until its CallEnded (everything published before it is there too:
    one call's events share a partition, in order)."""
    return read_events(
        kafka, CALL_EVENTS, call_id, lambda ev: any(isinstance(e, CallEnded) for e in ev), timeout_s=30
    )


def forged_starts(call_id: str) -> list[tuple[str, str, str]]:
    """(case, start message, metric reason) of starts for ``call_id`` that must be refused."""
    expired = sign_start(KEY, call_id, "kim", "1팀", NUMBER, datetime.now(UTC) - timedelta(seconds=1))
    far = sign_start(KEY, call_id, "kim", "1팀", NUMBER, datetime.now(UTC) + timedelta(days=2))
    return [
        ("no token", start(call_id, token=None, caller_number=NUMBER), "missing"),
        ("garbage", start(call_id, token="v1.x.y", caller_number=NUMBER), "malformed"),
        (
            "other secret",
            start(call_id, token=start_token("guessed", call_id, "kim", "1팀", NUMBER), caller_number=NUMBER),
            "bad_signature",
        ),
        ("expired", start(call_id, token=expired, caller_number=NUMBER), "expired"),
        ("expires too far ahead", start(call_id, token=far, caller_number=NUMBER), "too_far_ahead"),
        (
            "token of another call",
            start(call_id, token=start_token(KEY, "other-call", "kim", "1팀", NUMBER), caller_number=NUMBER),
            "bad_signature",
        ),
        (
            "counselor changed",
            start(
                call_id,
                token=start_token(KEY, call_id, "lee", "1팀", NUMBER),
                counselor_id="kim",
                caller_number=NUMBER,
            ),
            "bad_signature",
        ),
        (
            "caller number changed",
            start(
                call_id, token=start_token(KEY, call_id, "kim", "1팀", "010-9999-0000"), caller_number=NUMBER
            ),
            "bad_signature",
        ),
    ]


def test_forged_starts_are_refused_and_publish_nothing(
    live: Callable[..., LiveGateway],
    kafka_settings: KafkaSettings,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = live()
    call_id = f"sec-auth-{unique}"
    cases = forged_starts(call_id)
    before = {r: gateway.refused(f"unauthorized_{r}") for _, _, r in cases}

    async def run() -> list[tuple[str, dict[str, Any], int | None]]:
        out = []
        for case, msg, _ in cases:
            async with connect(gateway.url) as ws:
                await ws.send(msg)
                reply, code = await reply_and_close(ws)
                out.append((case, reply, code))
        # The genuine start of the same call is accepted afterwards.
        async with connect(gateway.url) as ws:
            await ws.send(start(call_id, caller_number=NUMBER))
            assert json.loads(await ws.recv()) == {
                "type": "accepted",
                "call_id": call_id,
                "max_frame_ms": 100,
            }
            await ws.send(FRAME)
            await ws.send(json.dumps({"type": "end"}))
            assert json.loads(await ws.recv())["type"] == "closed"
        return out

    with caplog.at_level(logging.WARNING, logger="dasan.asr.gateway"):
        results = asyncio.run(run())
    for case, reply, code in results:
        assert reply["type"] == "error" and reply["code"] == "unauthorized", (case, reply)
        assert code == 1008, case
    expected: dict[str, int] = {}
    for _, _, r in cases:
        expected[r] = expected.get(r, 0) + 1
    for r, n in expected.items():
        assert gateway.refused(f"unauthorized_{r}") == before[r] + n, r

    # Logged with the call id only: never the caller number or a token.
    refusals = [rec for rec in caplog.records if rec.getMessage().startswith("start refused")]
    assert len(refusals) == len(cases)
    for rec in refusals:
        assert getattr(rec, "call_id", None) == call_id
        flat = json.dumps({k: str(v) for k, v in vars(rec).items()}, ensure_ascii=False)
        assert "2222" not in flat and "v1." not in flat, flat

    # Kafka: the refused starts published nothing; the one CallStarted is the genuine one.
    evs = events(kafka_settings, call_id)
    started = [e for e in evs if isinstance(e, CallStarted)]
    assert len(started) == 1, evs
    assert started[0].counselor_id == "kim" and started[0].caller_number_masked == "010-****-3333"
    assert [e.reason for e in evs if isinstance(e, CallEnded)] == [EndReason.hangup]
    gateway.wait_idle()


def test_parallel_connects_get_exactly_max_calls_slots(live: Callable[..., LiveGateway], unique: str) -> None:
    gateway = live(max_calls=3)
    n, extra = 3, 5
    busy_before = gateway.refused("busy")

    async def one(ws: ClientConnection, i: int) -> str:
        with contextlib.suppress(ConnectionClosed):  # a refused socket may be closed already
            await ws.send(start(f"sec-par{i}-{unique}"))
        try:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except ConnectionClosed:
            return "closed without a reply"
        return "accepted" if reply["type"] == "accepted" else str(reply["code"])

    async def run() -> list[str]:
        # Every socket is open (accepted by the gateway) before any start message is sent.
        sockets = await asyncio.gather(*(connect(gateway.url) for _ in range(n + extra)))
        try:
            outcomes = await asyncio.gather(*(one(ws, i) for i, ws in enumerate(sockets)))
            ready = gateway.get("/readyz")
            assert ready.status_code == 503 and ready.json()["connections"] == n, ready.json()
            for ws, outcome in zip(sockets, outcomes, strict=True):
                if outcome == "accepted":
                    await ws.send(json.dumps({"type": "end"}))
                    assert json.loads(await ws.recv())["type"] == "closed"
            return list(outcomes)
        finally:
            for ws in sockets:
                await ws.close()

    outcomes = asyncio.run(run())
    assert sorted(outcomes) == sorted(["accepted"] * n + ["busy"] * extra), outcomes
    assert gateway.refused("busy") == busy_before + extra
    gateway.wait_idle()  # every slot came back
    assert gateway.get("/readyz").status_code == 200


def test_a_refused_or_silent_connection_gives_its_slot_back(
    live: Callable[..., LiveGateway], unique: str
) -> None:
    gateway = live(max_calls=1)

    async def run() -> None:
        async with connect(gateway.url) as ws:  # refused start
            await ws.send(start(f"sec-slot-{unique}", token=None))
            assert (await reply_and_close(ws))[0]["code"] == "unauthorized"
        async with connect(gateway.url) as ws:  # audio before the start
            await ws.send(FRAME)
            assert (await reply_and_close(ws))[0]["code"] == "out_of_order"
        async with connect(gateway.url) as ws:  # dropped without a word
            pass
        gateway.wait_idle()
        async with connect(gateway.url) as ws:  # the single slot is free again
            await ws.send(start(f"sec-slot2-{unique}"))
            assert json.loads(await ws.recv())["type"] == "accepted"
            await ws.send(json.dumps({"type": "end"}))
            assert json.loads(await ws.recv())["type"] == "closed"

    asyncio.run(run())
    gateway.wait_idle()


def test_audio_at_50x_real_time_is_refused_as_too_fast(
    live: Callable[..., LiveGateway], kafka_settings: KafkaSettings, unique: str
) -> None:
    gateway = live(max_ahead_s=1.0)
    call_id = f"sec-fast-{unique}"
    before = gateway.refused("too_fast")

    async def run() -> tuple[dict[str, Any], int | None, int]:
        async with connect(gateway.url) as ws:
            await ws.send(start(call_id))
            assert json.loads(await ws.recv())["type"] == "accepted"
            sent = await send_audio(ws, 100, speed=50)  # 10 s of audio in 0.2 s
            reply, code = await reply_and_close(ws)
            return reply, code, sent

    reply, code, sent = asyncio.run(run())
    assert reply["type"] == "error" and reply["code"] == "too_fast", reply
    assert code == 1008
    assert gateway.refused("too_fast") == before + 1
    ended = [e for e in events(kafka_settings, call_id) if isinstance(e, CallEnded)]
    assert len(ended) == 1 and ended[0].reason == EndReason.too_fast
    # Cut at about max_ahead_s of audio, long before the 10 s were through.
    assert ended[0].duration_s is not None and 1.0 < ended[0].duration_s < 3.0, ended[0]
    gateway.wait_idle()


def test_audio_at_real_time_is_not_refused(live: Callable[..., LiveGateway], unique: str) -> None:
    gateway = live(max_ahead_s=0.3)

    async def run() -> dict[str, Any]:
        async with connect(gateway.url) as ws:
            await ws.send(start(f"sec-paced-{unique}"))
            assert json.loads(await ws.recv())["type"] == "accepted"
            assert await send_audio(ws, 8) == 8  # 0.8 s of audio at 1×
            await ws.send(json.dumps({"type": "end"}))
            return dict(json.loads(await ws.recv()))

    closed = asyncio.run(run())
    assert closed["type"] == "closed" and closed["frames"] == 8, closed


def test_a_call_longer_than_max_call_s_is_ended(
    live: Callable[..., LiveGateway], kafka_settings: KafkaSettings, unique: str
) -> None:
    gateway = live(max_call_s=0.6, max_ahead_s=1.0)
    call_id = f"sec-long-{unique}"
    before = gateway.refused("max_duration")

    async def run() -> tuple[dict[str, Any], int | None, float]:
        async with connect(gateway.url) as ws:
            await ws.send(start(call_id))
            assert json.loads(await ws.recv())["type"] == "accepted"
            t0 = time.monotonic()
            await send_audio(ws, 100)  # audio keeps flowing at real time: the call is cut, not idle
            reply, code = await reply_and_close(ws)
            return reply, code, time.monotonic() - t0

    reply, code, took = asyncio.run(run())
    assert reply["type"] == "error" and reply["code"] == "max_duration", reply
    assert code == 1008 and took < 5
    assert gateway.refused("max_duration") == before + 1
    ended = [e for e in events(kafka_settings, call_id) if isinstance(e, CallEnded)]
    assert len(ended) == 1 and ended[0].reason == EndReason.max_duration

    # A silent call reaches max_call_s (0.6 s) before its idle timeout (10 s): ended as max_duration.
    silent = f"sec-long-silent-{unique}"

    async def quiet() -> tuple[dict[str, Any], int | None]:
        async with connect(gateway.url) as ws:
            await ws.send(start(silent))
            assert json.loads(await ws.recv())["type"] == "accepted"
            return await reply_and_close(ws)

    reply, code = asyncio.run(quiet())
    assert reply["code"] == "max_duration" and code == 1008, reply
    ended = [e for e in events(kafka_settings, silent) if isinstance(e, CallEnded)]
    assert [e.reason for e in ended] == [EndReason.max_duration]
    gateway.wait_idle()


# --------------------------------------------------------------------------- wss


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA), made with the openssl command line."""
    cert, key = tmp / "gateway.crt", tmp / "gateway.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def test_the_gateway_serves_wss_and_clients_verify_it(
    live: Callable[..., LiveGateway], kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    """With a certificate the gateway speaks only TLS: a client that trusts the site CA streams a
    call; plain ws:// and a client that does not trust the certificate get nowhere."""
    cert, key = self_signed(tmp_path)
    gateway = live(tls_certfile=cert, tls_keyfile=key, tls_cafile=cert)
    assert gateway.url.startswith("wss://")
    client = gateway.settings.client_ssl(gateway.url)
    assert client is not None and gateway.settings.client_ssl("ws://x") is None
    call_id = f"sec-tls-{unique}"

    async def run() -> dict[str, Any]:
        async with connect(gateway.url, ssl=client) as ws:
            await ws.send(start(call_id))
            assert json.loads(await ws.recv())["type"] == "accepted"
            await ws.send(FRAME)
            await ws.send(json.dumps({"type": "end"}))
            return dict(json.loads(await ws.recv()))

    closed = asyncio.run(run())
    assert closed["type"] == "closed" and closed["frames"] == 1, closed
    assert any(isinstance(e, CallStarted) for e in events(kafka_settings, call_id))

    async def plain() -> None:
        async with connect(gateway.url.replace("wss://", "ws://"), open_timeout=10) as ws:
            await ws.send(start(f"{call_id}-plain"))

    with pytest.raises((OSError, InvalidHandshake, ConnectionClosed, TimeoutError)):
        asyncio.run(plain())

    async def untrusted() -> None:
        async with connect(gateway.url, ssl=ssl.create_default_context(), open_timeout=10):
            pass

    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(untrusted())


def test_tls_settings_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        settings(tls_certfile=tmp_path / "a.crt")
