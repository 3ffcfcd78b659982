"""A bounded LRU cache of query vectors, in front of the encoder (#18 "do less work", #17).

The same text is embedded more than once in a call's life: a caller turn is the live card's question
(the ``t`` variant of :mod:`.rerank`) and then one of the call summary's queries
(:meth:`assist.summary.Summarizer.summarize`); a counselor retypes a search; a replay runs a call
again. The cache keeps the vector of the last ``size`` texts so only texts it has not seen go to the
model, in one batch.

The key is the exact text the encoder sees (the query prompt and the dense query expansion
included) together with the encoder's fingerprint (model files, backend, query token cap): a cache
can never hand out a vector another model or backend made, even if it were shared across knowledge
base versions. ``size`` 0 turns it off (every text goes to the model, nothing is counted).

Thread-safe: the service loop and the counselor search (the health server's threads, through the
micro-batcher) look up and store concurrently. Two threads that miss on the same text at once both
embed it (the model is not held up by the cache's lock); the second store wins, with the same vector.
Hits and misses are counted per cache and in the Prometheus counter ``dasan_kb_query_cache_total``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

import numpy as np
from prometheus_client import Counter

V = TypeVar("V")

QUERY_CACHE = Counter(
    "dasan_kb_query_cache_total",
    "Query texts looked up in the query-vector cache, by result (hit: vector reused; miss: sent to the encoder)",
    ["result"],
)


class BoundedLru(Generic[V]):
    """The ``size`` most recently used arrays by key, with hit and miss counts; thread-safe through
    ``_lock``, which :meth:`_touch` and :meth:`_put` expect to be held (so a batch of look-ups or
    stores takes it once). The query-vector cache here and the draft's unit vectors
    (:class:`assist.drafts.UnitVectors`) are both one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._rows: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def _touch(self, key: Hashable) -> V | None:
        """The entry of ``key``, now the most recently used, or None (lock held)."""
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
        return row

    def _put(self, key: Hashable, row: V) -> None:
        """Store ``row`` as the most recently used entry, evicting the least recently used past
        ``size`` (lock held)."""
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)


class QueryVectorCache(BoundedLru[np.ndarray]):
    """``size`` most recently used query vectors of one encoder (``fingerprint``)."""

    def __init__(self, size: int, fingerprint: str) -> None:
        if size < 0:
            raise ValueError("cache size must be >= 0")
        super().__init__(size)
        self.fingerprint = fingerprint

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def get(self, text: str) -> np.ndarray | None:
        """The cached vector of one text (counted as a hit), or None (not counted: the caller will
        count the miss when it embeds through :meth:`encode`)."""
        if not self.enabled:
            return None
        key = (self.fingerprint, text)
        with self._lock:
            row = self._touch(key)
            if row is None:
                return None
            self.hits += 1
        QUERY_CACHE.labels("hit").inc()
        return row

    def encode(self, texts: Sequence[str], embed: Callable[[list[str]], np.ndarray], dim: int) -> np.ndarray:
        """Vectors of ``texts`` (one row each, in order): cached rows reused, the rest (each distinct
        text once) embedded by one call of ``embed`` and remembered."""
        if not self.enabled:
            return embed(list(texts)) if texts else np.zeros((0, dim), dtype=np.float32)
        fp = self.fingerprint
        out: list[np.ndarray | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                row = self._touch((fp, t))
                if row is None:
                    missing.setdefault(t, []).append(i)
                else:
                    out[i] = row
            hits = len(texts) - len(missing)  # a text repeated in the batch is embedded once
            self.hits += hits
            self.misses += len(missing)
        if hits:
            QUERY_CACHE.labels("hit").inc(hits)
        if missing:
            QUERY_CACHE.labels("miss").inc(len(missing))
            todo = list(missing)
            vecs = embed(todo)
            with self._lock:
                for t, v in zip(todo, vecs, strict=True):
                    row = np.array(v, dtype=np.float32)  # a copy: the batch's matrix is not kept alive
                    row.setflags(write=False)
                    for i in missing[t]:
                        out[i] = row
                    self._put((fp, t), row)
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        return np.vstack([r for r in out if r is not None])
