"""The live websocket of one call: resume from ``?after=SEQ`` without gaps or repeats, then live
events in ``seq`` order, with back-pressure (a client that does not read is dropped, and resumes).

The handler subscribes to the in-process hub *before* reading the store, so nothing committed in
between is missed; whatever arrives out of order (or from another instance's recorder) is filled
in from the store. Messages: ``{"type":"events","items":[{seq,at,event}…]}`` and
``{"type":"status","last_seq","recorder_ok","at"}`` (heartbeat). Close codes: 4401 not logged in,
4403 not allowed, 4404 unknown call, 4429 too many live sockets for this user, 1008 the session
ended while open (revoked, expired, user deactivated: log in again), 1013 fell behind (resume with
``after``).

An open socket re-checks its session every ``ws_session_check_s``; a resume is a new handshake and
is checked like the first. Each socket opened is audited (``live_stream``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ..access import can_see_call
from ..auth import Authenticated, actor, session_still_valid, websocket_auth
from ..deps import SettingsDep, StoreDep
from ..hub import WS_DROPPED, Hub
from ..recorder import Recorder
from ..settings import ConsoleSettings
from ..store import NotFound, Store
from ..vocabulary import AuditAction

log = logging.getLogger("dasan.console")

router = APIRouter()

CLOSE_POLICY = 1008  # the session ended while the socket was open
CLOSE_RESUME = 1013
CLOSE_TOO_MANY = 4429


@router.websocket("/ws/calls/{call_id}")
async def ws_call(
    ws: WebSocket, call_id: str, store: StoreDep, settings: SettingsDep, after: int = 0
) -> None:
    """Live events of one call: first everything after ``after`` from the store, then live.

    A client that falls behind is closed with code 1013 and resumes with ``after=<last seq>``.
    """
    auth = await run_in_threadpool(websocket_auth, ws)
    if auth is None:
        await ws.close(code=4401)
        return
    user = auth.user
    try:
        call = await run_in_threadpool(store.get_call, call_id)
    except NotFound:
        await ws.close(code=4404)
        return
    if not can_see_call(user, call):
        await ws.close(code=4403)
        return
    open_per_user: Counter[int] = ws.app.state.ws_per_user  # touched on the event loop only
    if open_per_user[user.id] >= settings.ws_max_per_user:
        log.warning(
            "too many live sockets for one user", extra={"call_id": call_id, "username": user.username}
        )
        await ws.close(code=CLOSE_TOO_MANY)
        return
    open_per_user[user.id] += 1
    try:
        await run_in_threadpool(
            store.audit, actor(ws, user), AuditAction.live_stream, call_id, detail=f"after={max(0, after)}"
        )
        await ws.accept()
        stream = CallStream(ws, call_id, store, ws.app.state.hub, ws.app.state.recorder, settings, auth)
        await stream.run(max(0, after))
    finally:
        open_per_user[user.id] -= 1
        if open_per_user[user.id] <= 0:
            del open_per_user[user.id]


class CallStream:
    """One client following one call."""

    def __init__(
        self,
        ws: WebSocket,
        call_id: str,
        store: Store,
        hub: Hub,
        recorder: Recorder | None,
        settings: ConsoleSettings,
        auth: Authenticated | None = None,
    ) -> None:
        self.ws = ws
        self.auth = auth
        self.close_code = CLOSE_RESUME
        self.next_check = time.monotonic() + settings.ws_session_check_s
        self.call_id = call_id
        self.store = store
        self.hub = hub
        self.recorder = recorder
        self.settings = settings
        self.last = 0  # the last seq sent

    async def run(self, after: int) -> None:
        ws, call_id, settings = self.ws, self.call_id, self.settings
        sub = self.hub.subscribe(call_id)  # before reading the store: nothing committed in between is missed
        self.last = after
        reader = asyncio.create_task(_drain_client(ws))
        overflow = asyncio.ensure_future(sub.overflowed.wait())
        try:
            await self._catch_up()
            await self._send(self._status())
            while not reader.done():
                if not await self._session_ok():
                    log.info("session ended, closing live socket", extra={"call_id": call_id})
                    self.close_code = CLOSE_POLICY
                    return
                if sub.overflowed.is_set():
                    log.warning("websocket client fell behind, closing it", extra={"call_id": call_id})
                    return  # closed below with 1013: the client resumes from its last seq
                get = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait(
                    {get, reader, overflow},
                    timeout=settings.ws_heartbeat_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if get not in done:
                    get.cancel()
                    if reader in done or sub.overflowed.is_set():
                        continue
                    await self._catch_up()  # events recorded by another instance, if any
                    await self._send(self._status())
                    continue
                msg = get.result()
                if msg["seq"] <= self.last:
                    continue
                if msg["seq"] == self.last + 1:
                    await self._send({"type": "events", "items": [msg]})
                    self.last = msg["seq"]
                else:
                    await self._catch_up()
        except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                WS_DROPPED.labels(reason="send_timeout").inc()
                log.warning("websocket send timed out, dropping client", extra={"call_id": call_id})
        finally:
            self.hub.unsubscribe(sub)
            reader.cancel()
            overflow.cancel()
            if ws.application_state != WebSocketState.DISCONNECTED:
                reason = "session ended" if self.close_code == CLOSE_POLICY else "resume"
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        ws.close(code=self.close_code, reason=reason), settings.ws_send_timeout_s
                    )

    async def _session_ok(self) -> bool:
        """Every ``ws_session_check_s``: is the session still there, unexpired, its user active?"""
        if self.auth is None or time.monotonic() < self.next_check:
            return True
        self.next_check = time.monotonic() + self.settings.ws_session_check_s
        return await run_in_threadpool(
            session_still_valid, self.store, self.auth, self.settings.session_idle_s
        )

    async def _send(self, msg: dict[str, Any]) -> None:
        await asyncio.wait_for(self.ws.send_json(msg), self.settings.ws_send_timeout_s)

    async def _catch_up(self) -> None:
        """Everything after the last seq sent, from the store, in batches."""
        batch_max = self.settings.ws_batch_max
        while True:
            items = await run_in_threadpool(self.store.events_after, self.call_id, self.last, batch_max)
            if not items:
                return
            await self._send({"type": "events", "items": items})
            self.last = items[-1]["seq"]
            if len(items) < batch_max:
                return

    def _status(self) -> dict[str, Any]:
        return {
            "type": "status",
            "last_seq": self.last,
            "recorder_ok": self.recorder.healthy() if self.recorder is not None else None,
            "at": self.store.now().isoformat(),
        }


async def _drain_client(ws: WebSocket) -> None:
    with contextlib.suppress(Exception):
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
