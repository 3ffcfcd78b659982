"""Fusing the lexical and dense rankings.

- ``weighted``: each method's scores are min-max normalised over the candidate pool (the union of
  every method's top candidates), then summed with the weights from settings. Keeps the size of
  score gaps, which equal-weight RRF throws away (a BM25 hit that barely beats noise counts as much as
  a confident dense hit in RRF).
- ``rrf``: weighted reciprocal rank fusion, ``sum_m w_m / (k + rank_m)``; a candidate missing from a
  method's list gets no contribution from it.
"""

from __future__ import annotations

import numpy as np


def minmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x.astype(np.float32)
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi - lo < 1e-12:
        return np.ones_like(x, dtype=np.float32) if hi > 0 else np.zeros_like(x, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def fuse_weighted(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted sum of min-max normalised scores; arrays are aligned over the same candidates."""
    n = len(next(iter(scores.values())))
    out = np.zeros(n, dtype=np.float32)
    for name, s in scores.items():
        out += weights.get(name, 0.0) * minmax(np.asarray(s, dtype=np.float32))
    return out


def fuse_rrf(ranks: dict[str, np.ndarray], weights: dict[str, float], k: int = 60) -> np.ndarray:
    """Weighted RRF over 1-based ranks; rank 0 or below means absent from that method's list."""
    n = len(next(iter(ranks.values())))
    out = np.zeros(n, dtype=np.float32)
    for name, r in ranks.items():
        r = np.asarray(r)
        present = r > 0
        out[present] += weights.get(name, 0.0) / (k + r[present])
    return out


def top_indices(scores: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``n`` best scores (descending), restricted to ``mask`` where given."""
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
        n = min(n, int(mask.sum()))
    n = min(n, scores.size)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.argpartition(-scores, n - 1)[:n]
    return idx[np.argsort(-scores[idx], kind="stable")]
