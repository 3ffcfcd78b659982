"""Training and cross-validating the second stage (assist/knowledge/rerank_train.py) on synthetic
candidates: grouped folds, out-of-fold scores and the abstention threshold's promise."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from assist.knowledge.rerank import ABSTAIN_FEATURES, FEATURES, Candidates, Conversation
from assist.knowledge.rerank_train import Example, cross_validate, fit_abstain, fold_of, hit_metrics


def test_fold_of_keeps_a_group_together_and_spreads_groups() -> None:
    folds = [fold_of(f"E{i:03d}", 5) for i in range(200)]
    assert fold_of("E001", 5) == fold_of("E001", 5)
    assert all(20 <= folds.count(f) <= 60 for f in range(5))


def test_hit_metrics() -> None:
    got = hit_metrics([["a", "b"], ["c", "a"], ["x"]], [["a"], ["a"], ["a"]])
    assert got == {"n": 3, "hit_at_1": 0.3333, "hit_at_5": 0.6667, "mrr_at_10": 0.5}


def _synthetic(n: int, rng: np.random.Generator) -> tuple[SimpleNamespace, list[Example]]:
    """Queries whose right article is marked by one informative feature the first stage ignores."""
    docs = [f"law/제{i}조" for i in range(40)]
    view = SimpleNamespace(doc_id=docs, law=np.zeros(len(docs), dtype=np.int64))
    informative = FEATURES.index("title_h")
    examples = []
    for q in range(n):
        arts = rng.choice(len(docs), size=12, replace=False)
        X = rng.normal(size=(12, len(FEATURES))).astype(np.float32)
        gold = int(rng.integers(12))
        X[:, informative] = 0.0
        X[gold, informative] = 1.0
        cand = Candidates(arts, arts, X)
        rel = [docs[arts[gold]]]
        first = [docs[a] for a in arts]  # first-stage order: arbitrary
        for twin in ("", "N"):  # an item and its noisy rewrite share a group
            examples.append(
                Example(f"E{q}{twin}", f"E{q}", "utterances", Conversation("q"), rel, cand, first)
            )
    return SimpleNamespace(view=view), examples


def test_cross_validation_learns_what_the_first_stage_ignores_on_held_out_groups() -> None:
    reranker, examples = _synthetic(120, np.random.default_rng(3))
    report, oof = cross_validate(reranker, examples, folds=4)  # type: ignore[arg-type]  # a stand-in: .view only
    mean = report["mean_of_held_out_folds"]["utterances"]
    assert mean["reranked"]["hit_at_1"] > 0.9 > mean["first_stage"]["hit_at_1"] + 0.5
    assert set(oof) == {e.id for e in examples}
    for f in report["per_fold"]:
        assert f["utterances"]["reranked"]["n"] > 0


def test_abstention_threshold_withholds_at_most_the_promised_share_of_in_scope() -> None:
    rng = np.random.default_rng(5)
    inscope = rng.normal(1.0, 0.5, size=(300, len(ABSTAIN_FEATURES)))
    oos = rng.normal(-1.0, 0.5, size=(60, len(ABSTAIN_FEATURES)))
    X = np.vstack([inscope, oos]).astype(np.float32)
    y = np.array([False] * 300 + [True] * 60)
    clf, thr = fit_abstain(X, y, max_withheld=0.05)
    p = clf.predict(X, num_threads=1)
    assert (p[~y] >= thr).mean() <= 0.05
    assert (p[y] >= thr).mean() >= 0.9


def _turn(i: int, relevant: list[str], trigger: str) -> Example:
    cand = Candidates(np.arange(3), np.arange(3), np.zeros((3, len(FEATURES)), dtype=np.float32))
    return Example(f"C1#{i}", "C1", "turns", Conversation("q"), relevant, cand, [], trigger=trigger)


def test_in_call_questions_are_the_unlabelled_questions_of_calls() -> None:
    asked = _turn(1, [], "그럼 그 택배는 어디로 찾으러 가요?")
    closing = _turn(3, [], "네, 알겠습니다. 감사합니다.")
    statement = _turn(5, [], "마포구 망원동이요.")
    labelled = _turn(7, ["도로교통법/제32조"], "인도에 세워도 돼요?")
    assert asked.in_call_question
    assert not closing.in_call_question and not statement.in_call_question and not labelled.in_call_question
    # a single utterance is never an in-call question, whatever it says
    single = Example("U1", "U1", "utterances", Conversation("q"), [], None, [], trigger="어디로 가요?")
    assert not single.in_call_question


def test_abstain_rows_take_call_turns_only_when_asked() -> None:
    from assist.knowledge.rerank_train import abstain_rows

    turns = [
        _turn(1, [], "그럼 그 택배는 어디로 찾으러 가요?"),
        _turn(3, [], "네, 알겠습니다. 감사합니다."),
        _turn(7, ["도로교통법/제32조"], "인도에 세워도 돼요?"),
    ]
    oof = {e.id: np.array([0.3, 0.2, 0.1], dtype=np.float32) for e in turns}
    X, y = abstain_rows(turns, oof)
    assert X.shape == (0, len(ABSTAIN_FEATURES)) and not len(y)
    X, y = abstain_rows(turns, oof, call_turns=True)
    # the question out of scope, the labelled turn in scope, the closing left out
    assert X.shape == (2, len(ABSTAIN_FEATURES)) and y.tolist() == [True, False]


def test_default_sets_add_the_held_out_sets_asked_for(tmp_path: Any) -> None:
    import pytest

    from assist.knowledge.rerank_train import default_sets

    sets = default_sets(tmp_path, tmp_path / "shared", holdouts=["1", "4"])
    assert sets["turns_h1"].name == "calls_holdout.jsonl"
    assert sets["utterances_h4"].name == "utterances_holdout4.jsonl"
    assert "turns_h2" not in sets
    # (held-out set, a set it adds, that set's file): each held-out set that may join training,
    # once measured blind (10, 17, 24-29, 37, 38, 45) or written as training data (11-16, 18-23, 30-36,
    # 39-44, 46-48, 50-52)
    learnable = (
        ("7", "turns_h7", "calls_holdout7.jsonl"),
        ("9", "turns_h9", "calls_holdout9.jsonl"),
        ("13", "turns_h13", "calls_holdout13.jsonl"),
        ("10", "turns_h10", "calls_holdout10.jsonl"),
        ("23", "turns_h23", "calls_holdout23.jsonl"),
        ("17", "turns_h17", "calls_holdout17.jsonl"),  # measured once in session 18
        ("24", "turns_h24", "calls_holdout24.jsonl"),  # session 19
        ("25", "turns_h25", "calls_holdout25.jsonl"),  # session 20
        ("26", "turns_h26", "calls_holdout26.jsonl"),  # session 21
        ("27", "turns_h27", "calls_holdout27.jsonl"),  # session 22
        ("28", "turns_h28", "calls_holdout28.jsonl"),  # session 23
        ("36", "turns_h36", "calls_holdout36.jsonl"),  # written in session 24
        ("32", "utterances_h32", "utterances_holdout32.jsonl"),  # written in session 23
        ("29", "turns_h29", "calls_holdout29.jsonl"),  # measured once in session 24
        ("41", "utterances_h41", "utterances_holdout41.jsonl"),  # written in session 25
        ("37", "turns_h37", "calls_holdout37.jsonl"),  # measured once in session 25
        ("38", "utterances_h38", "utterances_holdout38.jsonl"),  # measured once in session 26
        ("44", "utterances_h44", "utterances_holdout44.jsonl"),  # written in session 26
        ("48", "turns_h48", "calls_holdout48.jsonl"),  # written in session 27
        ("52", "utterances_h52", "utterances_holdout52.jsonl"),  # written in session 27
        ("45", "turns_h45", "calls_holdout45.jsonl"),  # measured once in session 27
        ("49", "utterances_h49", "utterances_holdout49.jsonl"),  # measured once in session 30
        ("56", "turns_h56", "calls_holdout56.jsonl"),  # written in session 31
        ("53", "utterances_h53", "utterances_holdout53.jsonl"),  # measured once in session 32
    )
    for k, name, file in learnable:
        assert default_sets(tmp_path, tmp_path / "shared", holdouts=[k])[name].name == file, k
    from assist.knowledge.rerank_train import BLIND_HOLDOUTS

    assert BLIND_HOLDOUTS  # a blind set is waiting for the next change, and is never a training set
    for k in BLIND_HOLDOUTS:
        with pytest.raises(ValueError, match="blind"):
            default_sets(tmp_path, tmp_path / "shared", holdouts=[k])
    with pytest.raises(ValueError, match="no held-out set"):
        default_sets(tmp_path, tmp_path / "shared", holdouts=["58"])


def test_in_call_threshold_keeps_its_promise_on_labelled_call_turns() -> None:
    """Call turns score higher than single questions: their own threshold withholds at most the
    promised share of labelled turns, where the single questions' threshold withheld far more."""
    from assist.knowledge.rerank_train import in_call_threshold

    rng = np.random.default_rng(7)
    inscope = rng.normal(1.0, 0.5, size=(300, len(ABSTAIN_FEATURES)))
    oos = rng.normal(-1.0, 0.5, size=(60, len(ABSTAIN_FEATURES)))
    X = np.vstack([inscope, oos]).astype(np.float32)
    y = np.array([False] * 300 + [True] * 60)
    clf, thr = fit_abstain(X, y, max_withheld=0.05)
    turns = rng.normal(0.0, 0.6, size=(200, len(ABSTAIN_FEATURES))).astype(np.float32)  # between the two
    asked = rng.normal(-1.2, 0.5, size=(20, len(ABSTAIN_FEATURES))).astype(np.float32)
    Xc = np.vstack([turns, asked])
    yc = np.array([False] * 200 + [True] * 20)
    thr_call = in_call_threshold(clf, Xc, yc, 0.05)
    assert thr_call is not None and thr_call > thr
    p = clf.predict(Xc, num_threads=1)
    assert (p[~yc] >= thr_call).mean() <= 0.05 < (p[~yc] >= thr).mean()
    assert in_call_threshold(clf, Xc[200:], yc[200:], 0.05) is None  # no labelled turn: no threshold


