"""Search on a corpus slice (BM25 only): relevance, filters, effective-date rule, persistence."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from assist.knowledge import KnowledgeBase, KnowledgeSettings, SearchFilters


def _settings(tmp: Path | None = None, **kw: Any) -> KnowledgeSettings:
    extra: dict[str, Any] = {"index_dir": tmp} if tmp else {}
    return KnowledgeSettings(dense_enabled=False, **extra, **kw)


@pytest.fixture(scope="module")
def kb(corpus_slice) -> KnowledgeBase:
    return KnowledgeBase.build(corpus_slice, _settings())


def test_finds_the_parking_article_for_a_colloquial_question(kb) -> None:
    hits = kb.search("아파트 앞 인도에 불법주차한 차 때문에 못 지나가요", top_k=5)
    assert "도로교통법/제32조" in [h.doc_id for h in hits]
    h = hits[0]
    assert h.citation.startswith("「") and h.snippet and h.text
    assert h.ranks["bm25"] >= 1 and h.scores["bm25"] > 0
    assert kb.is_confident(hits)


def test_hits_are_one_per_article_and_ordered(kb) -> None:
    hits = kb.search("대형폐기물 배출 수수료", top_k=10)
    ids = [h.doc_id for h in hits]
    assert len(ids) == len(set(ids))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_no_match_returns_nothing(kb) -> None:
    assert kb.search("", top_k=5) == []
    assert kb.search("쀍뷁", top_k=5) == []
    assert not kb.is_confident([])


def test_filter_by_law_and_topic(kb) -> None:
    f = SearchFilters(law_names=["수도법"])
    hits = kb.search("폐기물 수도 요금 주차", top_k=10, filters=f)
    assert hits and {h.law_name for h in hits} == {"수도법"}
    f = SearchFilters(topics=["층간소음"])
    hits = kb.search("소음 관리 위원회", top_k=10, filters=f)
    assert hits and all("층간소음" in h.topics for h in hits)


def test_filter_by_jurisdiction(kb) -> None:
    q = "대형폐기물 배출 신고 수수료"
    gangnam = kb.search(q, top_k=10, filters=SearchFilters(jurisdictions=["서울특별시 강남구"]))
    assert gangnam and {h.jurisdiction for h in gangnam} == {"서울특별시 강남구"}
    songpa = kb.search(q, top_k=20, filters=SearchFilters(applies_in="서울특별시 송파구"))
    assert songpa
    assert "서울특별시 강남구" not in {h.jurisdiction for h in songpa}
    assert "서울특별시" in {h.jurisdiction for h in songpa}


def test_search_many_with_one_filter_per_query(kb) -> None:
    q = "대형폐기물 배출 신고 수수료"
    gangnam, songpa = (
        SearchFilters(jurisdictions=["서울특별시 강남구"]),
        SearchFilters(applies_in="서울특별시 송파구"),
    )
    many = kb.search_many([q, q, "층간소음 상담"], top_k=10, filters=[gangnam, songpa, None])
    assert [h.passage_id for h in many[0]] == [h.passage_id for h in kb.search(q, 10, filters=gangnam)]
    assert [h.passage_id for h in many[1]] == [h.passage_id for h in kb.search(q, 10, filters=songpa)]
    assert [h.passage_id for h in many[2]] == [h.passage_id for h in kb.search("층간소음 상담", 10)]
    assert {h.jurisdiction for h in many[0]} == {"서울특별시 강남구"}
    with pytest.raises(ValueError):
        kb.search_many([q, q], filters=[gangnam])


def test_effective_date_rule(corpus_slice) -> None:
    base = next(r for r in corpus_slice if r["id"] == "도로교통법/제32조")
    newer = {**base, "effective_date": "2030-01-01", "text": base["text"] + " 개정된 zqxunicorn 규정."}
    future_only = {
        **base,
        "id": "도로교통법/제999조",
        "article_no": "제999조",
        "effective_date": "2030-01-01",
        "text": "zqxunicorn 신설 규정.",
    }
    expired = {
        **base,
        "id": "도로교통법/제998조",
        "expiry_date": "2020-12-31",
        "text": "zqxunicorn 폐지 규정.",
    }
    kb = KnowledgeBase.build([*corpus_slice, newer, future_only, expired], _settings())
    today = kb.search("zqxunicorn", top_k=10, filters=SearchFilters(as_of=date(2026, 11, 22)))
    assert today == []  # the amendment, the new article and the expired one are not current
    later = kb.search("zqxunicorn", top_k=10, filters=SearchFilters(as_of=date(2030, 6, 1)))
    assert {h.doc_id for h in later} == {"도로교통법/제32조", "도로교통법/제999조"}
    v32 = [h for h in later if h.doc_id == "도로교통법/제32조"]
    assert v32[0].effective_date == date(2030, 1, 1)  # the superseded version is not returned as current
    hits_now = kb.search("정차 주차 금지 보도", top_k=20, filters=SearchFilters(as_of=date(2026, 11, 22)))
    cur = [h for h in hits_now if h.doc_id == "도로교통법/제32조"]
    assert cur and cur[0].effective_date == date.fromisoformat(base["effective_date"])
    gone = kb.article("도로교통법/제999조", as_of=date(2026, 11, 22))
    assert gone is not None and gone["in_force"] is False
    then = kb.article("도로교통법/제32조", as_of=date(2026, 11, 22))
    assert then is not None and then["effective_date"] == base["effective_date"]


def test_article_and_idf(kb) -> None:
    art = kb.article("도로교통법/제32조")
    assert art and art["citation"].startswith("「도로교통법」 제32조") and art["text"]
    assert kb.article("없는법/제1조") is None
    assert kb.idf("유니콘") > kb.idf("주차") > 0


def test_persistence_round_trip(corpus_slice, tmp_path: Path) -> None:
    s = _settings(tmp_path)
    built = KnowledgeBase.build(corpus_slice, s)
    path = built.save()
    assert path.parent == tmp_path and path.name == built.key
    loaded = KnowledgeBase.load(path, s)
    q = "공동주택 층간소음 분쟁 조정"
    assert [h.passage_id for h in loaded.search(q)] == [h.passage_id for h in built.search(q)]
    assert loaded.key == built.key and len(loaded.passages) == len(built.passages)
    assert loaded.content_key == built.content_key and loaded.build_stats == built.build_stats
    # the key as open() computes it, from the records and settings alone (no analyser built)
    from assist.knowledge.corpus import load_records
    from assist.knowledge.store import index_key

    assert index_key(load_records(corpus_slice), s) == built.key


def test_open_uses_the_key_of_corpus_and_settings(corpus_slice, tmp_path: Path) -> None:
    import json

    f = tmp_path / "corpus.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in corpus_slice[:40]), encoding="utf-8")
    s = _settings(tmp_path / "idx", corpus_paths=[f])
    first = KnowledgeBase.open(s, progress=False)
    assert first.path is not None and first.path.exists()
    again = KnowledgeBase.open(s, progress=False, build_if_missing=False)
    assert again.key == first.key
    # a changed corpus gets a new key
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in corpus_slice[:41]), encoding="utf-8")
    from assist.knowledge import IndexNotFound

    with pytest.raises(IndexNotFound):
        KnowledgeBase.open(s, progress=False, build_if_missing=False)


def test_search_many_matches_search(kb) -> None:
    qs = ["대형폐기물 수수료", "층간소음 상담", "  "]
    many = kb.search_many(qs, top_k=3)
    assert [[h.passage_id for h in hs] for hs in many] == [
        [h.passage_id for h in kb.search(q, 3)] for q in qs
    ]


def test_whitespace_baseline_method(kb) -> None:
    hits = kb.search("주차 금지", top_k=3, method="bm25_ws")
    assert hits and "bm25_ws" in hits[0].ranks
