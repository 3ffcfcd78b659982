"""Small knowledge-base versions for the search and version-switch tests (BM25 only, built once
and cached by content key under var/test-cache/kb-versions).

``waste_records``: the waste ordinances of Seoul and 강남구 from the real corpus, plus a 송파구
copy of 강남구's 대형폐기물 articles (the corpus has one district's ordinances; a second district
lets a test show that the caller's district wins and the other district is left out).
``amended``: the same with a new version of 강남구 별표1 effective :data:`AMENDED_ON` (an
amendment: the old version stays in the corpus, superseded).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "var" / "test-cache" / "kb-versions"
LAWS = ("서울특별시 강남구 폐기물 관리 조례", "서울특별시 폐기물 관리 조례")
GANGNAM = "서울특별시_강남구_폐기물_관리_조례"
SONGPA = "서울특별시_송파구_폐기물_관리_조례"
FEE_TABLE = f"{GANGNAM}/별표1"
AMENDED_ON = date(2026, 11, 1)


def waste_records(shared_dir: Path) -> list[dict[str, Any]]:
    out = []
    with (shared_dir / "corpus" / "regulations.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["law_name"] in LAWS:
                out.append(rec)
    for rec in [r for r in out if r["id"] in (FEE_TABLE, f"{GANGNAM}/제8조")]:
        copy = dict(rec)
        copy["id"] = rec["id"].replace(GANGNAM, SONGPA)
        copy["law_name"] = "서울특별시 송파구 폐기물 관리 조례"
        copy["jurisdiction"] = "서울특별시 송파구"
        copy["citation"] = rec["citation"].replace("강남구", "송파구")
        out.append(copy)
    return out


def amended(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    old = next(r for r in records if r["id"] == FEE_TABLE)
    new = dict(old)
    new["effective_date"] = AMENDED_ON.isoformat()
    new["text"] = (
        "[별표 1] 대형폐기물 수집·운반 수수료 품목별 부과기준(제8조제1항제1호 관련) (개정 2026.11.1.) "
        "대형폐기물 수수료는 품목별로 부과하며, 장롱·침대 등 대형 가구의 수수료를 인상한다."
    )
    return [*records, new]


def build(records: list[dict[str, Any]], name: str, like: Any = None) -> Any:
    """The BM25-only index of ``records`` (built once; later runs find it by its content key).
    ``like``: a knowledge base whose analyser is reused when the index is already built."""
    from assist.knowledge import KnowledgeBase, KnowledgeSettings

    CACHE.mkdir(parents=True, exist_ok=True)
    corpus = CACHE / f"{name}.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    settings = KnowledgeSettings(
        corpus_paths=[corpus], dense_enabled=False, index_dir=CACHE, abstain_bm25_threshold=2.0
    )
    path = KnowledgeBase.index_path(settings)
    if like is not None and (path / "manifest.json").is_file():
        return KnowledgeBase.load(path, settings, analyzer=like.analyzer)
    return KnowledgeBase.open(settings, progress=False)
