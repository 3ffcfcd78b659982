"""Fusion of rankings, BM25 scoring identical to rank-bm25."""

from __future__ import annotations

import numpy as np
from rank_bm25 import BM25Okapi

from assist.knowledge.fusion import fuse_rrf, fuse_weighted, minmax, top_indices
from assist.knowledge.lexical import BM25Index


def test_minmax() -> None:
    assert np.allclose(minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert np.allclose(minmax(np.array([3.0, 3.0])), [1.0, 1.0])
    assert np.allclose(minmax(np.array([0.0, 0.0])), [0.0, 0.0])


def test_weighted_fusion_follows_the_weights() -> None:
    dense = np.array([0.60, 0.55, 0.30])
    bm25 = np.array([0.0, 10.0, 4.0])
    dense_heavy = fuse_weighted({"dense": dense, "bm25": bm25}, {"dense": 0.9, "bm25": 0.1})
    lexical_heavy = fuse_weighted({"dense": dense, "bm25": bm25}, {"dense": 0.1, "bm25": 0.9})
    assert int(np.argmax(dense_heavy)) == 0
    assert int(np.argmax(lexical_heavy)) == 1
    # a candidate good on both sides beats one good on only one side at equal weights
    equal = fuse_weighted({"dense": dense, "bm25": bm25}, {"dense": 0.5, "bm25": 0.5})
    assert int(np.argmax(equal)) == 1


def test_rrf_fusion() -> None:
    ranks = {"dense": np.array([1, 2, 0]), "bm25": np.array([0, 1, 2])}
    f = fuse_rrf(ranks, {"dense": 1.0, "bm25": 1.0}, k=60)
    assert np.isclose(f[0], 1 / 61) and np.isclose(f[1], 1 / 62 + 1 / 61) and np.isclose(f[2], 1 / 62)
    assert int(np.argmax(f)) == 1
    f2 = fuse_rrf(ranks, {"dense": 1.0, "bm25": 0.0}, k=60)
    assert int(np.argmax(f2)) == 0


def test_top_indices_respects_mask_and_order() -> None:
    s = np.array([0.1, 0.9, 0.5, 0.7])
    assert top_indices(s, 2).tolist() == [1, 3]
    mask = np.array([True, False, True, True])
    assert top_indices(s, 10, mask).tolist() == [3, 2, 0]
    assert top_indices(s, 3, np.zeros(4, dtype=bool)).tolist() == []


def test_bm25_matrix_matches_rank_bm25() -> None:
    docs = [["주정차", "금지", "보도"], ["과태료", "부과", "주정차", "주정차"], ["폐기물", "배출"], []]
    idx = BM25Index(docs, k1=1.2, b=0.75)
    ref = BM25Okapi([d or ["\u2400"] for d in docs], k1=1.2, b=0.75)
    for q in (["주정차"], ["주정차", "과태료", "없는말"], ["폐기물", "폐기물"], ["없는말"]):
        assert np.allclose(idx.scores(q), ref.get_scores(q), atol=1e-5)
    assert idx.idf("없는말") > idx.idf("주정차")