def test_reranker_uses_the_in_call_threshold_for_questions_with_a_conversation() -> None:
    from assist.knowledge.rerank import Reranker

    r = Reranker(SimpleNamespace(), None, None, 0.5, view=SimpleNamespace(), threshold_in_call=0.8)  # type: ignore[arg-type]
    assert r.threshold_for({"out_of_scope": 0.6, "in_call": 1.0}) == 0.8
    assert r.threshold_for({"out_of_scope": 0.6, "in_call": 0.0}) == 0.5
    assert r.threshold_for({"out_of_scope": 0.6}) == 0.5
    same = Reranker(SimpleNamespace(), None, None, 0.5, view=SimpleNamespace())  # type: ignore[arg-type]
    assert same.threshold_for({"in_call": 1.0}) == 0.5  # an older model file: one threshold


def test_turn_features_count_the_callers_nouns_the_conversation_has_not_said() -> None:
    from assist.knowledge.rerank import turn_features

    assert turn_features({"택배", "주소"}, {"택배", "주차"}, True).tolist() == [2.0, 0.5, 1.0]
    assert turn_features(set(), {"택배"}).tolist() == [0.0, 0.0, 0.0]


def test_call_abstain_features_read_the_top_candidate_and_the_turn() -> None:
    from assist.knowledge.rerank import CALL_ABSTAIN_FEATURES, call_abstain_features

    X = np.zeros((3, len(FEATURES)), dtype=np.float32)
    X[:, FEATURES.index("dense_t")] = [0.2, 0.7, 0.4]
    X[:, FEATURES.index("fused_t_rank")] = [1.0, 3.0, 2.0]
    X[:, FEATURES.index("bm25_t")] = [5.0, 1.0, 2.0]
    cand = Candidates(np.arange(3), np.arange(3), X, turn=np.array([4.0, 0.75, 1.0], dtype=np.float32))
    f = dict(
        zip(
            CALL_ABSTAIN_FEATURES,
            call_abstain_features(cand, np.array([0.1, 0.9, 0.3])).tolist(),
            strict=True,
        )
    )
    assert f["top_fused_t_rank"] == 3.0  # the ranker's top is third on the caller's words alone
    assert f["dense_t_best"] == np.float32(0.7) and f["bm25_t_best"] == 5.0
    assert f["turn_terms"] == 4.0 and f["turn_novel"] == 0.75
    assert call_abstain_features(cand, np.zeros(0)).shape == (len(CALL_ABSTAIN_FEATURES),)


