"""In-process fan-out of newly recorded events to the websockets watching a call.

The recorder thread calls :meth:`Hub.publish` after the event is committed; the event loop
delivers it into each subscriber's bounded queue. A subscriber whose queue is full (a client
that does not read) is dropped, not buffered: memory stays bounded, and the client resumes
from the last ``seq`` it saw, reading the rest from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

log = logging.getLogger("dasan.console")

WS_CLIENTS = Gauge("dasan_console_ws_clients", "Websocket clients following a call")
WS_DROPPED = Counter("dasan_console_ws_dropped_total", "Websocket clients dropped", ["reason"])


@dataclass(eq=False)
class Subscriber:
    call_id: str
    queue: asyncio.Queue[dict[str, Any]]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    def __init__(self, queue_max: int = 256) -> None:
        self.queue_max = queue_max
        self.loop: asyncio.AbstractEventLoop | None = None
        self._subs: dict[str, set[Subscriber]] = defaultdict(set)
        self.published = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def subscribe(self, call_id: str) -> Subscriber:
        sub = Subscriber(call_id, asyncio.Queue(maxsize=self.queue_max))
        self._subs[call_id].add(sub)
        WS_CLIENTS.inc()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.call_id)
        if subs and sub in subs:
            subs.discard(sub)
            WS_CLIENTS.dec()
            if not subs:
                self._subs.pop(sub.call_id, None)

    def subscribers(self, call_id: str) -> int:
        return len(self._subs.get(call_id, ()))

    def publish(self, call_id: str, message: dict[str, Any]) -> None:
        """Thread-safe: hand one recorded event to the loop for delivery."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop shutting down
            loop.call_soon_threadsafe(self._deliver, call_id, message)

    def _deliver(self, call_id: str, message: dict[str, Any]) -> None:
        self.published += 1
        for sub in list(self._subs.get(call_id, ())):
            if sub.overflowed.is_set():
                continue
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                sub.overflowed.set()
                WS_DROPPED.labels(reason="queue_full").inc()
                log.warning("websocket client too slow, dropping it", extra={"call_id": call_id})
                # Free the buffer at once; the client resumes from the database.
                while not sub.queue.empty():
                    sub.queue.get_nowait()
