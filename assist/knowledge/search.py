"""Searching an index: filters, query embedding (batched), each method's scores, then the ranker.

Methods: ``bm25`` (morphemes), ``dense``, ``hybrid`` (both, fused) and ``bm25_ws`` (whitespace tokens,
the measured baseline only). A lexical method with no matching term returns nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .analyzer import KoreanAnalyzer, whitespace_tokens
from .corpus import current_versions, in_force, passage_doc_text
from .dense import DenseModelMissing, Encoder, ExactIndex, MicroBatcher
from .lexical import BM25Index
from .ranking import Ranker
from .records import Passage, SearchFilters, SearchHit
from .settings import KnowledgeSettings

Method = Literal["hybrid", "bm25", "dense", "bm25_ws"]
METHODS: tuple[str, ...] = ("bm25_ws", "bm25", "dense", "hybrid")


class Searcher:
    def __init__(
        self,
        settings: KnowledgeSettings,
        passages: Sequence[Passage],
        analyzer: KoreanAnalyzer,
        bm25: BM25Index,
        dense: ExactIndex | None,
        unit_of: np.ndarray,
        encoder: Encoder | None,
    ) -> None:
        self.settings = settings
        self.passages = passages
        self.analyzer = analyzer
        self.bm25 = bm25
        self.dense = dense
        self.unit_of = unit_of  # dense row of each passage
        self.encoder = encoder
        self.ranker = Ranker(passages, settings)
        self._bm25_ws: BM25Index | None = None
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._mask_lock = threading.Lock()
        self._batcher: MicroBatcher | None = None

    # -- filters ------------------------------------------------------------------------------
    def mask(self, filters: SearchFilters | None) -> np.ndarray:
        """The passages a filter allows (cached for the 64 most recent filters)."""
        f = filters or SearchFilters()
        fkey = f.model_dump_json()
        with self._mask_lock:
            cached = self._masks.get(fkey)
            if cached is not None:
                self._masks.move_to_end(fkey)
                return cached
        current = current_versions(self.passages, f.as_of)
        laws = set(f.law_names)
        jurs = set(f.jurisdictions)
        topics = set(f.topics)
        applies: set[str] | None = None
        if f.applies_in:
            parts = f.applies_in.split()
            applies = {"대한민국"} | {" ".join(parts[: i + 1]) for i in range(len(parts))}
        mask = np.fromiter(
            (
                (p.doc_id, p.version) in current
                and in_force(p, f.as_of)
                and (not laws or p.law_name in laws)
                and (not jurs or p.jurisdiction in jurs)
                and (applies is None or p.jurisdiction in applies)
                and (not topics or bool(topics.intersection(p.topics)))
                for p in self.passages
            ),
            dtype=bool,
            count=len(self.passages),
        )
        with self._mask_lock:
            self._masks[fkey] = mask
            if len(self._masks) > 64:
                self._masks.popitem(last=False)
        return mask

    # -- queries ------------------------------------------------------------------------------
    @property
    def bm25_ws(self) -> BM25Index:
        """Whitespace-token BM25 (the measured baseline; built on first use)."""
        if self._bm25_ws is None:
            toks = [whitespace_tokens(passage_doc_text(p)) for p in self.passages]
            self._bm25_ws = BM25Index(toks, k1=self.settings.bm25_k1, b=self.settings.bm25_b)
        return self._bm25_ws

    def dense_query_text(self, query: str) -> str:
        """What the encoder sees: the query, plus the legal terms of its colloquial words (if enabled)."""
        if not self.settings.dense_query_expansion:
            return query
        extra = list(dict.fromkeys(self.analyzer.expansions(query)))
        return f"{query} {' '.join(extra)}" if extra else query

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        if self.encoder is None:
            raise DenseModelMissing("this index has no dense side")
        return self._encode_texts([self.dense_query_text(q) for q in queries])

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        """Vectors of texts already as the encoder sees them (:meth:`dense_query_text`), ``batch_max``
        at a time."""
        assert self.encoder is not None
        out = []
        step = self.settings.batch_max
        for i in range(0, len(texts), step):
            out.append(self.encoder.encode_queries(texts[i : i + step]))
        return np.vstack(out) if out else np.zeros((0, self.encoder.dim), dtype=np.float32)

    def _encode_one(self, query: str) -> np.ndarray:
        """One query's vector: from the encoder's query cache when it holds it (no wait for a batch),
        else through the micro-batcher (concurrent callers share one model call)."""
        if self.encoder is None:
            raise DenseModelMissing("this index has no dense side")
        text = self.dense_query_text(query)
        cached = self.encoder.cached_query(text)
        if cached is not None:
            return cached
        if self._batcher is None:
            self._batcher = MicroBatcher(
                self._encode_texts, self.settings.batch_window_ms, self.settings.batch_max
            )
        return self._batcher.submit(text)

    def uses_dense(self, method: str) -> bool:
        if method == "dense" and self.dense is None:
            raise DenseModelMissing("this index has no dense side")
        return method in ("dense", "hybrid") and self.dense is not None

    # -- search -------------------------------------------------------------------------------
    def search(
        self, query: str, top_k: int = 5, filters: SearchFilters | None = None, method: Method = "hybrid"
    ) -> list[SearchHit]:
        qvecs = None
        if self.uses_dense(method) and query.strip():
            qvecs = self._encode_one(query)[None, :]
        return self.search_encoded([query], qvecs, top_k, filters, method)[0]

    def search_many(
        self,
        queries: list[str],
        top_k: int = 5,
        filters: SearchFilters | Sequence[SearchFilters | None] | None = None,
        method: Method = "hybrid",
    ) -> list[list[SearchHit]]:
        qvecs = None
        if self.uses_dense(method) and queries:
            qvecs = self.encode_queries([q if q.strip() else "-" for q in queries])
        if filters is None or isinstance(filters, SearchFilters):
            return self.search_encoded(queries, qvecs, top_k, filters, method)
        if len(filters) != len(queries):
            raise ValueError("one filter per query (or a single filter for all)")
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(filters):
            groups.setdefault(f.model_dump_json() if f is not None else "", []).append(i)
        out: list[list[SearchHit]] = [[] for _ in queries]
        for idx in groups.values():
            res = self.search_encoded(
                [queries[i] for i in idx],
                qvecs[idx] if qvecs is not None else None,
                top_k,
                filters[idx[0]],
                method,
            )
            for i, hits in zip(idx, res, strict=True):
                out[i] = hits
        return out

    def search_encoded(
        self,
        queries: list[str],
        qvecs: np.ndarray | None,
        top_k: int,
        filters: SearchFilters | None,
        method: str,
    ) -> list[list[SearchHit]]:
        """Search with query vectors already computed (``None``: no dense side), e.g. one encoder pass
        shared by several methods in an evaluation."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {METHODS}")
        mask = self.mask(filters)
        dense_all = self.dense.scores(qvecs) if (qvecs is not None and self.dense is not None) else None
        results: list[list[SearchHit]] = []
        for qi, query in enumerate(queries):
            if not query.strip() or top_k <= 0:
                results.append([])
                continue
            scores: dict[str, np.ndarray] = {}
            qtokens: list[str] = []
            if method in ("bm25", "hybrid"):
                qtokens = self.analyzer.query_tokens(query, self.settings.query_expansion)
                scores["bm25"] = self.bm25.scores(qtokens)
            if method == "bm25_ws":
                scores["bm25_ws"] = self.bm25_ws.scores(whitespace_tokens(query))
            if dense_all is not None and method in ("dense", "hybrid"):
                scores["dense"] = dense_all[qi][self.unit_of]
            results.append(self.ranker.rank(qtokens, scores, mask, top_k))
        return results
