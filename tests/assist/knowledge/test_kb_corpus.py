"""Passage splitting at 항 boundaries and record loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assist.knowledge.corpus import CorpusError, load_records, split_passages
from assist.knowledge.records import Record

LONG = {
    "id": "테스트법/제3조",
    "law_name": "테스트법",
    "article_no": "제3조",
    "article_title": "신고",
    "citation": "「테스트법」 제3조(신고)",
    "effective_date": "2024-01-01",
    "text": "\n\n".join(
        [
            "① 누구든지 대형폐기물을 배출하려면 구청장에게 신고하여야 한다. " + "가" * 150,
            "② 구청장은 제1항에 따른 신고를 받으면 수수료를 부과한다. " + "나" * 150,
            "③ 짧은 항.",
            "④ 수수료의 금액은 조례로 정한다. " + "다" * 150,
        ]
    ),
}


def test_long_article_splits_at_paragraphs_and_keeps_article_fields() -> None:
    rec = Record.model_validate(LONG)
    ps = split_passages(rec, max_chars=400, min_chars=120)
    assert len(ps) == 3  # ③ is short and is merged with the next 항
    assert [p.paragraphs for p in ps] == [["①"], ["②"], ["③", "④"]]
    for i, p in enumerate(ps, 1):
        assert p.doc_id == "테스트법/제3조"
        assert p.article_no == "제3조" and p.article_title == "신고"
        assert p.citation == "「테스트법」 제3조(신고)"
        assert p.passage_id == f"테스트법/제3조@2024-01-01#{i}"
    joined = "".join(p.text for p in ps).replace("\n", "")
    assert joined == rec.text.replace("\n", "")


def test_short_article_stays_whole() -> None:
    rec = Record.model_validate({**LONG, "text": "① 짧다.\n\n② 역시 짧다."})
    ps = split_passages(rec, max_chars=400)
    assert len(ps) == 1 and ps[0].text == rec.text


def test_long_article_without_paragraphs_stays_whole() -> None:
    rec = Record.model_validate({**LONG, "text": "라" * 900})
    assert len(split_passages(rec, max_chars=400)) == 1


def test_real_corpus_slice_splits_cleanly(corpus_slice) -> None:
    recs = load_records(corpus_slice)
    for rec in recs:
        ps = split_passages(rec)
        assert ps and all(p.text.strip() for p in ps)
        assert all(p.doc_id == rec.id for p in ps)
        if len(ps) > 1:
            assert all(p.text.lstrip()[0] in "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳" for p in ps)


def test_load_records_from_paths_and_dicts(tmp_path: Path) -> None:
    f = tmp_path / "guide.jsonl"
    f.write_text(json.dumps({**LONG, "id": "안내/1"}, ensure_ascii=False) + "\n\n", encoding="utf-8")
    recs = load_records([f, LONG])
    assert [r.id for r in recs] == ["안내/1", "테스트법/제3조"]


def test_load_records_reports_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="bad.jsonl:1"):
        load_records([f])
    with pytest.raises(CorpusError, match="not found"):
        load_records([tmp_path / "missing.jsonl"])
