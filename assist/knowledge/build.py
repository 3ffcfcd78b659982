"""Building an index in memory: split the records into passages, analyse them, embed the units
(reusing vectors whose embedded text is unchanged; within a time budget on a first build)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .analyzer import KoreanAnalyzer
from .budget import plan_token_cap
from .corpus import passage_doc_text, split_passages, topic_terms, version_key
from .dense import Encoder, document_text
from .records import Passage, Record
from .settings import KnowledgeSettings
from .store import StoredIndex, Vectors, dense_key, index_key, sha

log = logging.getLogger(__name__)


def _progress(iterable: Iterable[Any], enabled: bool, **kw: Any) -> Iterable[Any]:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kw)


def make_analyzer(records: Sequence[Record], settings: KnowledgeSettings) -> KoreanAnalyzer:
    return KoreanAnalyzer(extra_terms=topic_terms(records), typo_tolerant=settings.typo_tolerant)


def build_index(
    records: list[Record],
    settings: KnowledgeSettings,
    *,
    progress: bool = False,
    reuse: Vectors | None = None,
    encoder: Encoder | None = None,
    budget_s: float | None = None,
) -> tuple[StoredIndex, KoreanAnalyzer, Encoder | None]:
    """The index of ``records`` (settings resolved), its analyser and its encoder (None: BM25 only).
    See :meth:`assist.knowledge.KnowledgeBase.build` for ``reuse`` and ``budget_s``."""
    if not records:
        raise ValueError("the corpus is empty")
    t0 = time.perf_counter()
    analyzer = make_analyzer(records, settings)
    passages = [
        p for r in records for p in split_passages(r, settings.passage_max_chars, settings.passage_min_chars)
    ]
    texts = [passage_doc_text(p) for p in passages]
    tokens: list[list[str]] = []
    step = 256
    for i in _progress(range(0, len(texts), step), progress, desc="analyse", unit="batch"):
        tokens.extend(analyzer.content_morphemes_many(texts[i : i + step]))
    t_lex = time.perf_counter() - t0
    index = StoredIndex("", settings, records, passages, tokens)
    embedded = 0
    if settings.dense_enabled:
        encoder = encoder or Encoder.for_settings(settings)
        embedded = _embed(index, encoder, reuse, budget_s, progress)
    index.key = index_key(records, index.settings, analyzer.fingerprint())
    index.build_stats = {
        "records": len(records),
        "passages": len(passages),
        "embedded": embedded,
        "lexical_seconds": round(t_lex, 2),
        "total_seconds": round(time.perf_counter() - t0, 2),
    }
    return index, analyzer, encoder if settings.dense_enabled else None


def _embed(
    index: StoredIndex, encoder: Encoder, reuse: Vectors | None, budget_s: float | None, progress: bool
) -> int:
    """Fill the index's vectors; returns how many units were embedded (the rest were reused). A
    budget that the configured token cap would overrun lowers the cap in ``index.settings`` and marks
    the index provisional."""
    settings = index.settings
    units: list[Passage] | list[Record]
    if settings.dense_unit == "article":
        units = index.records
        pos = {(r.id, version_key(r)): i for i, r in enumerate(index.records)}
        index.unit_of = np.array([pos[(p.doc_id, p.version)] for p in index.passages], dtype=np.int64)
    else:
        units = index.passages
        index.unit_of = np.arange(len(index.passages))
    doc_texts = [
        document_text(f"{u.law_name} {u.article_title or ''}".strip(), u.text, settings.doc_title_in_prompt)
        for u in units
    ]
    calibration: tuple[list[int], np.ndarray] | None = None
    if budget_s is not None:
        cap, plan, calibration = plan_token_cap(encoder, doc_texts, settings, budget_s)
        if cap != settings.max_seq_length:
            log.warning(
                "first build over its time budget at the configured token cap: building a "
                "provisional index at a shorter cap (the full build replaces it)",
                extra=plan,
            )
            index.provisional = {**plan, "target_max_seq_length": settings.max_seq_length}
            settings = index.settings = settings.model_copy(update={"max_seq_length": cap})
            encoder.max_seq_length = cap
            calibration = None  # its vectors were embedded at the full cap
    key = dense_key(settings)
    hashes = [sha(key, t)[:24] for t in doc_texts]
    embeddings = np.zeros((len(units), encoder.dim), dtype=np.float32)
    old: dict[str, int] = {}
    if reuse is not None and reuse.dense_key == key:
        old = {h: i for i, h in enumerate(reuse.hashes)}
    done: set[int] = set()
    if calibration is not None:  # the timed batch was embedded at the cap kept: keep its vectors
        for j, i in enumerate(calibration[0]):
            embeddings[i] = calibration[1][j]
            done.add(i)
    todo = [i for i, h in enumerate(hashes) if h not in old and i not in done]
    for i, h in enumerate(hashes):
        if h in old and reuse is not None:
            embeddings[i] = reuse.matrix[old[h]]
    log.info(
        "embedding", extra={"units": len(units), "to_embed": len(todo), "reused": len(units) - len(todo)}
    )
    if todo:
        embeddings[todo] = encoder.encode_documents(
            [doc_texts[i] for i in todo], batch_size=settings.embed_batch_size, progress=progress
        )
    index.embeddings, index.embed_hashes = embeddings, hashes
    return len(todo)
