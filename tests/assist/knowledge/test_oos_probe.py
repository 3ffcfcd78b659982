"""The out-of-scope probe (assist/knowledge/oos_probe.py) and how training feeds it to abstention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from assist.knowledge.oos_probe import OosProbe, out_of_fold
from assist.knowledge.rerank import ABSTAIN_FEATURES, FEATURES, Candidates, Conversation, abstain_features
from assist.knowledge.rerank_train import Example, with_probe

DIM = 16


def _vectors(n: int, oos: bool, rng: np.random.Generator) -> np.ndarray:
    """Questions whose out-of-scope ones lean one way along the first axis (what they are about)."""
    v = rng.normal(size=(n, DIM))
    v[:, 0] += 2.0 if oos else -2.0
    return v


def test_the_probe_learns_what_a_question_is_about_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = np.vstack([_vectors(60, False, rng), _vectors(30, True, rng)])
    y = np.array([False] * 60 + [True] * 30)
    probe = OosProbe.fit(X, y)
    assert probe is not None and probe.dim == DIM
    new_in, new_out = _vectors(20, False, rng), _vectors(20, True, rng)
    assert probe.p_many(new_out).mean() > 0.8 > 0.2 > probe.p_many(new_in).mean()
    assert probe.p(None) == 0.0 and probe.p(np.ones(DIM + 1)) == 0.0  # no evidence: no vote
    path = tmp_path / "abstain_probe.npz"
    probe.save(path, encoder="bf16")
    again = OosProbe.load(path)
    assert again is not None and np.allclose(again.p_many(new_out), probe.p_many(new_out))
    assert OosProbe.load(tmp_path / "missing.npz") is None
    assert OosProbe.fit(X[:60], y[:60]) is None  # one class: nothing to learn


def test_out_of_fold_probabilities_come_from_probes_that_did_not_see_the_question() -> None:
    """On labels that are pure noise a probe fitted on everything memorises them; the out-of-fold
    probabilities, grouped by item, cannot: they carry no more than chance."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 256))
    y = rng.random(200) < 0.3
    groups = [f"G{i}" for i in range(200)]
    in_sample = OosProbe.fit(X, y, c=100.0)
    assert in_sample is not None
    acc_in = ((in_sample.p_many(X) >= 0.5) == y).mean()
    acc_oof = ((out_of_fold(X, y, groups, c=100.0) >= 0.5) == y).mean()
    assert acc_in > 0.95 and acc_oof < 0.75


def _example(eid: str, group: str, set_name: str, relevant: list[str], q: np.ndarray) -> Example:
    cand = Candidates(np.arange(2), np.arange(2), np.zeros((2, len(FEATURES)), dtype=np.float32), qvec=q)
    return Example(eid, group, set_name, Conversation("q"), relevant, cand, [])


def test_training_rows_read_out_of_fold_probabilities_and_held_out_ones_the_fitted_probe() -> None:
    rng = np.random.default_rng(3)
    train = [
        _example(f"U{i}", f"U{i}", "utterances", [] if i % 3 == 0 else ["a/제1조"], v)
        for i, v in enumerate(np.vstack([_vectors(1, i % 3 == 0, rng) for i in range(90)]))
    ]
    turn = _example("C#1", "C", "turns", ["a/제1조"], _vectors(1, False, rng)[0])
    test = [_example("T1", "T1", "dev", [], _vectors(1, True, rng)[0])]
    tr, te, probe = with_probe([*train, turn], test)
    assert probe is not None
    got = {e.id: e.candidates.p_probe for e in tr}
    # the call turn never taught the probe: it reads the whole probe, as a held-out question does
    assert got["C#1"] == probe.p(turn.candidates.qvec)
    assert te[0].candidates.p_probe == probe.p(test[0].candidates.qvec) > 0.5
    # a training single question's probability is not the whole probe's (that one saw it)
    assert any(abs(got[e.id] - probe.p(e.candidates.qvec)) > 1e-6 for e in train)
    # and abstention reads it as its last feature
    assert ABSTAIN_FEATURES[-1] == "oos_probe"
    x = abstain_features(te[0].candidates, np.array([0.2, 0.1], dtype=np.float32))
    assert x.shape == (len(ABSTAIN_FEATURES),) and x[-1] == np.float32(te[0].candidates.p_probe)
    off_tr, off_te, none = with_probe([*train, turn], test, enabled=False)
    assert none is None and {e.candidates.p_probe for e in [*off_tr, *off_te]} == {0.0}


