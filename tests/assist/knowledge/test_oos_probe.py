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
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Shipped models whose abstention read the probe are not used when the probe file is missing
    (its probabilities would not mean what the threshold promises); with the probe they are."""
    import lightgbm as lgb

    import assist.knowledge.rerank as rr

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
    clf = lgb.LGBMClassifier(n_estimators=2, min_child_samples=1, verbose=-1)
    clf.fit(
        rng.normal(size=(40, len(ABSTAIN_FEATURES))),
        rng.integers(0, 2, size=40),
        feature_name=list(ABSTAIN_FEATURES),
    )
    clf.booster_.save_model(str(tmp_path / "abstain_model.txt"))
    (tmp_path / "abstain_threshold.json").write_text(json.dumps({"threshold": 0.5, "oos_probe": True}))
    # stand-ins: no index is needed to read model files (the article view is built from one)
    monkeypatch.setattr(rr, "ArticleView", lambda kb: object())
    kb: Any = type("KB", (), {"settings": None})()
    assert rr.Reranker.load(kb, path).abstainer is None
    OosProbe(np.ones(DIM), 0.0).save(tmp_path / "abstain_probe.npz")
    loaded = rr.Reranker.load(kb, path)
    assert loaded.abstainer is not None and loaded.probe is not None
