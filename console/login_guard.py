"""Log-in throttling and the bounded password-hashing pool.

Every ``POST /login`` passes here before any password is hashed:

1. **Per client address:** at most ``login_max_per_ip`` attempts in a sliding window of
   ``login_window_s``; a successful log-in gives its attempt back (a call centre behind one NAT
   address is not locked out at the start of a shift, a guesser is). Over the limit: 429 with
   ``Retry-After`` (seconds until the oldest attempt leaves the window).
2. **Per user name:** at most ``login_max_failures_per_user`` failed attempts in the window; then
   429 for that name from every address (a slow guess spread over many addresses) until the
   oldest failure leaves the window. The trade-off: someone who knows a user name can keep that
   account's log-in refused; the failures are in the audit log and the logs.
3. **Bounded hashing:** argon2 takes ~64 MiB and tens of milliseconds a hash; at most
   ``login_hash_concurrency`` run at once and at most ``login_hash_queue`` log-ins wait for a slot
   (waiting costs no thread: the route is async). Beyond that the answer is 503 at once.

State is in memory, per console process (each replica counts on its own); it is bounded
(``MAX_KEYS`` addresses and names, least recently used dropped first). All methods run on the
event loop's thread, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable

from prometheus_client import Counter

from .settings import ConsoleSettings

MAX_KEYS = 20_000
HASH_WAIT_S = 15.0  # a queued log-in that gets no slot in this time is answered 503

LOGINS = Counter("dasan_console_logins_total", "Log-in attempts by outcome", ["outcome"])


class Busy(Exception):
    """No hashing slot (all busy and the queue full): answer 503."""


class SlidingWindow:
    """Timestamps of events per key within the last ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float], max_keys: int = MAX_KEYS):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _live(self, key: str) -> deque[float]:
        now = self.clock()
        q = self._events.get(key)
        if q is None:
            q = deque()
            self._events[key] = q
            if len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` is under its limit again; ``None`` if it is under it now."""
        q = self._live(key)
        if len(q) < self.limit:
            return None
        return max(1, math.ceil(q[0] + self.window_s - self.clock()))

    def add(self, key: str) -> None:
        self._live(key).append(self.clock())

    def give_back(self, key: str) -> None:
        q = self._events.get(key)
        if q:
            q.pop()

    def clear(self, key: str) -> None:
        self._events.pop(key, None)


class LoginGuard:
    def __init__(self, settings: ConsoleSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.by_ip = SlidingWindow(settings.login_max_per_ip, settings.login_window_s, clock)
        self.by_user = SlidingWindow(settings.login_max_failures_per_user, settings.login_window_s, clock)
        self.concurrency = settings.login_hash_concurrency
        self.queue_max = settings.login_hash_queue
        self._reported = SlidingWindow(1, settings.login_window_s, clock)
        self._slots: asyncio.Semaphore | None = None
        self.waiting = 0
        self.hashing = 0
        self.hashes = 0  # password verifications started (tests count them)
        self.peak = 0  # the most hashes ever running at once

    @staticmethod
    def user_key(username: str) -> str:
        return username.strip().lower()[:64]

    def admit_ip(self, ip: str) -> int | None:
        """Count an attempt from ``ip``; ``Retry-After`` seconds instead if it is over its limit."""
        wait = self.by_ip.retry_after(ip)
        if wait is None:
            self.by_ip.add(ip)
        return wait

    def admit_user(self, username: str) -> int | None:
        """``Retry-After`` seconds if this user name has too many recent failures, else None."""
        return self.by_user.retry_after(self.user_key(username))

    def succeeded(self, ip: str, username: str) -> None:
        self.by_ip.give_back(ip)
        self.by_user.clear(self.user_key(username))

    def failed(self, username: str) -> None:
        self.by_user.add(self.user_key(username))

    def first_refusal(self, kind: str, key: str) -> bool:
        """True for the first refusal of ``key`` in a window: a flood is logged and audited once
        per address or name and window, not once per request (it is counted every time)."""
        k = f"{kind}:{key}"
        if self._reported.retry_after(k) is not None:
            return False
        self._reported.add(k)
        return True

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the hashing slots, waiting in the bounded queue; :class:`Busy` when it is full."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        if self.hashing >= self.concurrency and self.waiting >= self.queue_max:
            raise Busy()
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), HASH_WAIT_S)
        except TimeoutError:
            raise Busy() from None
        finally:
            self.waiting -= 1
        self.hashing += 1
        self.hashes += 1
        self.peak = max(self.peak, self.hashing)
        try:
            yield
        finally:
            self.hashing -= 1
            self._slots.release()
