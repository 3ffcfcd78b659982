"""The second model set (#18): composed context vectors get models fitted on them, chosen by the
setting, sharing the shipped set's question memory when it is the same questions."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

import assist.knowledge.rerank as rr
from assist.knowledge.memory import MEMORY_FILE


def _model_set(save: Any, folder: Path, context_vectors: str, **saved: Any) -> Path:
    """A ranker's model file (``save_models``) and its abstain_threshold.json (no abstainer) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = save(folder, {})
    (folder / "abstain_threshold.json").write_text(
        json.dumps({"threshold": 0.5, "context_vectors": context_vectors, **saved})
    )
    return path


@pytest.fixture()
def sets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save_models: Any) -> tuple[Any, Path, Path]:
    shipped = _model_set(save_models, tmp_path / "knowledge", "text")
    monkeypatch.setattr(rr, "MODEL_PATH", shipped)
    monkeypatch.setattr(rr, "COMPOSED_MODEL_DIR", tmp_path / "knowledge" / "composed")
    # stand-ins: no index is needed to read model files (the article view is built from one)
    monkeypatch.setattr(rr, "ArticleView", lambda kb: object())
    return save_models, shipped, tmp_path / "knowledge" / "composed"


def _kb(vectors: str) -> Any:
    return type("KB", (), {"settings": type("S", (), {"rerank_context_vectors": vectors})()})()


def test_the_setting_chooses_the_composed_set_when_it_is_there(sets, caplog) -> None:
    save, shipped, composed_dir = sets
    # no composed set yet: the shipped one, read with composed vectors, and a warning that says so
    assert rr.model_path_for(_kb("composed").settings) == shipped
    with caplog.at_level(logging.WARNING, logger=rr.__name__):
        assert rr.Reranker.load(_kb("composed")).context_vectors == "composed"
    assert "not calibrated" in caplog.text
    composed = _model_set(save, composed_dir, "composed", memory_questions=f"../{MEMORY_FILE}")
    caplog.clear()
    assert rr.model_path_for(_kb("composed").settings) == composed
    with caplog.at_level(logging.INFO, logger=rr.__name__):
        loaded = rr.Reranker.load(_kb("composed"))
    assert loaded.context_vectors == "composed" and "not calibrated" not in caplog.text
    # the service's log says which set it serves
    said = [r for r in caplog.records if getattr(r, "event", "") == "rerank_models"]
    assert [(r.folder, r.vectors) for r in said] == [("composed", "composed")]
    # the default and the other kinds keep the shipped set
    for vectors in ("model", "text", "composed-h"):
        assert rr.model_path_for(_kb(vectors).settings) == shipped
    assert rr.Reranker.load(_kb("model")).context_vectors == "text"


def test_a_set_names_the_memory_it_learned_with(sets) -> None:
    save, shipped, composed_dir = sets
    assert rr.memory_questions_of(shipped) == shipped.with_name(MEMORY_FILE)
    composed = _model_set(save, composed_dir, "composed", memory_questions=f"../{MEMORY_FILE}")
    assert rr.memory_questions_of(composed) == shipped.with_name(MEMORY_FILE).resolve()
    # a set that carries its own questions (trained on other examples) reads them
    own = _model_set(save, composed_dir, "composed")
    assert rr.memory_questions_of(own) == composed_dir / MEMORY_FILE


def test_every_shipped_model_set_reads_this_codes_features() -> None:
    """A model file whose features differ from the code's is refused at load (first-stage order with a
    warning): a change to ``FEATURES`` must refit every shipped set, the composed one included."""
    import lightgbm as lgb

    for folder in (rr.MODEL_PATH.parent, rr.COMPOSED_MODEL_DIR):
        for name in (rr.MODEL_PATH.name, rr.MODEL_T_PATH.name):
            booster = lgb.Booster(model_file=str(folder / name))
            assert tuple(booster.feature_name()) == rr.FEATURES, folder / name
        abstainer = lgb.Booster(model_file=str(folder / "abstain_model.txt"))
        assert tuple(abstainer.feature_name()) == rr.ABSTAIN_FEATURES, folder
