"""The decode batcher: one loaded model serves every active stream of a worker.

Streams (one :class:`~asr.policy.StreamingPolicy` per call and channel) only buffer audio and say
what they need decoded. The scheduler collects the pending windows of all streams — finals
first (oldest first), then partials (stalest first) — waits up to ``batch_window_ms`` to fill a
batch of ``batch_size``, decodes them in one forward pass and routes the answers back. The same
code runs on CPU (small batches, one thread) and GPU (large batches). Decoding happens outside
the lock, so the Kafka consumer thread can keep inserting audio while the model works.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .policy import StreamingPolicy
from .types import DecodeRequest, DecodeResult, SegmentUpdate

log = logging.getLogger("dasan.asr.scheduler")

Decode = Callable[[Sequence[DecodeRequest]], list[DecodeResult]]
OnUpdate = Callable[[str, SegmentUpdate], None]


@dataclass
class SchedulerStats:
    batches: int = 0
    windows: int = 0
    finals: int = 0
    partials: int = 0
    dropped: int = 0
    errors: int = 0
    max_batch: int = 0


class DecodeScheduler:
    def __init__(
        self,
        decode: Decode,
        *,
        batch_size: int = 8,
        batch_window_ms: int = 30,
        on_update: OnUpdate | None = None,
        on_stream_done: Callable[[str], None] | None = None,
    ) -> None:
        self.decode = decode
        self.batch_size = batch_size
        self.batch_window_s = batch_window_ms / 1000
        self.on_update = on_update
        self.on_stream_done = on_stream_done
        self.streams: dict[str, StreamingPolicy] = {}
        self._cond = threading.Condition(threading.RLock())
        self.stats = SchedulerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_delivery: dict[str, list[float]] = {}  # finals decided but not yet handed out

    # ------------------------------------------------------------------ streams
    def add(self, key: str, policy: StreamingPolicy) -> StreamingPolicy:
        with self._cond:
            return self.streams.setdefault(key, policy)

    def get(self, key: str) -> StreamingPolicy | None:
        with self._cond:
            return self.streams.get(key)

    def insert(self, key: str, audio: np.ndarray) -> None:
        with self._cond:
            pol = self.streams[key]
            pol.insert_audio_chunk(audio)
            ready = pol.take_ready()
            self._cond.notify_all()
        self._dispatch(key, ready)

    def finish(self, key: str) -> None:
        ready: list[SegmentUpdate] = []
        with self._cond:
            pol = self.streams.get(key)
            if pol is not None:
                pol.finish()
                ready = pol.take_ready()
                self._cond.notify_all()
        self._dispatch(key, ready)
        if pol is not None:
            self._reap([(key, pol)])

    def _dispatch(self, key: str, updates: list[SegmentUpdate]) -> None:
        """Finals that a stream decided without a new decode (speculative finals confirmed by the pause)."""
        for upd in updates:
            self.stats.finals += 1
            if self.on_update:
                self.on_update(key, upd)

    def drop(self, key: str) -> None:
        with self._cond:
            self.streams.pop(key, None)

    def _reap(self, candidates: list[tuple[str, StreamingPolicy]]) -> None:
        """Release finished streams. The callback runs outside the lock: callers may hold their own
        lock while calling into the scheduler (lock order: caller → scheduler, never the reverse)."""
        done = []
        with self._cond:
            for key, pol in candidates:
                if pol.idle and self.streams.get(key) is pol:
                    del self.streams[key]
                    done.append(key)
        if self.on_stream_done:
            for key in done:
                self.on_stream_done(key)

    def unsettled_from_s(self, key: str) -> float | None:
        """Start of the audio of ``key`` whose final is not yet handed out (None: nothing pending)."""
        with self._cond:
            pol = self.streams.get(key)
            starts = list(self._in_delivery.get(key, ()))
            if pol is not None and not pol.idle:
                starts.append(pol.unsettled_from_s())
            return min(starts) if starts else None

    def active(self) -> int:
        with self._cond:
            return len(self.streams)

    def pending(self) -> bool:
        with self._cond:
            return any(p.has_work() for p in self.streams.values())

    # ------------------------------------------------------------------ batching
    def collect(self, limit: int | None = None) -> list[DecodeRequest]:
        """Take up to ``limit`` due requests: every stream's finals first, then partials."""
        return [r for r, _ in self._collect(limit)]

    def _collect(self, limit: int | None = None) -> list[tuple[DecodeRequest, StreamingPolicy]]:
        """Due requests with the policy that issued each (its answer goes to that policy only)."""
        limit = limit or self.batch_size
        out: list[tuple[DecodeRequest, StreamingPolicy]] = []
        with self._cond:
            pols = list(self.streams.values())
            # Finals: oldest segment end first.
            finals: list[tuple[DecodeRequest, StreamingPolicy]] = []
            for p in pols:
                while (r := p.next_request(allow_partial=False)) is not None:
                    finals.append((r, p))
            finals.sort(key=lambda rp: rp[0].end_s)
            out.extend(finals[:limit])
            for r, p in finals[limit:]:
                p.release(r)
            # Partials only when there is room and no final is waiting.
            if len(out) < limit and len(finals) <= limit:
                for p in sorted(pols, key=lambda p: p.utt.last_partial_at if p.utt else 0):
                    if len(out) >= limit:
                        break
                    r = p.next_request()
                    if r is not None:
                        out.append((r, p))
        return out

    def step(self, wait: bool = True) -> int:
        """Decode one batch. Returns the number of windows decoded (0: nothing due)."""
        batch = self._collect()
        if not batch:
            return 0
        if wait and self.batch_window_s > 0 and len(batch) < self.batch_size:
            deadline = time.monotonic() + self.batch_window_s
            with self._cond:
                while len(batch) < self.batch_size and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                    batch += self._collect(self.batch_size - len(batch))
        reqs = [r for r, _ in batch]
        try:
            results = self.decode(reqs)
        except Exception:
            self.stats.errors += 1
            log.exception("decode failed", extra={"windows": len(reqs)})
            with self._cond:
                for r, pol in batch:
                    if self.streams.get(r.stream) is pol:
                        pol.release(r)
            time.sleep(0.2)
            return 0
        self.stats.batches += 1
        self.stats.windows += len(reqs)
        self.stats.max_batch = max(self.stats.max_batch, len(reqs))
        updates: list[tuple[str, SegmentUpdate]] = []
        with self._cond:
            for (r, pol), res in zip(batch, results, strict=True):
                # A stream dropped while its decode was in flight (its partition was revoked) and
                # perhaps started afresh under the same key: the answer belongs to the old state.
                if self.streams.get(r.stream) is not pol:
                    continue
                upd = pol.apply_result(r, res)
                if upd is None:
                    self.stats.dropped += 1
                else:
                    updates.append((r.stream, upd))
                    if upd.is_final:
                        self.stats.finals += 1
                        self._in_delivery.setdefault(r.stream, []).append(upd.start_s)
                    else:
                        self.stats.partials += 1
        try:
            if self.on_update:
                for key, upd in updates:
                    self.on_update(key, upd)
        finally:
            with self._cond:
                for key, upd in updates:
                    if upd.is_final:
                        pending = self._in_delivery.get(key, [])
                        if upd.start_s in pending:
                            pending.remove(upd.start_s)
                        if not pending:
                            self._in_delivery.pop(key, None)
        with self._cond:
            candidates = [(r.stream, p) for r in reqs if (p := self.streams.get(r.stream)) is not None]
        self._reap(candidates)
        return len(reqs)

    def drain(self) -> None:
        """Decode until nothing is due (offline use and shutdown)."""
        while self.step(wait=False):
            pass

    # ------------------------------------------------------------------ background thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="asr-decoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.step() == 0:
                with self._cond:
                    self._cond.wait(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout)