def test_needs_no_card_is_every_unlabelled_turn_but_a_closing() -> None:
    assert _turn(1, [], "마포구 망원동이요.").needs_no_card
    assert _turn(2, [], "그럼 그 택배는 어디로 찾으러 가요?").needs_no_card
    assert not _turn(3, [], "네, 알겠습니다. 감사합니다.").needs_no_card
    assert not _turn(4, ["도로교통법/제32조"], "인도에 세워도 돼요?").needs_no_card


def _calls_with_a_turn_signal(rng: np.random.Generator) -> tuple[SimpleNamespace, list[Example]]:
    """Calls whose unanswerable questions are told apart only by the caller's words (turn_novel);
    every candidate-level feature is noise."""
    docs = [f"law/제{i}조" for i in range(10)]
    examples = []
    for c in range(60):
        for i in range(8):
            asked = i % 4 == 3
            X = rng.normal(size=(5, len(FEATURES))).astype(np.float32)
            turn = np.array(
                [3.0, rng.uniform(0.7, 1.0) if asked else rng.uniform(0.0, 0.4), 1.0], dtype=np.float32
            )
            cand = Candidates(np.arange(5), np.arange(5), X, turn=turn)
            rel = [] if asked else [docs[i]]
            trigger = "그건 어디로 가요?" if asked else "이건 되나요?"
            examples.append(
                Example(
                    f"C{c}#{i}", f"C{c}", "turns", Conversation("q"), rel, cand, docs[:5], trigger=trigger
                )
            )
    return SimpleNamespace(
        view=SimpleNamespace(doc_id=docs, law=np.zeros(len(docs), dtype=np.int64))
    ), examples


