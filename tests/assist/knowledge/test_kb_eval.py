"""Retrieval metrics and the ASR-like noise used to test the lexical side."""

from __future__ import annotations

import math

import pytest

from assist.knowledge.eval_retrieval import asr_noise, metrics_for


def test_metrics_on_a_hand_computed_case() -> None:
    ranked = [["a", "x", "b"], ["y", "z", "c"], ["q"]]
    relevant = [["a", "b"], ["c"], ["nope"]]
    m = metrics_for(ranked, relevant)
    assert m["n"] == 3
    assert m["R@1"] == pytest.approx((0.5 + 0 + 0) / 3, abs=1e-4)
    assert m["R@5"] == pytest.approx((1 + 1 + 0) / 3, abs=1e-4)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 3 + 0) / 3, abs=1e-4)
    ndcg1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg2 = (1 / math.log2(4)) / 1
    assert m["nDCG@10"] == pytest.approx((ndcg1 + ndcg2 + 0) / 3, abs=1e-4)


def test_asr_noise_is_deterministic_and_drops_punctuation() -> None:
    text = "저기요, 대형폐기물 스티커를 붙였는데요… 과태료가 나왔어요?"
    noisy = asr_noise(text)
    assert noisy == asr_noise(text)
    assert not any(c in noisy for c in ",…?")
    assert noisy.replace(" ", "") != text.replace(" ", "") or noisy != text
