"""The knowledge base: passages, morpheme BM25, dense vectors, fusion, filters and persistence."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .analyzer import KoreanAnalyzer, whitespace_tokens
from .budget import plan_token_cap
from .corpus import (
    current_versions,
    in_force,
    load_records,
    passage_doc_text,
    record_hash,
    split_passages,
    version_key,
)
from .dense import DenseModelMissing, Encoder, ExactIndex, MicroBatcher, document_text, model_fingerprint
from .fusion import fuse_rrf, fuse_weighted, top_indices
from .lexical import BM25Index
from .records import Passage, Record, SearchFilters, SearchHit
from .settings import KnowledgeSettings

log = logging.getLogger(__name__)

Method = Literal["hybrid", "bm25", "dense", "bm25_ws"]
METHODS: tuple[str, ...] = ("bm25_ws", "bm25", "dense", "hybrid")
INDEX_FORMAT = "1"


class IndexNotFound(FileNotFoundError):
    """No built index matches the corpus, models and settings."""


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()


def _progress(iterable: Iterable[Any], enabled: bool, **kw: Any) -> Iterable[Any]:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kw)


class KnowledgeBase:
    """Search regulation passages. Build with :meth:`build` (in memory) or :meth:`open` (persisted)."""

    def __init__(
        self,
        settings: KnowledgeSettings,
        records: list[Record],
        passages: list[Passage],
        analyzer: KoreanAnalyzer,
        tokens: list[list[str]],
        embeddings: np.ndarray | None,
        embed_hashes: list[str],
        encoder: Encoder | None,
        key: str,
        path: Path | None = None,
        unit_of: np.ndarray | None = None,
    ) -> None:
        self.settings = settings
        self.records = records
        self.passages = passages
        self.analyzer = analyzer
        self.tokens = tokens
        self.key = key
        self.path = path
        self.encoder = encoder
        self.embed_hashes = embed_hashes
        # set when vectors were embedded at a shorter token cap to fit a first-build budget
        self.provisional: dict[str, Any] | None = None
        self.bm25 = BM25Index(tokens, k1=settings.bm25_k1, b=settings.bm25_b)
        self.dense = ExactIndex(embeddings) if embeddings is not None else None
        # row of the dense matrix that scores each passage (its article's row with dense_unit=article)
        self.unit_of = unit_of if unit_of is not None else np.arange(len(passages))
        self._bm25_ws: BM25Index | None = None
        self._records_by_id: dict[str, list[Record]] = {}
        for r in records:
            self._records_by_id.setdefault(r.id, []).append(r)
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._mask_lock = threading.Lock()
        self._batcher: MicroBatcher | None = None
        art_pos: dict[tuple[str, str], int] = {}
        self._art_of = np.array(
            [art_pos.setdefault((p.doc_id, p.version), len(art_pos)) for p in passages], dtype=np.int64
        )
        self._art_passages: list[list[int]] = [[] for _ in range(len(art_pos))]
        for i, a in enumerate(self._art_of):
            self._art_passages[a].append(i)

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def _make_analyzer(records: Sequence[Record], settings: KnowledgeSettings) -> KoreanAnalyzer:
        topics = sorted({t for r in records for t in r.topics})
        return KoreanAnalyzer(extra_terms=topics, typo_tolerant=settings.typo_tolerant)

    @staticmethod
    def _dense_key(settings: KnowledgeSettings) -> str:
        """Everything that changes a passage vector (reuse of vectors across builds is keyed on it)."""
        if not settings.dense_enabled:
            return "none"
        settings = settings.resolved()
        fp = model_fingerprint(settings.embedding_model_path)
        return _sha(
            fp,
            settings.dense_backend,
            str(settings.max_seq_length),
            str(settings.doc_title_in_prompt),
            settings.dense_unit,
        )[:16]

    @staticmethod
    def _content_key(records: Sequence[Record], analyzer: KoreanAnalyzer, settings: KnowledgeSettings) -> str:
        """Everything but the dense side: the corpus, the analyser and the passage settings. Two indexes
        with the same content key differ only in their vectors (a provisional index and the full one)."""
        corpus = _sha(*sorted(record_hash(r) for r in records))
        lexical = _sha(
            analyzer.fingerprint(),
            str(settings.passage_max_chars),
            str(settings.passage_min_chars),
        )
        return _sha(INDEX_FORMAT, corpus, lexical)[:20]

    @classmethod
    def _index_key(
        cls, records: Sequence[Record], analyzer: KoreanAnalyzer, settings: KnowledgeSettings
    ) -> str:
        return _sha(cls._content_key(records, analyzer, settings), cls._dense_key(settings))[:20]

    @classmethod
    def build(
        cls,
        records_or_paths: Iterable[Path | str | dict[str, Any] | Record] | None = None,
        settings: KnowledgeSettings | None = None,
        *,
        progress: bool = False,
        reuse: KnowledgeBase | None = None,
        encoder: Encoder | None = None,
        budget_s: float | None = None,
    ) -> KnowledgeBase:
        """Build an index in memory. ``reuse``: a previous index whose passage vectors are kept where
        the embedded text is unchanged (``dasan kb update``). ``budget_s``: when embedding at the
        configured token cap is projected (from a timed first batch on this machine) to take longer,
        embed at the largest shorter cap that fits and mark the index *provisional*: usable at once,
        to be replaced by the full build (``dasan kb build``) — see :func:`plan_token_cap`."""
        settings = (settings or KnowledgeSettings()).resolved()
        t0 = time.perf_counter()
        sources = settings.corpus_paths if records_or_paths is None else records_or_paths
        records = load_records(sources)
        if not records:
            raise ValueError("the corpus is empty")
        analyzer = cls._make_analyzer(records, settings)
        passages = [
            p
            for r in records
            for p in split_passages(r, settings.passage_max_chars, settings.passage_min_chars)
        ]
        texts = [passage_doc_text(p) for p in passages]
        tokens: list[list[str]] = []
        step = 256
        for i in _progress(range(0, len(texts), step), progress, desc="analyse", unit="batch"):
            tokens.extend(analyzer.content_morphemes_many(texts[i : i + step]))
        t_lex = time.perf_counter() - t0

        embeddings: np.ndarray | None = None
        hashes: list[str] = []
        todo: list[int] = []
        unit_of: np.ndarray | None = None
        provisional: dict[str, Any] | None = None
        dense_key = cls._dense_key(settings)
        if settings.dense_enabled:
            if encoder is None:
                encoder = Encoder(
                    settings.embedding_model_path,
                    settings.dense_backend,
                    settings.max_seq_length,
                    settings.query_max_length,
                    settings.threads,
                )
            units: list[Passage] | list[Record]
            if settings.dense_unit == "article":
                units = records
                pos = {(r.id, version_key(r)): i for i, r in enumerate(records)}
                unit_of = np.array([pos[(p.doc_id, p.version)] for p in passages], dtype=np.int64)
            else:
                units = passages
                unit_of = np.arange(len(passages))
            doc_texts = [
                document_text(
                    f"{u.law_name} {u.article_title or ''}".strip(), u.text, settings.doc_title_in_prompt
                )
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
                    provisional = {**plan, "target_max_seq_length": settings.max_seq_length}
                    settings = settings.model_copy(update={"max_seq_length": cap})
                    encoder.max_seq_length = cap
                    dense_key = cls._dense_key(settings)
                    calibration = None  # its vectors were embedded at the full cap
            hashes = [_sha(dense_key, t)[:24] for t in doc_texts]
            embeddings = np.zeros((len(units), encoder.dim), dtype=np.float32)
            old: dict[str, int] = {}
            if reuse is not None and reuse.dense is not None and cls._dense_key(reuse.settings) == dense_key:
                old = {h: i for i, h in enumerate(reuse.embed_hashes)}
            done: set[int] = set()
            if calibration is not None:  # the timed batch was embedded at the cap kept: keep its vectors
                for j, i in enumerate(calibration[0]):
                    embeddings[i] = calibration[1][j]
                    done.add(i)
            todo = [i for i, h in enumerate(hashes) if h not in old and i not in done]
            for i, h in enumerate(hashes):
                if h in old and reuse is not None and reuse.dense is not None:
                    embeddings[i] = reuse.dense.matrix[old[h]]
            log.info(
                "embedding",
                extra={"units": len(units), "to_embed": len(todo), "reused": len(units) - len(todo)},
            )
            if todo:
                embeddings[todo] = encoder.encode_documents(
                    [doc_texts[i] for i in todo], batch_size=settings.embed_batch_size, progress=progress
                )
        key = cls._index_key(records, analyzer, settings)
        kb = cls(
            settings, records, passages, analyzer, tokens, embeddings, hashes, encoder, key, None, unit_of
        )
        kb.provisional = provisional
        kb.build_stats = {
            "records": len(records),
            "passages": len(passages),
            "embedded": len(todo) if settings.dense_enabled else 0,
            "lexical_seconds": round(t_lex, 2),
            "total_seconds": round(time.perf_counter() - t0, 2),
        }
        return kb

    # -- persistence --------------------------------------------------------------------------
    def save(self, index_dir: Path | None = None) -> Path:
        """Write the index to ``<index_dir>/<key>`` (atomically: a temporary folder, then a rename)."""
        base = Path(index_dir or self.settings.index_dir)
        base.mkdir(parents=True, exist_ok=True)
        final = base / self.key
        tmp = base / f".{self.key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with (tmp / "records.jsonl").open("w", encoding="utf-8") as fh:
            for r in self.records:
                fh.write(r.model_dump_json() + "\n")
        with (tmp / "passages.jsonl").open("w", encoding="utf-8") as fh:
            for p in self.passages:
                fh.write(p.model_dump_json() + "\n")
        (tmp / "tokens.json").write_text(json.dumps(self.tokens, ensure_ascii=False), encoding="utf-8")
        if self.dense is not None:
            np.save(tmp / "embeddings.npy", self.dense.matrix)
            np.save(tmp / "unit_of.npy", self.unit_of)
            (tmp / "embed_hashes.json").write_text(json.dumps(self.embed_hashes))
        manifest = {
            "key": self.key,
            "format": INDEX_FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "records": len(self.records),
            "passages": len(self.passages),
            "dense": self.dense is not None,
            "dense_key": self._dense_key(self.settings),
            "settings": self.settings.model_dump(
                mode="json",
                include={
                    "dense_backend",
                    "max_seq_length",
                    "doc_title_in_prompt",
                    "dense_unit",
                    "passage_max_chars",
                    "passage_min_chars",
                    "embedding_model_path",
                },
            ),
            "analyzer": self.analyzer.fingerprint(),
            "encoder": self.settings.backend_report() if self.dense is not None else None,
            "content_key": self.content_key,
            "provisional": self.provisional,
            "build_stats": getattr(self, "build_stats", {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        self.path = final
        return final

    @classmethod
    def load(
        cls, path: Path, settings: KnowledgeSettings | None = None, analyzer: KoreanAnalyzer | None = None
    ):
        """Load a saved index folder (the embedding model is loaded when the index has vectors)."""
        settings = (settings or KnowledgeSettings()).resolved()
        path = Path(path)
        if not (path / "manifest.json").is_file():
            raise IndexNotFound(f"no index at {path}")
        manifest = json.loads((path / "manifest.json").read_text())
        records = load_records([path / "records.jsonl"])
        with (path / "passages.jsonl").open(encoding="utf-8") as fh:
            passages = [Passage.model_validate_json(line) for line in fh if line.strip()]
        tokens = json.loads((path / "tokens.json").read_text(encoding="utf-8"))
        embeddings = None
        hashes: list[str] = []
        encoder = None
        unit_of = None
        if manifest.get("dense") and settings.dense_enabled:
            embeddings = np.load(path / "embeddings.npy")
            unit_of = np.load(path / "unit_of.npy")
            hashes = json.loads((path / "embed_hashes.json").read_text())
            encoder = Encoder(
                settings.embedding_model_path,
                settings.dense_backend,
                settings.max_seq_length,
                settings.query_max_length,
                settings.threads,
            )
        analyzer = analyzer or cls._make_analyzer(records, settings)
        kb = cls(
            settings,
            records,
            passages,
            analyzer,
            tokens,
            embeddings,
            hashes,
            encoder,
            manifest["key"],
            path,
            unit_of,
        )
        kb.provisional = manifest.get("provisional")
        return kb

    @cached_property
    def content_key(self) -> str:
        return self._content_key(self.records, self.analyzer, self.settings)

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
        analyzer = cls._make_analyzer(records, settings)
        key = cls._index_key(records, analyzer, settings)
        path = settings.index_dir / key
        if (path / "manifest.json").is_file():
            return cls.load(path, settings, analyzer)
        provisional = cls._provisional_for(settings, cls._content_key(records, analyzer, settings))
        if provisional is not None:
            log.warning(
                "serving a provisional index (shorter token cap); build the full one with `dasan kb build`",
                extra={"path": str(provisional), "wanted": str(path)},
            )
            cap = json.loads((provisional / "manifest.json").read_text())["settings"]["max_seq_length"]
            return cls.load(provisional, settings.model_copy(update={"max_seq_length": int(cap)}), analyzer)
        if not build_if_missing:
            raise IndexNotFound(f"no index built for this corpus and settings ({path}): run `dasan kb build`")
        log.info("building knowledge index", extra={"path": str(path)})
        kb = cls.build(
            records,
            settings,
            progress=progress,
            reuse=cls.latest(settings),
            budget_s=settings.first_build_budget_s or None,
        )
        kb.save()
        return kb

    @classmethod
    def provisional_index(cls, settings: KnowledgeSettings | None = None) -> Path | None:
        """The provisional index standing in for the configured one, if one was built."""
        settings = (settings or KnowledgeSettings()).resolved()
        records = load_records(settings.corpus_paths)
        analyzer = cls._make_analyzer(records, settings)
        return cls._provisional_for(settings, cls._content_key(records, analyzer, settings))

    @classmethod
    def _provisional_for(cls, settings: KnowledgeSettings, content_key: str) -> Path | None:
        """The best provisional index of this content, backend and model (the longest token cap), if any."""
        if not settings.dense_enabled or not settings.index_dir.is_dir():
            return None
        best: tuple[int, Path] | None = None
        for p in settings.index_dir.iterdir():
            try:
                m = json.loads((p / "manifest.json").read_text())
            except (OSError, ValueError):
                continue
            built = m.get("settings", {})
            if (
                m.get("provisional")
                and m.get("content_key") == content_key
                and built.get("dense_backend") == settings.dense_backend
                and built.get("dense_unit") == settings.dense_unit
                and built.get("doc_title_in_prompt") == settings.doc_title_in_prompt
                and m["provisional"].get("target_max_seq_length") == settings.max_seq_length
                and (best is None or built.get("max_seq_length", 0) > best[0])
            ):
                best = (int(built.get("max_seq_length", 0)), p)
        return best[1] if best else None

    @classmethod
    def index_path(cls, settings: KnowledgeSettings | None = None) -> Path:
        """Where the index of the configured corpus, models and settings lives (built or not)."""
        settings = (settings or KnowledgeSettings()).resolved()
        records = load_records(settings.corpus_paths)
        analyzer = cls._make_analyzer(records, settings)
        return settings.index_dir / cls._index_key(records, analyzer, settings)

    @classmethod
    def latest(cls, settings: KnowledgeSettings) -> KnowledgeBase | None:
        """The most recently built index in ``index_dir`` (any corpus), for vector reuse."""
        settings = settings.resolved()
        base = settings.index_dir
        if not base.is_dir():
            return None
        found = sorted(
            (p for p in base.iterdir() if (p / "manifest.json").is_file()),
            key=lambda p: (p / "manifest.json").stat().st_mtime,
            reverse=True,
        )
        for p in found:
            manifest = json.loads((p / "manifest.json").read_text())
            if manifest.get("dense_key") == cls._dense_key(settings):
                s = settings.model_copy(update={"dense_enabled": False})
                old = cls.load(p, s)
                if manifest.get("dense"):
                    old.dense = ExactIndex(np.load(p / "embeddings.npy"))
                    old.unit_of = np.load(p / "unit_of.npy")
                    old.embed_hashes = json.loads((p / "embed_hashes.json").read_text())
                    old.settings = settings
                return old
        return None

    # -- filters ------------------------------------------------------------------------------
    def _mask(self, filters: SearchFilters | None) -> np.ndarray:
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

    # -- search -------------------------------------------------------------------------------
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
        queries = [self.dense_query_text(q) for q in queries]
        out = []
        step = self.settings.batch_max
        for i in range(0, len(queries), step):
            out.append(self.encoder.encode_queries(queries[i : i + step]))
        return np.vstack(out) if out else np.zeros((0, self.encoder.dim), dtype=np.float32)

    def _encode_one(self, query: str) -> np.ndarray:
        if self._batcher is None:
            self._batcher = MicroBatcher(
                self.encode_queries, self.settings.batch_window_ms, self.settings.batch_max
            )
        return self._batcher.submit(query)

    def search(
        self, query: str, top_k: int = 5, filters: SearchFilters | None = None, method: Method = "hybrid"
    ) -> list[SearchHit]:
        """Best passages for one query. Concurrent callers share one embedding batch (micro-batching)."""
        qvecs = None
        if self._uses_dense(method) and query.strip():
            qvecs = self._encode_one(query)[None, :]
        return self._search([query], top_k, filters, method, qvecs)[0]

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
        qvecs = None
        if self._uses_dense(method) and queries:
            qvecs = self.encode_queries([q if q.strip() else "-" for q in queries])
        if filters is None or isinstance(filters, SearchFilters):
            return self._search(queries, top_k, filters, method, qvecs)
        if len(filters) != len(queries):
            raise ValueError("one filter per query (or a single filter for all)")
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(filters):
            groups.setdefault(f.model_dump_json() if f is not None else "", []).append(i)
        out: list[list[SearchHit]] = [[] for _ in queries]
        for idx in groups.values():
            res = self._search(
                [queries[i] for i in idx],
                top_k,
                filters[idx[0]],
                method,
                qvecs[idx] if qvecs is not None else None,
            )
            for i, hits in zip(idx, res, strict=True):
                out[i] = hits
        return out

    def _uses_dense(self, method: str) -> bool:
        if method == "dense" and self.dense is None:
            raise DenseModelMissing("this index has no dense side")
        return method in ("dense", "hybrid") and self.dense is not None

    def _search(
        self,
        queries: list[str],
        top_k: int,
        filters: SearchFilters | None,
        method: str,
        qvecs: np.ndarray | None,
    ) -> list[list[SearchHit]]:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {METHODS}")
        mask = self._mask(filters)
        dense_all = self.dense.scores(qvecs) if (qvecs is not None and self.dense is not None) else None
        results = []
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
            results.append(self._rank(query, qtokens, scores, mask, top_k, method))
        return results

    def _rank(
        self,
        query: str,
        qtokens: list[str],
        scores: dict[str, np.ndarray],
        mask: np.ndarray,
        top_k: int,
        method: str,
    ) -> list[SearchHit]:
        s = self.settings
        pool = max(s.candidates, top_k * 4)
        tops = {name: top_indices(sc, pool, mask) for name, sc in scores.items()}
        ranks = {name: {int(i): r + 1 for r, i in enumerate(idx)} for name, idx in tops.items()}
        if s.fuse_level == "article" and s.dedupe_articles:
            # hits are articles: report each method's article rank (its best passage's place among articles)
            for name, idx in tops.items():
                art_rank: dict[int, int] = {}
                for i in idx:
                    art_rank.setdefault(int(self._art_of[i]), len(art_rank) + 1)
                ranks[name] = {p: r for a, r in art_rank.items() for p in self._art_passages[a]}
        if len(scores) == 1:
            name = next(iter(scores))
            # a lexical method with no matching term returns nothing rather than arbitrary passages
            order = [i for i in tops[name] if name == "dense" or scores[name][i] > 0]
            fused = {int(i): float(scores[name][i]) for i in order}
        else:
            cand = np.unique(np.concatenate(list(tops.values()))) if tops else np.zeros(0, dtype=np.int64)
            weights = {"dense": s.weight_dense, "bm25": s.weight_bm25}
            if s.fuse_level == "article":
                order, fused = self._fuse_articles(cand, tops, scores, mask, weights)
            elif s.fusion == "rrf":
                rk = {n: np.array([ranks[n].get(int(i), 0) for i in cand]) for n in scores}
                f = fuse_rrf(rk, weights, s.rrf_k)
            else:
                f = fuse_weighted({n: scores[n][cand] for n in scores}, weights)
            if s.fuse_level != "article":
                order_idx = np.argsort(-f, kind="stable")
                order = [int(cand[j]) for j in order_idx]
                fused = {int(cand[j]): float(f[j]) for j in order_idx}
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for i in order:
            p = self.passages[i]
            if s.dedupe_articles:
                if p.doc_id in seen:
                    continue
                seen.add(p.doc_id)
            hits.append(
                SearchHit(
                    passage_id=p.passage_id,
                    doc_id=p.doc_id,
                    citation=p.citation,
                    law_name=p.law_name,
                    article_no=p.article_no,
                    article_title=p.article_title,
                    jurisdiction=p.jurisdiction,
                    topics=p.topics,
                    effective_date=p.effective_date,
                    text=p.text,
                    snippet=self._snippet(p.text, qtokens),
                    score=fused[i],
                    ranks={n: ranks[n][i] for n in ranks if i in ranks[n]},
                    scores={n: float(sc[i]) for n, sc in scores.items()},
                )
            )
            if len(hits) >= top_k:
                break
        return hits

    def _fuse_articles(
        self,
        cand: np.ndarray,
        tops: dict[str, np.ndarray],
        scores: dict[str, np.ndarray],
        mask: np.ndarray,
        weights: dict[str, float],
    ) -> tuple[list[int], dict[int, float]]:
        """Fuse per article: each method scores an article by its best allowed passage; the article is
        shown through the passage with the best normalised weighted score."""
        s = self.settings
        arts = list(dict.fromkeys(int(a) for a in self._art_of[cand]))
        plists = [[p for p in self._art_passages[a] if mask[p]] for a in arts]
        if s.fusion == "rrf":
            art_rank: dict[str, dict[int, int]] = {}
            for n, idx in tops.items():
                seen: dict[int, int] = {}
                for i in idx:
                    seen.setdefault(int(self._art_of[i]), len(seen) + 1)
                art_rank[n] = seen
            f = fuse_rrf(
                {n: np.array([art_rank[n].get(a, 0) for a in arts]) for n in scores}, weights, s.rrf_k
            )
        else:
            agg = {n: np.array([sc[pl].max() for pl in plists], dtype=np.float32) for n, sc in scores.items()}
            f = fuse_weighted(agg, weights)
        lohi = {n: (float(sc[cand].min()), float(sc[cand].max())) for n, sc in scores.items()}

        def passage_value(p: int) -> float:
            v = 0.0
            for n, sc in scores.items():
                lo, hi = lohi[n]
                v += weights.get(n, 0.0) * ((float(sc[p]) - lo) / (hi - lo) if hi > lo else 0.0)
            return v

        order: list[int] = []
        fused: dict[int, float] = {}
        for j in np.argsort(-f, kind="stable"):
            best = max(plists[j], key=passage_value)
            order.append(best)
            fused[best] = float(f[j])
        return order, fused

    def _snippet(self, text: str, qtokens: list[str]) -> str:
        """The line of the passage that shares most query morphemes, cut to ``snippet_chars``."""
        n = self.settings.snippet_chars
        lines = [ln.strip() for ln in text.split("\n") if ln.strip()] or [text]
        terms = {t for t in qtokens if len(t) > 1}
        best = max(lines, key=lambda ln: sum(1 for t in terms if t in ln)) if terms else lines[0]
        return best if len(best) <= n else best[: n - 1].rstrip() + "…"

    # -- other API ----------------------------------------------------------------------------
    def is_confident(self, hits: list[SearchHit]) -> bool:
        """Whether the top hit is good enough to show (else: say no source was found)."""
        if not hits:
            return False
        top = hits[0]
        if "dense" in top.scores:
            return top.scores["dense"] >= self.settings.abstain_threshold
        bm = top.scores.get("bm25", 0.0)
        return bm > 0 and bm >= self.settings.abstain_bm25_threshold

    def article(self, doc_id: str, as_of: Any = None) -> dict[str, Any] | None:
        """The full record in force (``as_of``, default today); the newest version when none is."""
        from datetime import date

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
            "max_seq_length": self.settings.max_seq_length if self.dense is not None else None,
            "provisional": self.provisional,
            "embedding_matrix_mb": round(self.dense.matrix.nbytes / 2**20, 1)
            if self.dense is not None
            else 0,
            "bm25_vocab": len(self.bm25.vocab),
            "fusion": self.settings.fusion,
            "weights": {"dense": self.settings.weight_dense, "bm25": self.settings.weight_bm25},
        }