def test_call_model_withholds_in_call_questions_the_turn_gives_away_within_the_promise() -> None:
    from assist.knowledge.rerank_train import call_model_cv, fit_call_abstain

    reranker, examples = _calls_with_a_turn_signal(np.random.default_rng(11))
    oof = {e.id: np.asarray(e.candidates.X[:, 0]) for e in examples}
    # no single utterances: the comparison model cannot be fitted, the fold is skipped, not invented
    assert call_model_cv(reranker, examples, oof, folds=3)["per_fold"] == []  # type: ignore[arg-type]
    fitted = fit_call_abstain(examples, oof, 0.05)
    assert fitted is not None
    clf, thr = fitted
    from assist.knowledge.rerank import call_abstain_features

    p = np.array(
        [
            clf.predict(call_abstain_features(e.candidates, oof[e.id])[None, :], num_threads=1)[0]
            for e in examples
        ]
    )
    asked = np.array([e.in_call_question for e in examples])
    assert (p[~asked] >= thr).mean() <= 0.06
    assert (p[asked] >= thr).mean() >= 0.9
    # only labelled turns: nothing to learn
    assert fit_call_abstain([e for e in examples if e.relevant], oof, 0.05) is None


def test_reranker_judges_in_call_questions_by_the_in_call_model_when_shipped() -> None:
    from assist.knowledge.rerank import Reranker

    class Const:
        def __init__(self, p: float) -> None:
            self.p = p

        def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
            return np.full(len(X), self.p)

    cand = Candidates(np.arange(2), np.arange(2), np.zeros((2, len(FEATURES)), dtype=np.float32))
    sc = np.array([0.2, 0.1], dtype=np.float32)
    kb: Any = SimpleNamespace()  # stand-ins: the thresholds and models are all that is read
    view: Any = SimpleNamespace()
    r = Reranker(
        kb,
        None,
        Const(0.1),
        0.5,
        view=view,
        threshold_in_call=0.8,
        call_abstainer=Const(0.9),
        threshold_call_model=0.7,
    )
    assert r.turn_features  # the in-call model reads them
    assert not Reranker(kb, None, None, 0.5, view=view).turn_features
    assert r.out_of_scope(cand, sc, in_call=True) == 0.9
    assert r.out_of_scope(cand, sc, in_call=False) == 0.1
    assert r.threshold_for({"in_call": 1.0}) == 0.7 and r.threshold_for({"in_call": 0.0}) == 0.5


