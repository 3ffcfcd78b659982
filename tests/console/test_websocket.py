"""The live websocket: resume from the last seq with nothing missing or duplicated, role checks on
the handshake, and back-pressure (a client that never reads is dropped, not buffered)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from console.app import create_app
from console.recorder import Recorder
from console.store import Store
from tests.console.conftest import LiveServer, login, session_cookie
from tests.util import raw_ws_handshake


def _collect(ws: Any, until_seq: int) -> list[dict[str, Any]]:
    """Receive messages until the event with ``until_seq`` has arrived; returns the event items."""
    items: list[dict[str, Any]] = []
    while not items or items[-1]["seq"] < until_seq:
        msg = ws.receive_json()
        if msg["type"] == "events":
            items.extend(msg["items"])
    return items


def test_resume_without_gaps_or_duplicates(client_factory, store: Store, users, call_script) -> None:
    c = client_factory()
    login(c, "kim")
    rec = Recorder(
        store, c.app.state.hub
    )  # the recorder's handler; Kafka delivery is tested in test_recorder
    events = call_script().full()
    call_id = events[0].call_id
    for e in events[:4]:
        rec.handle(e)
    seen: list[dict[str, Any]] = []
    with c.websocket_connect(f"/ws/calls/{call_id}?after=0") as ws:
        seen += _collect(ws, 4)
        for e in events[4:7]:
            rec.handle(e)  # live, while connected
        seen += _collect(ws, 7)
    for e in events[7:]:
        rec.handle(e)  # while the client is away
    for e in events:
        rec.handle(e)  # a redelivery of everything: nothing new
    last = seen[-1]["seq"]
    with c.websocket_connect(f"/ws/calls/{call_id}?after={last}") as ws:
        seen += _collect(ws, len(events))
    assert [i["seq"] for i in seen] == list(range(1, len(events) + 1))
    assert [i["event"]["type"] for i in seen] == [
        "call_started",
        "segment",
        "segment",
        "segment",
        "segment",
        "keywords",
        "suggestion",
        "segment",
        "call_ended",
        "summary",
    ]
    assert rec.redelivered == len(events)


def test_websocket_checks_the_role(client_factory, store: Store, users, call_script) -> None:
    from starlette.websockets import WebSocketDisconnect

    script = call_script(counselor="kim", team="A")
    store.record(script.started())
    anon = client_factory()
    with (
        pytest.raises(WebSocketDisconnect) as exc,
        anon.websocket_connect(f"/ws/calls/{script.call_id}") as ws,
    ):
        ws.receive_json()
    assert exc.value.code == 4401
    for name, code in (("lee", 4403), ("bossb", 4403)):
        c = client_factory()
        login(c, name)
        with (
            pytest.raises(WebSocketDisconnect) as exc,
            c.websocket_connect(f"/ws/calls/{script.call_id}") as ws,
        ):
            ws.receive_json()
        assert exc.value.code == code
    for name in ("kim", "boss", "qa1"):
        c = client_factory()
        login(c, name)
        with c.websocket_connect(f"/ws/calls/{script.call_id}") as ws:
            assert _collect(ws, 1)[0]["event"]["type"] == "call_started"
    # A cross-site page cannot ride the session (Origin checked on the handshake).
    c = client_factory()
    login(c, "kim")
    with (
        pytest.raises(WebSocketDisconnect),
        c.websocket_connect(f"/ws/calls/{script.call_id}", headers={"origin": "http://evil.example"}) as ws,
    ):
        ws.receive_json()


def test_client_that_never_reads_is_dropped_and_can_resume(
    console_settings, store: Store, users, call_script
) -> None:
    from websockets.sync.client import connect

    settings = console_settings.model_copy(update={"ws_queue_max": 8, "ws_send_timeout_s": 2.0})
    app = create_app(settings, with_recorder=False, store=store)
    script = call_script()
    store.record(script.started())
    with LiveServer(app) as srv:
        cookie = session_cookie(srv.url, "kim")
        hub = app.state.hub
        rec = Recorder(store, hub)
        stalled = raw_ws_handshake(srv.port, f"/ws/calls/{script.call_id}?after=0", cookie)
        deadline = time.monotonic() + 30
        while hub.subscribers(script.call_id) == 0:
            assert time.monotonic() < deadline, "stalled client never subscribed"
            time.sleep(0.05)
        # Long segments of ordinary speech (one 3,900-syllable word would cost the name finder's
        # morpheme analysis ten times as much per character, and this test is about the socket).
        text = ("대형폐기물 수거 신청은 어떻게 하나요 수수료도 궁금합니다. " * 120)[:3900]
        n = 0
        # Keep publishing until the server gives up on the stalled client. Its buffer is bounded by
        # ws_queue_max; without the drop this loop would run until the deadline.
        while hub.subscribers(script.call_id) > 0:
            assert time.monotonic() < deadline + 60, "the stalled client was never dropped"
            for _ in range(50):
                n += 1
                rec.handle(script.segment(n, text, t=float(n)))
            time.sleep(0.05)
        stalled.close()
        # A well-behaved client resumes from the store and gets everything exactly once.
        total = 1 + n
        ws_url = f"ws://127.0.0.1:{srv.port}/ws/calls/{script.call_id}?after=0"
        with connect(ws_url, additional_headers={"Cookie": cookie}, max_size=None) as ws:
            seqs: list[int] = []
            import json

            while not seqs or seqs[-1] < total:
                msg = json.loads(ws.recv(timeout=30))
                if msg["type"] == "events":
                    seqs += [i["seq"] for i in msg["items"]]
        assert seqs == list(range(1, total + 1))
        assert n >= settings.ws_queue_max


def test_a_shed_card_tells_the_counselor_it_was_made_without_the_conversation(call_script) -> None:
    """Load shedding (assist): the browser payload carries ``shed``, which common.js shows as a note."""
    from console.projection import payload_of

    call = call_script()
    card = call.suggestion(1, "seg-1", 3.0)
    assert payload_of(card)["shed"] is False
    assert payload_of(card.model_copy(update={"shed": True}))["shed"] is True
