"""A small slice of the real corpus for knowledge-base tests (quality is measured elsewhere)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

SLICE_LAWS = {
    "도로교통법": 45,  # first 45 articles (정의 … 주정차 금지, 주차 금지, 견인)
    "서울특별시 강남구 폐기물 관리 조례": 99,
    "서울특별시 공동주거시설 층간소음 관리에 관한 조례": 99,
    "서울특별시 폐기물 관리 조례": 99,
    "수도법": 20,
}


@pytest.fixture(scope="session")
def corpus_slice(shared_dir: Path) -> list[dict]:
    counts: dict[str, int] = {}
    out = []
    with (shared_dir / "corpus" / "regulations.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            law = rec["law_name"]
            if law in SLICE_LAWS and counts.get(law, 0) < SLICE_LAWS[law]:
                counts[law] = counts.get(law, 0) + 1
                out.append(rec)
    assert len(out) > 100
    return out


@pytest.fixture(scope="session")
def analyzer():
    from assist.knowledge import KoreanAnalyzer

    return KoreanAnalyzer(extra_terms=["대형폐기물", "층간소음"])


def _saved_models(tmp_path: Path, classifiers: dict[str, tuple[str, ...]]) -> Path:
    """A tiny ranker (``rerank_model.txt``) and a classifier per file name, with these features,
    saved in ``tmp_path`` as the shipped models are; the ranker's path."""
    import lightgbm as lgb
    import numpy as np

    from assist.knowledge.rerank import FEATURES

    rng = np.random.default_rng(0)
    ranker = lgb.LGBMRanker(n_estimators=2, min_child_samples=1, verbose=-1)
    ranker.fit(
        rng.normal(size=(40, len(FEATURES))),
        rng.integers(0, 2, size=40),
        group=[10] * 4,
        feature_name=list(FEATURES),
    )
    path = tmp_path / "rerank_model.txt"
    ranker.booster_.save_model(str(path))
    for name, feats in classifiers.items():
        clf = lgb.LGBMClassifier(n_estimators=2, min_child_samples=1, verbose=-1)
        clf.fit(rng.normal(size=(40, len(feats))), rng.integers(0, 2, size=40), feature_name=list(feats))
        clf.booster_.save_model(str(tmp_path / name))
    return path


@pytest.fixture()
def save_models() -> Callable[[Path, dict[str, tuple[str, ...]]], Path]:
    """:func:`_saved_models`: model files saved as the shipped ones are, for tests of loading them."""
    return _saved_models