def test_every_held_out_set_of_a_kind_is_learned_from_but_reports_pool_the_same_sets() -> None:
    from assist.knowledge.rerank_train import CALL_SETS, UTTERANCE_SETS, abstain_rows, call_set, single_set

    assert single_set("dev") and single_set("utterances_h7") and not single_set("noisy")
    assert call_set("turns_h6") and not call_set("utterances_h6")
    # a held-out set joined to training (holdout 7) feeds abstention and the in-call questions ...
    cand = Candidates(np.arange(3), np.arange(3), np.zeros((3, len(FEATURES)), dtype=np.float32))
    oos7 = Example(
        "H7U1", "H7U1", "utterances_h7", Conversation("q"), [], cand, [], trigger="전기요금 얼마예요?"
    )
    ask7 = Example(
        "H7C#1", "H7C", "turns_h7", Conversation("q"), [], cand, [], trigger="그럼 택배는 어디로 가요?"
    )
    oof = {e.id: np.array([0.3, 0.2, 0.1], dtype=np.float32) for e in (oos7, ask7)}
    X, y = abstain_rows([oos7, ask7], oof, call_turns=True)
    assert X.shape[0] == 2 and y.tolist() == [True, True] and ask7.in_call_question
    # ... while the reported pools stay the ones earlier models were judged on
    assert "utterances_h7" not in UTTERANCE_SETS and "turns_h7" not in CALL_SETS


def test_the_context_vectors_a_model_learned_from_are_recorded_and_key_the_features(tmp_path: Any) -> None:
    """Models trained on ``composed`` context vectors say so beside them (``--train`` writes it), the
    CLI's default follows them, and their features are cached apart from the ``text`` ones."""
    import json

    from assist.knowledge.rerank_train import features_cache, shipped_context_vectors

    model = tmp_path / "rerank_model.txt"
    assert shipped_context_vectors(model) == "text"  # nothing saved: the models of before
    (tmp_path / "abstain_threshold.json").write_text(json.dumps({"threshold": 0.4}))
    assert shipped_context_vectors(model) == "text"
    (tmp_path / "abstain_threshold.json").write_text(
        json.dumps({"threshold": 0.4, "context_vectors": "composed"})
    )
    assert shipped_context_vectors(model) == "composed"
    labelled = tmp_path / "u.jsonl"
    labelled.write_text('{"id": "U1"}\n')
    kb = SimpleNamespace(key="k1", settings=SimpleNamespace(index_dir=tmp_path / "kb" / "k1"))
    text = features_cache(kb, {"utterances": labelled})
    assert features_cache(kb, {"utterances": labelled}, "text") == text
    assert features_cache(kb, {"utterances": labelled}, "composed") != text


def test_law_features_say_which_law_and_which_of_its_articles() -> None:
    from assist.knowledge.rerank import T_ONLY_DROP, law_features

    law = np.array([0, 1, 0, 2, 1, 0])
    score = np.array([0.9, 0.7, 0.5, 0.2, 0.8, 0.6], dtype=np.float32)
    gap, rank, count = law_features(law, score)
    assert np.allclose(gap, [0.0, 0.1, 0.0, 0.7, 0.1, 0.0])  # law 1's best (0.8) is 0.1 below the top
    assert rank.tolist() == [1, 2, 3, 1, 1, 2]  # within its own law
    assert count.tolist() == [3, 2, 3, 1, 2, 3]
    assert all(len(x) == 0 for x in law_features(np.zeros(0, dtype=np.int64), np.zeros(0)))
    # the question without context keeps the law features (T+H's scores equal T's there) and the
    # memory's count; it drops the context variants' own columns
    assert {"law_gap_h", "law_rank_h", "mem_count", "mem_law_vote"}.isdisjoint(T_ONLY_DROP)
    assert {"dense_h", "fused_c_rank", "has_context", "title_h"} <= set(T_ONLY_DROP)