def test_an_abstention_model_that_learned_from_a_probe_is_refused_without_it(
    tmp_path: Path, monkeypatch: Any, save_models: Any
) -> None:
    """Shipped models whose abstention read the probe are not used when the probe file is missing
    (its probabilities would not mean what the threshold promises); with the probe they are."""
    import assist.knowledge.rerank as rr

    path = save_models(tmp_path, {"abstain_model.txt": ABSTAIN_FEATURES})
    (tmp_path / "abstain_threshold.json").write_text(json.dumps({"threshold": 0.5, "oos_probe": True}))
    # stand-ins: no index is needed to read model files (the article view is built from one)
    monkeypatch.setattr(rr, "ArticleView", lambda kb: object())
    kb: Any = type("KB", (), {"settings": None})()
    assert rr.Reranker.load(kb, path).abstainer is None
    OosProbe(np.ones(DIM), 0.0).save(tmp_path / "abstain_probe.npz")
    loaded = rr.Reranker.load(kb, path)
    assert loaded.abstainer is not None and loaded.probe is not None


def _turn(eid: str, call: str, relevant: list[str], trigger: str, q: np.ndarray) -> Example:
    e = _example(eid, call, "turns_h5", relevant, q)
    return Example(e.id, e.group, e.set, e.conv, e.relevant, e.cand, [], trigger=trigger)


def test_the_turn_probe_learns_from_call_turns_out_of_fold_and_the_in_call_model_reads_it() -> None:
    """The turn probe learns from call turns alone (labelled with articles vs needing no card); a
    training turn reads a probe that never saw its call, a held-out turn the fitted one, a single
    question none; the in-call abstention features end with it."""
    from assist.knowledge.rerank import CALL_ABSTAIN_FEATURES, call_abstain_features
    from assist.knowledge.rerank_train import fit_turn_probe, with_turn_probe

    rng = np.random.default_rng(5)
    turns = []
    for c in range(40):
        for i in range(4):
            none = i == 3  # a statement that needs no card ("번호판은 제가 찍어 놨어요")
            trigger = "번호판은 제가 찍어 놨어요." if none else "과태료는 얼마예요?"
            turns.append(
                _turn(f"C{c}#{i}", f"C{c}", [] if none else ["a/제1조"], trigger, _vectors(1, none, rng)[0])
            )
    closing = _turn("C0#9", "C0", [], "네, 알겠습니다. 감사합니다.", _vectors(1, True, rng)[0])
    single = _example("U1", "U1", "utterances", ["a/제1조"], _vectors(1, True, rng)[0])
    held = [_turn("H#1", "H", [], "주소는 망원동이요.", _vectors(1, True, rng)[0])]
    tr, te, probe = with_turn_probe([*turns, closing, single], held)
    assert probe is not None and fit_turn_probe([*turns, closing, single]) is not None
    got = {e.id: e.candidates.p_turn for e in tr}
    assert got["U1"] == 0.0  # a single question is never in a call
    assert got["C0#9"] == probe.p(closing.candidates.qvec)  # a closing never taught it: the whole probe
    assert any(abs(got[e.id] - probe.p(e.candidates.qvec)) > 1e-6 for e in turns)  # out of fold
    assert te[0].candidates.p_turn == probe.p(held[0].candidates.qvec) > 0.5
    none_p = np.mean([got[e.id] for e in turns if not e.relevant])
    card_p = np.mean([got[e.id] for e in turns if e.relevant])
    assert none_p > 0.7 > 0.3 > card_p  # held-out calls are told apart, not memorised
    assert CALL_ABSTAIN_FEATURES[-1] == "turn_probe"
    x = call_abstain_features(te[0].candidates, np.array([0.2, 0.1], dtype=np.float32), 0.3)
    assert x[-1] == np.float32(te[0].candidates.p_turn) and x[-2] == np.float32(0.3)
    off, off_te, no_probe = with_turn_probe(turns, held, enabled=False)
    assert no_probe is None and {e.candidates.p_turn for e in [*off, *off_te]} == {0.0}


def test_an_in_call_model_that_learned_from_a_turn_probe_is_refused_without_it(
    tmp_path: Path, monkeypatch: Any, save_models: Any
) -> None:
    import assist.knowledge.rerank as rr

    path = save_models(
        tmp_path, {"abstain_model.txt": rr.ABSTAIN_FEATURES, rr.CALL_MODEL_FILE: rr.CALL_ABSTAIN_FEATURES}
    )
    (tmp_path / "abstain_threshold.json").write_text(
        json.dumps({"threshold": 0.5, "threshold_call_model": 0.6, "turn_probe": True})
    )
    monkeypatch.setattr(rr, "ArticleView", lambda kb: object())
    kb: Any = type("KB", (), {"settings": None})()
    missing = rr.Reranker.load(kb, path)
    assert missing.abstainer is not None and missing.call_abstainer is None and missing.turn_probe is None
    OosProbe(np.ones(DIM), 0.0).save(tmp_path / "abstain_turn_probe.npz")
    loaded = rr.Reranker.load(kb, path)
    assert loaded.call_abstainer is not None and loaded.turn_probe is not None
    assert loaded.threshold_for({"in_call": 1.0}) == 0.6
