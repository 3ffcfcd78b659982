"""The dense side of the sentence choice (``draft_dense_weight``): how the cosine of the question's
vector and each unit's is blended with the lexical score, the per-passage cache of unit vectors,
and its cross-validation in ``dasan eval sentences`` (pure: a word-splitting analyser and a fake
encoder that maps words to concepts)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from assist.drafts import GroundedGenerator, UnitVectors, combine_scores, make_generator
from assist.eval_sentences import DENSE, DENSE_WEIGHTS, Case, agrees, chosen_on_all, cross_validate, evaluate
from assist.settings import AssistSettings

TEXT = "① 취득세 60일 신고 납부하여야 한다.\n② 채권자 등기 대위하여 취득세를 낼 수 있다."
# concept of each word the fake encoder knows: a deadline, a registration, tax
CONCEPTS = {
    "60일": 0,
    "기한": 0,
    "넘기면": 0,
    "늦으면": 0,
    "등기": 1,
    "채권자": 1,
    "대위하여": 1,
    "취득세": 2,
}


def _words(texts: list[str]) -> list[list[str]]:
    return [[w.strip(".,?①②") for w in t.split() if w.strip(".,?①②")] for t in texts]


def _vec(text: str) -> np.ndarray:
    v = np.full(4, 0.05, dtype=np.float32)
    for w in _words([text])[0]:
        if w in CONCEPTS:
            v[CONCEPTS[w]] += 1.0
    return v / np.linalg.norm(v)


class FakeEncoder:
    """Counts its calls; ``fail``: raise instead (the encoder down)."""

    def __init__(self, fail: bool = False) -> None:
        self.queries: list[str] = []
        self.unit_batches: list[tuple[str, list[str]]] = []
        self.fail = fail

    def query(self, text: str) -> np.ndarray:
        if self.fail:
            raise RuntimeError("encoder down")
        self.queries.append(text)
        return _vec(text)

    def units(self, title: str, texts: list[str]) -> np.ndarray:
        self.unit_batches.append((title, texts))
        return np.vstack([_vec(t) for t in texts])


def _hit(pid: str = "p1", text: str = TEXT) -> Any:
    return SimpleNamespace(
        passage_id=pid,
        doc_id=f"지방세법/{pid}",
        citation="c",
        law_name="지방세법",
        article_no="제20조",
        article_title="신고 및 납부",
        text=text,
        score=1.0,
    )


def _gen(weight: float, enc: FakeEncoder, size: int = 8) -> GroundedGenerator:
    idf = {"등기": 2.0}.get
    return GroundedGenerator(
        _words,
        lambda t: idf(t, 1.0),
        AssistSettings(draft_dense_weight=weight),
        UnitVectors(enc.query, enc.units, size),
    )


# the caller's follow-up: one rare word (등기) of the wrong sentence, two deadline words of the right one
QUESTION = "등기 늦으면 기한 넘기면"


def test_combine_keeps_the_lexical_order_at_zero_and_the_dense_order_at_one() -> None:
    lexical = [3.0, 1.0, 0.0]
    cos = [0.1, 0.5, 0.3]
    exc = [False, False, False]
    at0 = combine_scores(lexical, cos, 0.0, exc)
    at1 = combine_scores(lexical, cos, 1.0, exc)
    assert at0 == pytest.approx([1.0, 1 / 3, 0.0])
    assert max(range(3), key=lambda i: at1[i]) == 1 and at1 == pytest.approx([0.0, 1.0, 0.5])
    # halfway: 0.5·(1, ⅓, 0) + 0.5·(0, 1, ½)
    assert combine_scores(lexical, cos, 0.5, exc) == pytest.approx([0.5, 2 / 3, 0.25])
    # an exception (다만 …) is discounted on the dense side too
    assert combine_scores([1.0, 1.0], [0.2, 0.9], 1.0, [False, True]) == pytest.approx([0.0, 0.6])
    # equal cosines say nothing; no lexical overlap says nothing
    assert combine_scores([2.0, 1.0], [0.4, 0.4], 0.5, [False, False]) == pytest.approx([0.5, 0.25])
    assert combine_scores([0.0, 0.0], [0.1, 0.3], 0.5, [False, False]) == pytest.approx([0.0, 0.5])
    assert combine_scores([], [], 0.5, []) == []
    with pytest.raises(ValueError):
        combine_scores([1.0], [0.1, 0.2], 0.5, [False])


def test_the_dense_side_moves_the_choice_to_the_sentence_the_question_means() -> None:
    enc = FakeEncoder()
    lexical = _gen(0.0, enc).select(QUESTION, [_hit()])[0][1][0]
    assert lexical.startswith("채권자")  # 등기's idf outweighs the deadline words the article lacks
    assert enc.queries == [] and enc.unit_batches == []  # weight 0: no encoder call at all
    dense = _gen(0.6, enc).select(QUESTION, [_hit()])[0][1][0]
    assert dense.startswith("취득세 60일")
    assert enc.queries == [QUESTION]
    # units are embedded with the passage's title (the document side), all in one batch
    assert enc.unit_batches == [("지방세법 신고 및 납부", [u for u in _units_of(TEXT)])]
    # a small weight leaves the lexical choice standing
    assert _gen(0.2, enc).select(QUESTION, [_hit()])[0][1][0].startswith("채권자")


def _units_of(text: str) -> list[str]:
    from assist.text import split_units

    return [u.text for u in split_units(text)]


def test_unit_vectors_are_cached_per_passage_in_a_bounded_lru() -> None:
    enc = FakeEncoder()
    gen = _gen(0.6, enc, size=2)
    dense = gen.dense
    assert dense is not None
    gen.select(QUESTION, [_hit("p1")])
    gen.select("기한 넘기면", [_hit("p1")])
    assert len(enc.unit_batches) == 1 and (dense.hits, dense.misses) == (
        1,
        1,
    )  # a repeated card: no embedding
    gen.select(QUESTION, [_hit("p2")])
    gen.select(QUESTION, [_hit("p3")])  # p1 is the least recently used: dropped
    assert len(dense) == 2 and len(enc.unit_batches) == 3
    gen.select(QUESTION, [_hit("p1")])
    assert len(enc.unit_batches) == 4
    # a new version of an article (same id, other text) is embedded again
    gen.select(QUESTION, [_hit("p1", TEXT.replace("60일", "90일"))])
    assert len(enc.unit_batches) == 5
    with pytest.raises(ValueError):
        UnitVectors(enc.query, enc.units, 0)


def test_a_failing_encoder_leaves_the_lexical_choice() -> None:
    gen = _gen(0.6, FakeEncoder(fail=True))
    assert gen.select(QUESTION, [_hit()])[0][1][0].startswith("채권자")


def test_make_generator_attaches_the_dense_side_only_when_weighted_and_the_index_has_vectors() -> None:
    class Encoder:
        def encode_documents(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
            self.docs = texts
            return np.vstack([_vec(t) for t in texts])

    encoder = Encoder()
    kb = SimpleNamespace(
        analyzer=SimpleNamespace(content_morphemes_many=_words),
        idf=lambda t: 1.0,
        encoder=encoder,
        dense=object(),
        settings=SimpleNamespace(doc_title_in_prompt=True),
        path=None,
        encode_queries=lambda qs: np.vstack([_vec(q) for q in qs]),
    )
    off = make_generator(AssistSettings(draft_dense_weight=0), kb)
    assert isinstance(off, GroundedGenerator) and off.dense is None
    # no precomputed unit vectors beside the index and no on-demand embedding: the lexical choice
    stored_only = make_generator(AssistSettings(draft_dense_weight=0.6), kb)
    assert isinstance(stored_only, GroundedGenerator) and stored_only.dense is not None
    assert stored_only.select(QUESTION, [_hit()])[0][1][0].startswith("채권자")
    assert not hasattr(encoder, "docs") and stored_only.dense.unavailable == 1
    on = make_generator(AssistSettings(draft_dense_weight=0.6, draft_dense_on_demand=True), kb)
    assert isinstance(on, GroundedGenerator) and on.dense is not None
    assert on.select(QUESTION, [_hit()])[0][1][0].startswith("취득세 60일")
    assert encoder.docs[0].startswith(
        "title: 지방세법 신고 및 납부 | text: 취득세 60일"
    )  # the document format
    bm25_only = SimpleNamespace(**{**vars(kb), "encoder": None, "dense": None})
    assert make_generator(AssistSettings(draft_dense_weight=0.6), bm25_only).dense is None  # type: ignore[attr-defined]


def _case(i: int, reference: int, dense_reference: int | None, query: str = QUESTION) -> Case:
    return Case(f"CALL{i:02d}", 3, query, "", "answer", _hit(), reference, dense_reference)


def test_the_dense_weight_is_cross_validated_over_folds_of_calls() -> None:
    gen = _gen(0.0, FakeEncoder())
    assistant = SimpleNamespace(generator=gen)
    # the counselor answered the deadline: the dense side reads it, the lexical side does not
    cases = [_case(i, 0, 0) for i in range(30)]
    assert not agrees(gen, cases[0])
    report = cross_validate(assistant, cases, 3, DENSE_WEIGHTS, DENSE)  # type: ignore[arg-type]
    assert report["param"] == DENSE and report["baseline_mean"] == 0.0
    assert report["by_weight"]["0.0"]["agreement"] == 0.0 and report["by_weight"]["1.0"]["agreement"] == 1.0
    assert report["held_out_mean"] == 1.0
    # the smallest weight that flips the choice is preferred among equals (0.2, 0.35 do not; 0.5 … 1.0 do)
    assert all(h["weight"] == 0.5 for h in report["held_out"]) and chosen_on_all(report) == 0.5
    # where both sides read the same sentence nothing is gained: the weight stays 0 (off)
    same = [_case(i, 1, 1, "등기 채권자") for i in range(30)]
    flat = cross_validate(assistant, same, 3, DENSE_WEIGHTS, DENSE)  # type: ignore[arg-type]
    assert flat["held_out_mean"] == flat["baseline_mean"] == 1.0
    assert all(h["weight"] == 0.0 for h in flat["held_out"]) and chosen_on_all(flat) == 0.0


def test_the_three_reference_views() -> None:
    gen = _gen(0.0, FakeEncoder())
    assistant = SimpleNamespace(generator=gen)
    # lexical reference: sentence ②; dense reference: ① for the first ten, none for the rest
    cases = [_case(i, 1, 0 if i < 10 else None) for i in range(20)]
    lexical = evaluate(assistant, cases, (0.0, 1.0), DENSE, "lexical")  # type: ignore[arg-type]
    dense = evaluate(assistant, cases, (0.0, 1.0), DENSE, "dense")  # type: ignore[arg-type]
    both = evaluate(assistant, cases, (0.0, 1.0), DENSE, "both")  # type: ignore[arg-type]
    assert lexical == {"cases": 20, "0.0": 1.0, "1.0": 0.0}
    assert dense == {"cases": 10, "0.0": 0.0, "1.0": 1.0}  # cases without a dense reference left out
    assert both == {"cases": 0, "0.0": None, "1.0": None}  # the references never agree here
    agreeing = [_case(i, 1, 1) for i in range(5)]
    assert evaluate(assistant, agreeing, (0.0,), DENSE, "both") == {"cases": 5, "0.0": 1.0}  # type: ignore[arg-type]


def test_paired_counts_the_drafts_a_weight_turns_right_and_wrong() -> None:
    from assist.eval_sentences import paired

    assistant = SimpleNamespace(generator=_gen(0.0, FakeEncoder()))
    # 12 cases the dense side turns right (reference ①), 2 it turns wrong (reference ②)
    cases = [_case(i, 0, 0) for i in range(12)] + [_case(i, 1, 1) for i in range(12, 14)]
    out = paired(assistant, cases, 0.8)  # type: ignore[arg-type]
    assert (out["better"], out["worse"], out["same"]) == (12, 2, 0)
    # two-sided sign test: 2·P(X ≤ 2), X ~ Bin(14, ½) = 2·106/16384
    assert out["sign_test_p"] == round(2 * 106 / 2**14, 4)
    assert paired(assistant, cases, 0.0)["sign_test_p"] == 1.0  # type: ignore[arg-type]


def test_statute_units_are_analysed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import assist.drafts as drafts

    calls: list[list[str]] = []

    def morphs(texts: list[str]) -> list[list[str]]:
        calls.append(texts)
        return _words(texts)

    monkeypatch.setattr(drafts, "UNIT_TOKENS_CACHE", 2)
    gen = GroundedGenerator(morphs, lambda t: 1.0, AssistSettings(draft_dense_weight=0))
    assert gen.unit_tokens(["가 나", "다", "가 나"]) == [["가", "나"], ["다"], ["가", "나"]]
    assert calls == [["가 나", "다"]]  # each text once, in one batch
    assert gen.unit_tokens(["다", "라"]) == [["다"], ["라"]] and calls[-1] == ["라"]
    gen.unit_tokens(["가 나"])  # evicted (the least recently used of three): analysed again
    assert calls[-1] == ["가 나"] and len(calls) == 3
