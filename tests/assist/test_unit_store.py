"""Unit vectors embedded once per index (``dasan kb units``, :mod:`assist.unit_store`): what is stored,
when a stored row may be read (same text, same split, same encoder), reuse across indexes, and the
draft's sentence choice reading them without an encoder call (pure: the fake concept encoder of
test_draft_dense; the real model: tests/assist/knowledge/test_kb_dense.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from assist.drafts import GroundedGenerator, UnitVectors
from assist.settings import AssistSettings
from assist.text import split_units
from assist.unit_store import MATRIX, TABLE, UnitStore, latest_store, precompute

from .test_draft_dense import QUESTION, TEXT, _hit, _vec, _words

OTHER = "① 수도요금은 매월 납부한다.\n② 다음 각 호의 요금을 감면한다.\n1. 기초생활수급자\n2. 장애인"


class Encoder:
    """The concept encoder behind an index: counts the documents it embeds."""

    def __init__(self, fingerprint: str = "gemma-bf16") -> None:
        self.fingerprint = fingerprint
        self.backend = "bf16"
        self.documents: list[str] = []

    def encode_documents(self, texts: list[str], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        self.documents.extend(texts)
        return np.vstack([_vec(t) for t in texts])


def _passage(pid: str, text: str, law: str = "지방세법", title: str | None = "신고 및 납부") -> Any:
    return SimpleNamespace(passage_id=pid, law_name=law, article_title=title, text=text)


def _kb(path: Path, passages: list[Any], encoder: Encoder | None = None) -> Any:
    return SimpleNamespace(
        path=path,
        key=path.name,
        encoder=encoder or Encoder(),
        dense=object(),
        passages=passages,
        settings=SimpleNamespace(doc_title_in_prompt=True),
        encode_queries=lambda qs: np.vstack([_vec(q) for q in qs]),
    )


def test_every_unit_is_embedded_once_in_the_document_format_and_read_back(tmp_path: Path) -> None:
    kb = _kb(tmp_path, [_passage("p1", TEXT), _passage("p2", OTHER, "수도 조례", None), _passage("p1", TEXT)])
    stats = precompute(kb)
    n1, n2 = len(split_units(TEXT)), len(split_units(OTHER))
    assert stats["units"] == n1 + n2 == stats["embedded"] and stats["reused"] == 0
    assert stats["passage_count"] == 2  # the same text under the same id: one set of rows
    assert kb.encoder.documents[0] == f"title: 지방세법 신고 및 납부 | text: {split_units(TEXT)[0].text}"
    assert kb.encoder.documents[n1].startswith("title: 수도 조례 | text: ")
    assert (tmp_path / MATRIX).is_file() and json.loads((tmp_path / TABLE).read_text())[
        "encoder"
    ] == "gemma-bf16"
    store = UnitStore.load(tmp_path, "gemma-bf16")
    assert store is not None and len(store) == 2 and store.matrix.dtype == np.float16
    rows = store.rows("p2", OTHER, split_units(OTHER))
    assert rows is not None and rows.dtype == np.float32
    assert np.allclose(rows, np.vstack([_vec(d) for d in kb.encoder.documents[n1:]]), atol=1e-3)


def test_a_row_is_read_only_for_the_text_split_and_encoder_it_was_made_from(tmp_path: Path) -> None:
    precompute(_kb(tmp_path, [_passage("p1", TEXT)]))
    store = UnitStore.load(tmp_path)
    assert store is not None
    units = split_units(TEXT)
    assert store.rows("p1", TEXT, units) is not None
    changed = TEXT.replace("60일", "90일")  # a new version of the article
    assert store.rows("p1", changed, split_units(changed)) is None
    assert store.rows("p9", TEXT, units) is None  # another passage
    resplit = [units[0].__class__(u.text, "item", None) for u in units]  # the splitter changed
    assert store.rows("p1", TEXT, resplit) is None
    assert UnitStore.load(tmp_path, "another-model") is None  # another encoder's vectors are not read
    assert UnitStore.load(tmp_path / "nothing") is None and UnitStore.load(None) is None
    (tmp_path / TABLE).write_text("{not json")
    assert UnitStore.load(tmp_path) is None  # unreadable: none, and the draft stays lexical


def test_a_truncated_matrix_is_not_read(tmp_path: Path) -> None:
    precompute(_kb(tmp_path, [_passage("p1", TEXT), _passage("p2", OTHER)]))
    np.save(tmp_path / MATRIX, np.load(tmp_path / MATRIX)[:1])
    assert UnitStore.load(tmp_path) is None


def test_rows_of_unchanged_passages_are_reused_from_another_index(tmp_path: Path) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    precompute(_kb(old_dir, [_passage("p1", TEXT), _passage("p2", OTHER)]))
    changed = OTHER.replace("매월", "격월")
    new = _kb(new_dir, [_passage("p1", TEXT), _passage("p2", changed)])
    reuse = latest_store(tmp_path, "gemma-bf16", exclude=new_dir)
    assert reuse is not None and latest_store(tmp_path, "another-model") is None
    stats = precompute(new, reuse=reuse)
    assert stats["reused"] == len(split_units(TEXT)) and stats["embedded"] == len(split_units(changed))
    store = UnitStore.load(new_dir)
    assert store is not None and store.rows("p2", changed, split_units(changed)) is not None
    with pytest.raises(ValueError, match="no dense side"):
        precompute(SimpleNamespace(**{**vars(new), "dense": None}))


def test_the_draft_reads_stored_vectors_without_embedding_and_picks_a_store_up_later(tmp_path: Path) -> None:
    kb = _kb(tmp_path, [_passage("p1", TEXT)])
    embedded: list[list[str]] = []
    now = [0.0]

    def load() -> UnitStore | None:
        return UnitStore.load(tmp_path, "gemma-bf16")

    dense = UnitVectors(
        lambda q: _vec(q),
        lambda title, texts: embedded.append(texts) or np.vstack([_vec(t) for t in texts]),  # type: ignore[func-returns-value]
        load_store=load,
        on_demand=False,
        retry_s=60,
        clock=lambda: now[0],
    )
    gen = GroundedGenerator(
        _words, lambda t: {"등기": 2.0}.get(t, 1.0), AssistSettings(draft_dense_weight=0.6), dense
    )
    # no store yet: the lexical choice (the rare word 등기), nothing embedded
    assert gen.select(QUESTION, [_hit()])[0][1][0].startswith("채권자") and dense.unavailable == 1
    precompute(kb)
    now[0] = 30.0  # looked for again only after retry_s
    assert gen.select(QUESTION, [_hit()])[0][1][0].startswith("채권자")
    now[0] = 61.0
    assert gen.select(QUESTION, [_hit()])[0][1][0].startswith("취득세 60일")
    assert dense.stored == 1 and embedded == []
    # a passage the store lacks (a newer text) stays lexical without on-demand embedding
    other = _hit("p1", TEXT.replace("60일", "90일"))
    assert gen.select(QUESTION, [other])[0][1][0].startswith("채권자") and embedded == []


def test_a_store_tells_which_passages_it_lacks(tmp_path: Path) -> None:
    precompute(_kb(tmp_path, [_passage("p1", TEXT), _passage("p2", OTHER)]))
    store = UnitStore.load(tmp_path)
    assert store is not None
    assert store.missing([_passage("p1", TEXT), _passage("p2", OTHER), _passage("p3", "")]) == 0
    assert store.missing([_passage("p2", OTHER.replace("매월", "격월")), _passage("p4", TEXT)]) == 2
