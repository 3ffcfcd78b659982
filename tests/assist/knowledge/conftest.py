"""A small slice of the real corpus for knowledge-base tests (quality is measured elsewhere)."""

from __future__ import annotations

import json
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
