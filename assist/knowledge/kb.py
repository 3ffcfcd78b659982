"""The knowledge base: one object over a built index, for every caller.

Its parts: :mod:`.store` (keys, manifests, saving and loading, reuse, provisional indexes),
:mod:`.build` (passages, analysis, embedding), :mod:`.search` (filters, query embedding, each
method's scores) and :mod:`.ranking` (fusion, one hit per article, snippets).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .analyzer import KoreanAnalyzer
from .build import build_index, make_analyzer
from .corpus import in_force, load_records
from .dense import DenseModelMissing, Encoder, ExactIndex
from .lexical import BM25Index
from .records import Record, SearchFilters, SearchHit
from .search import Method, Searcher
from .settings import KnowledgeSettings
from .store import (
    IndexNotFound,
    IndexStore,
    StoredIndex,
    Vectors,
    content_key,
    dense_key,
    index_key,
    read_manifest,
)

log = logging.getLogger(__name__)


class KnowledgeBase:
    """Search regulation passages. Build with :meth:`build` (in memory) or :meth:`open` (persisted)."""

    def __init__(
        self,
        index: StoredIndex,
        analyzer: KoreanAnalyzer,
        encoder: Encoder | None,
        path: Path | None = None,
    ) -> None:
        self.settings = index.settings
        self.records = index.records
        self.passages = index.passages
        self.tokens = index.tokens
        self.key = index.key
        self.path = path
        self.analyzer = analyzer
        self.encoder = encoder
        self.embed_hashes = index.embed_hashes
        # set when vectors were embedded at a shorter token cap to fit a first-build budget
        self.provisional = index.provisional
        self.build_stats = index.build_stats
        self.bm25 = BM25Index(index.tokens, k1=self.settings.bm25_k1, b=self.settings.bm25_b)
        self.dense = ExactIndex(index.embeddings) if index.embeddings is not None else None
        # row of the dense matrix that scores each passage (its article's row with dense_unit=article)
        self.unit_of = index.unit_of if index.unit_of is not None else np.arange(len(self.passages))
        self.searcher = Searcher(
            self.settings, self.passages, analyzer, self.bm25, self.dense, self.unit_of, encoder
        )
        self._records_by_id: dict[str, list[Record]] = {}
        for r in self.records:
            self._records_by_id.setdefault(r.id, []).append(r)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        records_or_paths: Iterable[Path | str | dict[str, Any] | Record] | None = None,
        settings: KnowledgeSettings | None = None,
        *,
        progress: bool = False,
        reuse: KnowledgeBase | Vectors | None = None,
        encoder: Encoder | None = None,
        budget_s: float | None = None,
    ) -> KnowledgeBase:
        """Build an index in memory. ``reuse``: a previous index (or its :class:`Vectors`) whose vectors
        are kept where the embedded text is unchanged (``dasan kb update``). ``budget_s``: when
        embedding at the configured token cap is projected (from a timed first batch on this machine)
        to take longer, embed at the largest shorter cap that fits and mark the index *provisional*:
        usable at once, to be replaced by the full build (``dasan kb build``) — see
        :func:`.budget.plan_token_cap`."""
        settings = (settings or KnowledgeSettings()).resolved()
        sources = settings.corpus_paths if records_or_paths is None else records_or_paths
        vectors = reuse.vectors() if isinstance(reuse, KnowledgeBase) else reuse
        index, analyzer, encoder = build_index(
            load_records(sources),
            settings,
            progress=progress,
            reuse=vectors,
            encoder=encoder,
            budget_s=budget_s,
        )
        return cls(index, analyzer, encoder)

    def vectors(self) -> Vectors | None:
        """This index's vectors, for reuse by a later build."""
        if self.dense is None:
            return None
        return Vectors(dense_key(self.settings), self.dense.matrix, self.embed_hashes)

    # -- persistence --------------------------------------------------------------------------
    def save(self, index_dir: Path | None = None) -> Path:
        """Write the index to ``<index_dir>/<key>`` (atomically: a temporary folder, then a rename)."""
        index = StoredIndex(
            self.key,
            self.settings,
            self.records,
            self.passages,
            self.tokens,
            self.dense.matrix if self.dense is not None else None,
            self.unit_of if self.dense is not None else None,
            self.embed_hashes,
            self.provisional,
            self.build_stats,
        )
        store = IndexStore(Path(index_dir or self.settings.index_dir))
        self.path = store.save(index, self.analyzer.fingerprint(), self.content_key)
        return self.path

    @classmethod
    def load(
        cls,
        path: Path,
        settings: KnowledgeSettings | None = None,
        encoder: Encoder | None = None,
        analyzer: KoreanAnalyzer | None = None,
    ) -> KnowledgeBase:
        """Load a saved index folder (the embedding model is loaded when the index has vectors, unless
        ``encoder`` is given: one already loaded with the same model and backend, e.g. by the version
        in use when a running service switches versions). ``analyzer``: one already built, used when
        its fingerprint is the index's (same user dictionary), which spares kiwipiepy's start."""
        settings = (settings or KnowledgeSettings()).resolved()
        index = IndexStore.load(Path(path), settings)
        if index.embeddings is None:
            encoder = None
        elif encoder is None:
            encoder = Encoder.for_queries(settings)
        if analyzer is None or analyzer.fingerprint() != read_manifest(Path(path)).get("analyzer"):
            analyzer = make_analyzer(index.records, settings)
        return cls(index, analyzer, encoder, Path(path))

    @cached_property
    def content_key(self) -> str:
        return content_key(self.records, self.settings, self.analyzer.fingerprint())

    @classmethod
    def open(
        cls,
        settings: KnowledgeSettings | None = None,
        *,
        build_if_missing: bool = True,
        progress: bool = True,
    ) -> KnowledgeBase:
        """Load the index for the configured corpus, models and settings; build it when missing."""
        settings = (settings or KnowledgeSettings()).resolved()
        if settings.dense_enabled and not (settings.embedding_model_path / "modules.json").is_file():
            raise DenseModelMissing(
                f"embedding model not found at {settings.embedding_model_path}: run `dasan models install` "
                "or set DASAN_KB_DENSE_ENABLED=false for BM25 only"
            )
        records = load_records(settings.corpus_paths)
        store = IndexStore(settings.index_dir)
        path = store.path_for(index_key(records, settings))
        if store.is_built(path):
            return cls.load(path, settings)
        provisional = store.provisional_for(settings, content_key(records, settings))
        if provisional is not None:
            log.warning(
                "serving a provisional index (shorter token cap); build the full one with `dasan kb build`",
                extra={"path": str(provisional), "wanted": str(path)},
            )
            cap = read_manifest(provisional)["settings"]["max_seq_length"]
            return cls.load(provisional, settings.model_copy(update={"max_seq_length": int(cap)}))
        if not build_if_missing:
            raise IndexNotFound(f"no index built for this corpus and settings ({path}): run `dasan kb build`")
        log.info("building knowledge index", extra={"path": str(path)})
        kb = cls.build(
            records,
            settings,
            progress=progress,
            reuse=store.latest_vectors(settings),
            budget_s=settings.first_build_budget_s or None,
        )
        kb.save()
        return kb

    @staticmethod
    def provisional_index(settings: KnowledgeSettings | None = None) -> Path | None:
        """The provisional index standing in for the configured one, if one was built."""
        settings = (settings or KnowledgeSettings()).resolved()
        records = load_records(settings.corpus_paths)
        return IndexStore(settings.index_dir).provisional_for(settings, content_key(records, settings))

    @staticmethod
    def index_path(settings: KnowledgeSettings | None = None) -> Path:
        """Where the index of the configured corpus, models and settings lives (built or not)."""
        settings = (settings or KnowledgeSettings()).resolved()
        return settings.index_dir / index_key(load_records(settings.corpus_paths), settings)

    @staticmethod
    def latest(settings: KnowledgeSettings) -> Vectors | None:
        """The vectors of the most recently built index in ``index_dir`` (any corpus) embedded as
        ``settings`` would embed them, for reuse by :meth:`build`."""
        settings = settings.resolved()
        return IndexStore(settings.index_dir).latest_vectors(settings)

    # -- search -------------------------------------------------------------------------------
    def search(
        self, query: str, top_k: int = 5, filters: SearchFilters | None = None, method: Method = "hybrid"
    ) -> list[SearchHit]:
        """Best passages for one query. Concurrent callers share one embedding batch (micro-batching)."""
        return self.searcher.search(query, top_k, filters, method)

    def search_many(
        self,
        queries: list[str],
        top_k: int = 5,
        filters: SearchFilters | Sequence[SearchFilters | None] | None = None,
        method: Method = "hybrid",
    ) -> list[list[SearchHit]]:
        """Search several queries; their embeddings are computed in one batch (per ``batch_max``).

        ``filters``: one filter for all queries, or one per query (e.g. each call's district): the
        queries are still embedded together, so a batch of calls costs one encoder pass.
        """
        return self.searcher.search_many(queries, top_k, filters, method)

    def search_encoded(
        self, queries: list[str], qvecs: np.ndarray | None, top_k: int = 10, method: str = "hybrid"
    ) -> list[list[SearchHit]]:
        """Search with query vectors from :meth:`encode_queries` (None: no dense side), unfiltered."""
        return self.searcher.search_encoded(queries, qvecs, top_k, None, method)

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        return self.searcher.encode_queries(queries)

    def is_confident(self, hits: list[SearchHit]) -> bool:
        """Whether the top hit is good enough to show (else: say no source was found)."""
        if not hits:
            return False
        top = hits[0]
        if "dense" in top.scores:
            return top.scores["dense"] >= self.settings.abstain_threshold
        bm = top.scores.get("bm25", 0.0)
        return bm > 0 and bm >= self.settings.abstain_bm25_threshold

    # -- other API ----------------------------------------------------------------------------
    def article(self, doc_id: str, as_of: Any = None) -> dict[str, Any] | None:
        """The full record in force (``as_of``, default today); the newest version when none is."""
        versions = self._records_by_id.get(doc_id)
        if not versions:
            return None
        day = as_of or date.today()
        current = [r for r in versions if in_force(r, day)]
        pool = current or versions
        rec = max(pool, key=lambda r: r.effective_date or date.min)
        out = rec.model_dump(mode="json")
        out["in_force"] = bool(current)
        return out

    def article_version(self, doc_id: str, effective_date: date | None = None) -> Any:
        """One exact version of a record (by its effective date; None: the one in force today), with
        the newer version if any and the 별표 of the same law it mentions
        (:class:`.lookup.ArticleVersion`); None when unknown."""
        from .lookup import article_version

        return article_version(self._records_by_id, self.key, doc_id, effective_date)

    def idf(self, term: str) -> float:
        """Corpus IDF of a morpheme (as the morpheme BM25 index counts it)."""
        return self.bm25.idf(term)

    def info(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path) if self.path else None,
            "records": len(self.records),
            "passages": len(self.passages),
            "laws": len({r.law_name for r in self.records}),
            "dense": self.dense is not None,
            "dense_backend": self.settings.dense_backend if self.dense is not None else None,
            "encoder": self.settings.backend_report() if self.dense is not None else None,
            "query_backend": self.encoder.query_backends if self.encoder is not None else None,
            "max_seq_length": self.settings.max_seq_length if self.dense is not None else None,
            "provisional": self.provisional,
            "embedding_matrix_mb": round(self.dense.matrix.nbytes / 2**20, 1)
            if self.dense is not None
            else 0,
            "bm25_vocab": len(self.bm25.vocab),
            "fusion": self.settings.fusion,
            "weights": {"dense": self.settings.weight_dense, "bm25": self.settings.weight_bm25},
        }
