"""Which passage of a card's article the draft reads (:mod:`assist.passage_choice`): with stored unit
vectors, the passage holding the best sentence over the whole article replaces the one retrieval
matched; without them (or with the dense side off) nothing moves (pure: the concept encoder of
test_draft_dense over a real unit store in a temporary folder)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from assist.drafts import GroundedGenerator, UnitVectors
from assist.knowledge.records import Passage, SearchHit
from assist.passage_choice import ArticlePassages, best_passage
from assist.settings import AssistSettings
from assist.unit_store import UnitStore, precompute

from .test_draft_dense import _vec, _words

DAY = date(2026, 1, 1)
# one article in two passages: the deadline (①) and a creditor registering by subrogation (⑤)
DEADLINE = "① 취득세 60일 이내 신고 납부하여야 한다."
CREDITOR = "⑤ 채권자 등기 대위하여 취득세를 신고 납부할 수 있다.\n⑥ 채권자 대위 사실을 통보한다."


def _passage(n: int, text: str, doc: str = "지방세법/제20조") -> Passage:
    return Passage(
        passage_id=f"{doc}@2026-01-01#{n}",
        doc_id=doc,
        citation="「지방세법」 제20조(신고 및 납부)",
        law_name="지방세법",
        article_no="제20조",
        article_title="신고 및 납부",
        jurisdiction="대한민국",
        topics=[],
        effective_date=DAY,
        version="2026-01-01",
        text=text,
    )


PASSAGES = [
    _passage(1, DEADLINE),
    _passage(5, CREDITOR),
    _passage(1, "① 재산세 납기 7월", "지방세법/제115조"),
]


def _hit(p: Passage, score: float = 3.0) -> SearchHit:
    fields = {f: getattr(p, f) for f in SearchHit.model_fields if f in Passage.model_fields and f != "text"}
    return SearchHit(**fields, text=p.text, snippet=p.text[:20], score=score, ranks={"rerank": 1})


class Encoder:
    fingerprint = "concepts"
    backend = "bf16"

    def encode_documents(self, texts: list[str], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        return np.vstack([_vec(t) for t in texts])


def _gen(tmp: Path, weight: float = 0.65, stored: list[Passage] | None = None) -> GroundedGenerator:
    kb = SimpleNamespace(
        path=tmp,
        key="k",
        encoder=Encoder(),
        dense=object(),
        passages=stored if stored is not None else PASSAGES,
        settings=SimpleNamespace(doc_title_in_prompt=True),
    )
    precompute(kb)
    dense = UnitVectors(
        lambda q: _vec(q),
        lambda title, texts: np.vstack([_vec(t) for t in texts]),
        load_store=lambda: UnitStore.load(tmp, "concepts"),
        on_demand=False,
    )
    # 등기 is the rare word (idf 2): lexically the creditor passage wins
    return GroundedGenerator(
        _words, lambda t: {"등기": 2.0}.get(t, 1.0), AssistSettings(draft_dense_weight=weight), dense
    )


QUESTION = "등기 전에 기한 넘기면 어떻게 돼요"  # the deadline, said with a word of the other passage


def test_the_article_passage_holding_the_best_sentence_is_read(tmp_path: Path) -> None:
    gen = _gen(tmp_path)
    arts = ArticlePassages(PASSAGES)
    matched = _hit(PASSAGES[1])  # retrieval matched ⑤
    assert [p.passage_id for p in arts.of(matched)] == [PASSAGES[0].passage_id, PASSAGES[1].passage_id]
    assert best_passage(gen, QUESTION, matched, arts.of(matched)) is PASSAGES[0]
    other = _hit(PASSAGES[2], 1.0)
    out = arts.refine(gen, QUESTION, [matched, other], lambda text: "snip:" + text[:5], first=1)
    assert out[0].passage_id == PASSAGES[0].passage_id and out[0].text == DEADLINE
    assert out[0].snippet == "snip:" + DEADLINE[:5]
    # the card keeps its article, rank and score; the passage after the drafted ones is untouched
    assert (out[0].doc_id, out[0].score, out[0].ranks) == (matched.doc_id, 3.0, {"rerank": 1})
    assert out[1] is other
    # the draft now reads the deadline sentence and cites the swapped-in passage
    assert gen.select(QUESTION, out)[0][1][0].startswith("취득세 60일")
    # already on the best passage, or an article of one passage: nothing to swap
    assert best_passage(gen, QUESTION, out[0], arts.of(out[0])) is None
    assert best_passage(gen, QUESTION, other, arts.of(other)) is None


def test_nothing_moves_without_stored_vectors_for_every_passage_or_a_dense_side(tmp_path: Path) -> None:
    arts = ArticlePassages(PASSAGES)
    matched = _hit(PASSAGES[1])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    only_one = _gen(tmp_path / "a", stored=[PASSAGES[1]])  # the store lacks the deadline passage
    assert best_passage(only_one, QUESTION, matched, arts.of(matched)) is None
    off = _gen(tmp_path / "b", weight=0.0)
    assert best_passage(off, QUESTION, matched, arts.of(matched)) is None
    lexical_only = GroundedGenerator(_words, lambda t: 1.0, AssistSettings(), None)
    assert arts.refine(lexical_only, QUESTION, [matched], str, first=1) == [matched]


def test_article_view_scores_both_ways_against_references_over_the_whole_article(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assist.eval_sentences as es

    gen = _gen(tmp_path)
    matched = _hit(PASSAGES[1])
    # the counselor answered with the deadline (①), which only the article's other passage holds
    answer = "기한 60일 넘기면 안 됩니다"
    res = SimpleNamespace(hits=[matched], query=QUESTION)
    assistant = SimpleNamespace(generator=gen, article_passages=ArticlePassages(PASSAGES))
    # the service's run of the labelled turns, as article_view reads it (the request: its call id)
    monkeypatch.setattr(
        es,
        "_labelled_results",
        lambda a, calls, batch=16: ([(SimpleNamespace(call_id="C1"), "", answer, 3, res)], 1),
    )
    view = es.article_view(assistant, [])  # type: ignore[arg-type]
    assert view["cases"] == 1 and view["passage_swapped"] == 1
    dense = view["views"]["dense"]
    assert (dense["matched_passage"], dense["article_best_passage"], dense["better"]) == (0.0, 1.0, 1)
    assert view["choice_ms"]["n"] == 1
