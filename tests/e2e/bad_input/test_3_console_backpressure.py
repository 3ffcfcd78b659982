"""3. Console back-pressure: a websocket client that never reads is dropped, not buffered (see the
package docstring)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from streaming.events import (
    DraftAnswer,
    RetrievedPassage,
    Suggestion,
)
from streaming.kafka import EventProducer
from tests.console.conftest import CallScript
from tests.util import raw_ws_handshake, wait_for

from .harness import COUNSELOR, BadInputStack

pytestmark = pytest.mark.slow


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


def test_console_drops_a_client_that_never_reads(stack: BadInputStack) -> None:
    """While a call produces large events (≈ 600 KB each on the websocket), a client that never reads
    is dropped, not buffered: the console's RSS stays bounded, the server closes the connection, the
    client resumes with ``?after=<last seq it got>`` and receives the rest exactly once, and a normal
    client on the same call gets every event without being dropped.

    A warm-up of the same events with only the normal client comes first, so the RSS bound measures
    what the stalled client costs, not the first large rows the console ever handled."""
    call = CallScript(f"bp-{stack.suffix}", counselor=COUNSELOR, team="A")
    warmup, flood = 20, 40
    total = 1 + warmup + flood  # call_started, then the suggestions
    port = stack.port("console")
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

                def arrived(n: int = n) -> bool:
                    return bool(normal_closed or (normal and normal[-1] >= n + 1))

                wait_for(
                    arrived,
                    60,
                    f"event {n + 1} at the normal client",
                    0.02,
                )
                assert not normal_closed, f"the normal client was dropped: {normal_closed}"

        producer.send(call.started()).get(timeout=30)
        stack.wait_recorded(call.call_id)
        clients0 = stack.metric("console", "dasan_console_ws_clients")
        drops0 = stack.metric("console", "dasan_console_ws_dropped_total")
        reader = threading.Thread(target=read_normally, daemon=True)
        reader.start()
        wait_for(lambda: normal, 30, "the normal client", 0.1)
        produce(1, warmup)
        slow = raw_ws_handshake(port, f"/ws/calls/{call.call_id}?after=0", cookie)
        try:
            wait_for(
                lambda: stack.metric("console", "dasan_console_ws_clients") == clients0 + 2,
                30,
                "both clients subscribed",
                0.1,
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
            wait_for(
                lambda: stack.metric("console", "dasan_console_ws_clients") == clients0 + 1,
                30,
                "the slow client to be unsubscribed",
                0.1,
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