def _one_file_sets(tmp_path: Any, monkeypatch: Any, featurize: Any, names: str) -> tuple[Any, dict[str, Any]]:
    """A reranker over a stub index whose labelled sets are files of example ids (``load_examples``
    and ``featurize`` replaced): what the feature cache is tested with."""
    from assist.knowledge import rerank_train
    from assist.knowledge.rerank_train import Example

    def load(assistant: Any, sets: dict[str, Any]) -> list[Example]:
        ((name, path),) = sets.items()
        return [Example(f"{name}:{line}", line, name, None, []) for line in path.read_text().split()]  # type: ignore[arg-type]

    monkeypatch.setattr(rerank_train, "load_examples", load)
    monkeypatch.setattr(rerank_train, "featurize", featurize)
    kb = SimpleNamespace(key="k1", settings=SimpleNamespace(index_dir=tmp_path / "kb" / "k1"))
    files = {n: tmp_path / f"{n}.jsonl" for n in names}
    for n, f in files.items():
        f.write_text(f"{n}1 {n}2")
    return SimpleNamespace(kb=kb, context_vectors="text"), files


def test_features_are_cached_per_labelled_set_so_a_new_set_featurises_only_itself(
    tmp_path: Any, monkeypatch: Any
) -> None:
    from assist.knowledge.rerank_train import featurized_examples

    featurised: list[list[str]] = []

    def featurize(reranker: Any, examples: list[Example], done: Any = None) -> None:
        featurised.append([e.id for e in examples])
        for e in examples:
            e.first_stage = [f"doc-of-{e.id}"]
        if done is not None:
            done(len(examples))

    reranker, files = _one_file_sets(tmp_path, monkeypatch, featurize, "abc")
    two = {"a": files["a"], "b": files["b"]}
    examples, fresh = featurized_examples(None, reranker, two)
    assert fresh == ["a", "b"] and featurised == [["a:a1", "a:a2"], ["b:b1", "b:b2"]]
    assert [e.first_stage for e in examples] == [
        ["doc-of-a:a1"],
        ["doc-of-a:a2"],
        ["doc-of-b:b1"],
        ["doc-of-b:b2"],
    ]
    # a third set: only it is featurised; the others come back from the cache, in the sets' order
    examples, fresh = featurized_examples(None, reranker, {"c": files["c"], **two})
    assert fresh == ["c"] and featurised[-1] == ["c:c1", "c:c2"]
    assert [e.id for e in examples] == ["c:c1", "c:c2", "a:a1", "a:a2", "b:b1", "b:b2"]
    assert examples[2].first_stage == ["doc-of-a:a1"]
    # a set whose file changed is featurised again; no cache at all when asked
    files["b"].write_text("b1 b2 b3")
    assert featurized_examples(None, reranker, two)[1] == ["b"]
    assert featurized_examples(None, reranker, two, use_cache=False)[1] == ["a", "b"]


def test_a_featurising_run_stopped_half_way_keeps_the_sets_it_finished(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """Each set is cached as soon as it is featurised (all sets take ~30 min on an AVX2 CPU): a run
    stopped in the second set starts again from it."""
    from assist.knowledge.rerank_train import featurized_examples

    calls: list[str] = []

    def featurize(reranker: Any, examples: list[Example], done: Any = None) -> None:
        calls.append(examples[0].set)
        if examples[0].set == "b" and len(calls) == 2:
            raise KeyboardInterrupt  # stopped while the second set is being featurised
        for e in examples:
            e.first_stage = ["x"]

    reranker, sets = _one_file_sets(tmp_path, monkeypatch, featurize, "ab")
    with pytest.raises(KeyboardInterrupt):
        featurized_examples(None, reranker, sets)
    assert featurized_examples(None, reranker, sets, progress=True)[1] == ["b"]
    assert calls == ["a", "b", "b"]
