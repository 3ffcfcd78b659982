"""The query-vector cache on its own: LRU bound, one batch of misses, the key, off, metrics, threads.

The embedding function here is a deterministic stand-in for the model (a vector derived from the
text's hash): what is tested is which texts reach it and that each caller gets its own text's row.
The cache in front of the real encoder is tested in test_kb_dense.py and test_summary_reuse.py.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from prometheus_client import REGISTRY

from assist.knowledge.query_cache import QueryVectorCache

DIM = 8


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class Recorder:
    """What the cache sent to the model: one list per call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
        return np.vstack([vector(t) for t in texts])


def counted(result: str) -> float:
    return REGISTRY.get_sample_value("dasan_kb_query_cache_total", {"result": result}) or 0.0


def test_only_unseen_texts_go_to_the_model_in_one_batch() -> None:
    cache, embed = QueryVectorCache(16, "m1"), Recorder()
    first = cache.encode(["a", "b", "a"], embed, DIM)
    assert embed.calls == [["a", "b"]]  # each distinct text once
    assert np.array_equal(first[0], first[2]) and np.allclose(first[1], vector("b"))
    second = cache.encode(["b", "c", "d", "a"], embed, DIM)
    assert embed.calls[1] == ["c", "d"]
    assert np.allclose(second, np.vstack([vector(t) for t in ["b", "c", "d", "a"]]))
    assert (cache.hits, cache.misses) == (3, 4)


def test_all_cached_calls_no_model() -> None:
    cache, embed = QueryVectorCache(16, "m1"), Recorder()
    cache.encode(["a", "b"], embed, DIM)
    cache.encode(["b", "a"], embed, DIM)
    assert len(embed.calls) == 1
    assert cache.get("a") is not None and cache.get("zzz") is None


def test_bounded_least_recently_used_goes_first() -> None:
    cache, embed = QueryVectorCache(3, "m1"), Recorder()
    cache.encode(["a", "b", "c"], embed, DIM)
    cache.encode(["a"], embed, DIM)  # a is now the most recent; b the least
    cache.encode(["d"], embed, DIM)
    assert len(cache) == 3
    cache.encode(["a", "c", "d"], embed, DIM)
    assert embed.calls[-1] == ["d"]  # a, c, d all kept (the last call embedded d: b was dropped)
    cache.encode(["b"], embed, DIM)
    assert embed.calls[-1] == ["b"]
    assert len(cache) == 3


def test_a_batch_larger_than_the_cache_is_returned_whole() -> None:
    cache, embed = QueryVectorCache(2, "m1"), Recorder()
    texts = [f"q{i}" for i in range(5)]
    out = cache.encode(texts, embed, DIM)
    assert np.allclose(out, np.vstack([vector(t) for t in texts]))
    assert len(cache) == 2


def test_key_includes_the_model_fingerprint() -> None:
    cache, embed = QueryVectorCache(16, "model-a-bf16-q64"), Recorder()
    cache.encode(["same text"], embed, DIM)
    cache.fingerprint = "model-b-bf16-q64"  # another model (or backend, or token cap)
    assert cache.get("same text") is None
    cache.encode(["same text"], embed, DIM)
    assert len(embed.calls) == 2
    cache.fingerprint = "model-a-bf16-q64"
    cache.encode(["same text"], embed, DIM)
    assert len(embed.calls) == 2  # the first model's vector is still there for the first model


def test_size_zero_is_off() -> None:
    hits, misses = counted("hit"), counted("miss")
    cache, embed = QueryVectorCache(0, "m1"), Recorder()
    cache.encode(["a", "a"], embed, DIM)
    cache.encode(["a"], embed, DIM)
    assert embed.calls == [["a", "a"], ["a"]]
    assert len(cache) == 0 and cache.get("a") is None
    assert (cache.hits, cache.misses) == (0, 0)
    assert (counted("hit"), counted("miss")) == (hits, misses)
    assert cache.encode([], embed, DIM).shape == (0, DIM)
    with pytest.raises(ValueError):
        QueryVectorCache(-1, "m1")


def test_metrics_count_hits_and_misses() -> None:
    hits, misses = counted("hit"), counted("miss")
    cache, embed = QueryVectorCache(16, "m1"), Recorder()
    cache.encode(["a", "b"], embed, DIM)
    cache.encode(["a", "b", "c"], embed, DIM)
    cache.get("c")
    assert counted("hit") - hits == 3
    assert counted("miss") - misses == 3


def test_concurrent_callers_each_get_their_own_rows() -> None:
    cache, embed = QueryVectorCache(20, "m1"), Recorder()
    texts = [f"질문 {i}" for i in range(40)]  # twice the cache: entries are dropped while others read

    def caller(n: int) -> bool:
        ok = True
        for r in range(30):
            batch = [texts[(n * 7 + r * 3 + k) % len(texts)] for k in range(3)]
            out = cache.encode(batch, embed, DIM)
            ok &= bool(np.allclose(out, np.vstack([vector(t) for t in batch])))
            one = cache.get(batch[0])
            ok &= one is None or bool(np.allclose(one, vector(batch[0])))
        return ok

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(caller, range(8)))
    assert len(cache) <= 20
    assert sum(len(c) for c in embed.calls) == cache.misses


def test_cached_rows_are_read_only() -> None:
    cache, embed = QueryVectorCache(4, "m1"), Recorder()
    cache.encode(["a"], embed, DIM)
    row = cache.get("a")
    assert row is not None
    with pytest.raises(ValueError):
        row[0] = 1.0
