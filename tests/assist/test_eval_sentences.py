"""``dasan eval sentences``: the sentence a grounded draft reads, scored against the counselor's
next turn, and the context weight chosen on other folds (pure: a word-splitting analyser)."""

from __future__ import annotations

from types import SimpleNamespace

from assist.drafts import GroundedGenerator
from assist.eval_sentences import Case, agrees, cross_validate, evaluate
from assist.settings import AssistSettings


def _words(texts: list[str]) -> list[list[str]]:
    return [[w.strip(".,?①②") for w in t.split() if w.strip(".,?①②")] for t in texts]


TEXT = "① 취득세 60일 신고 납부하여야 한다.\n② 채권자 등기 대위하여 취득세를 낼 수 있다."


def _case(i: int, context: str, reference: int) -> Case:
    hit = SimpleNamespace(
        passage_id="p1",
        doc_id="지방세법/제20조",
        citation="c",
        law_name="지방세법",
        article_no="제20조",
        article_title=None,
        text=TEXT,
        score=1.0,
    )
    return Case(f"CALL{i:02d}", 3, "60일 넘기면 등기", context, "answer", hit, reference)


def test_context_weight_is_chosen_on_other_folds_and_scored_on_the_held_out_one() -> None:
    gen = GroundedGenerator(
        _words, lambda t: 2.0 if t == "등기" else 1.0, AssistSettings(draft_context_weight=0.5)
    )
    assistant = SimpleNamespace(generator=gen)
    # the counselor had explained the duty to report: the reference is the first sentence
    cases = [_case(i, "취득세 60일 이내 신고 납부하셔야 합니다", 0) for i in range(30)]
    assert agrees(gen, cases[0])  # weight 0.5 reads it
    report = cross_validate(assistant, cases, folds=3)  # type: ignore[arg-type]
    assert report["by_weight"]["0.0"]["agreement"] == 0.0
    assert report["by_weight"]["0.5"]["agreement"] == 1.0
    assert report["held_out_mean"] == 1.0 and all(h["weight"] > 0 for h in report["held_out"])
    # and where the question alone is right, a big weight is not chosen blindly: it is measured
    other = [_case(i, "취득세 신고 납부", 1) for i in range(30, 40)]
    out = evaluate(assistant, other, (0.0, 1.5))  # type: ignore[arg-type]
    assert out["0.0"] == 1.0 and out["1.5"] == 0.0 and out["cases"] == 10
