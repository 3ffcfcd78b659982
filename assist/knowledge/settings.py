"""Settings of the knowledge base (environment variables ``DASAN_KB_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming import paths

# backends whose vectors equal fp32's (cosine ≥ 0.999): queries by one score passages by another as
# the calibration expects (int8 and ONNX int8 drift: their indexes are queried by themselves)
FP32_EQUIVALENT = frozenset({"bf16", "torch", "onnx-fp32", "cuda"})


def _default_corpus() -> list[Path]:
    return [paths.shared_dir() / "corpus" / "regulations.jsonl"]


def _default_index_dir() -> Path:
    return paths.var_dir() / "kb"


def _default_site_memory() -> Path:
    return paths.var_dir() / "kb" / "question-memory-site.npz"


def _default_model_path() -> Path:
    return paths.model_dir() / "embeddinggemma-300m"


class KnowledgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DASAN_KB_", extra="ignore")
    # what was configured before resolved() made the backend concrete ("auto", "cuda"), for reports
    _requested_backend: str | None = PrivateAttr(default=None)

    corpus_paths: list[Path] = Field(
        default_factory=_default_corpus,
        description="JSONL files of regulation records (same schema as ../shared/corpus/regulations.jsonl)",
    )
    index_dir: Path = Field(
        default_factory=_default_index_dir, description="Folder holding built indexes, one per content hash"
    )
    embedding_model_path: Path = Field(
        default_factory=_default_model_path, description="sentence-transformers folder of EmbeddingGemma-300M"
    )
    dense_enabled: bool = Field(default=True, description="Use the dense (embedding) side; False: BM25 only")
    dense_backend: Literal["auto", "bf16", "torch", "int8", "onnx", "onnx-fp32", "cuda"] = Field(
        default="auto",
        description="auto: chosen per machine at start (cuda on a usable GPU; bf16 on a CPU with AVX512-BF16/AMX; "
        "else torch, i.e. fp32: the vectors the thresholds and ranking models are calibrated on), logged and "
        "recorded in the index manifest; bf16: bfloat16 (fp32 quality; fast only with AVX512-BF16/AMX, 3-5x "
        "slower than fp32 without); torch: fp32; int8: dynamic int8 quantisation of the linear layers (fastest "
        "without bf16 hardware, but its scores drift from the calibrated ones: lower recall, more abstentions); "
        "onnx: ONNX Runtime int8 for this CPU's kernels (run `dasan models onnx` first); onnx-fp32: the same in "
        "float32; cuda: bfloat16 on the GPU",
    )
    query_backend: Literal["auto", "same", "bf16", "torch", "onnx-fp32"] = Field(
        default="auto",
        description="Backend of the query encoder of a loaded index (the passages keep the backend they were "
        "built with, which keys the index). same: the index's backend; auto: when `dasan models onnx` has "
        "exported the fp32 graph, a bf16 index gives small query batches (query_small_batch) to ONNX fp32 and "
        "keeps bf16 for larger ones, a torch (fp32) index is queried by ONNX fp32; else the index's backend. "
        "Only fp32-equivalent backends can be chosen (an int8 index is always queried by itself), so query "
        "scores never drift from the calibrated ones",
    )
    query_small_batch: int = Field(
        default=3,
        ge=0,
        description="query_backend=auto over a bf16 index: query batches of at most this many texts are "
        "embedded by ONNX fp32 (one query 65 vs 132 ms on a Zen 4 CPU with the services' passive threads; bf16 "
        "is faster from 4 texts a batch); 0: bf16 for every batch",
    )
    dense_unit: Literal["article", "passage"] = Field(
        default="article",
        description="article: one vector per article (title + lead, fast build), scoring all its passages; "
        "passage: one vector per passage",
    )
    max_seq_length: int = Field(
        default=256,
        ge=16,
        description="Token cap of an embedded article/passage (256 covers the median article whole; "
        "64 builds 2.3x faster at hybrid MRR 0.63 instead of 0.75 on eval-dev)",
    )
    first_build_budget_s: float = Field(
        default=360.0,
        ge=0,
        description="An index built on demand (first start) that is projected, from a timed batch on this "
        "machine, to take longer than this embeds at a shorter token cap and is marked provisional until "
        "`dasan kb build` makes the full one (0: no budget)",
    )
    query_max_length: int = Field(default=64, ge=8, description="Token cap of an embedded query")
    query_cache: int = Field(
        default=4096,
        ge=0,
        description="Query vectors kept in memory (least recently used dropped; keyed by the text the encoder "
        "sees and the encoder's model, backend and token cap): a text embedded for a live card is not embedded "
        "again for the call's summary or a repeated search (0: off)",
    )
    rerank_context_vectors: Literal["model", "text", "composed", "composed-h"] = Field(
        default="model",
        description="How the second stage's context variants (the caller's words with the counselor's last "
        "turn; with the recent conversation) are embedded. model: as the shipped ranker learned "
        "(abstain_threshold.json); text: the concatenated texts, three new texts per question; composed: the "
        "sum of the caller's words' vector and the context turns' (each turn embedded once per call, so a "
        "question's only new text is the caller's words: the site's choice where the encoder is the bottleneck, "
        "#18), served by the second model set fitted on them (assist/knowledge/composed/); composed-h: the "
        "first as text, the second composed. text and composed-h are for training and experiments (`dasan eval "
        "rerank --context-vectors`): a ranker reading other vectors than it learned from is not calibrated",
    )
    memory_questions_path: Path | None = Field(
        default=None,
        description="The remembered questions the second stage reads (JSON lines of text or shared "
        "reference and articles, embedded by each index once); unset: the list shipped beside the models "
        "(assist/knowledge/rerank_memory.jsonl). Tests whose subject is not the memory point it at a "
        "short list",
    )
    memory_site_path: Path = Field(
        default_factory=_default_site_memory,
        description="Questions this site's counselors confirmed (`dasan kb memory add` of a `dasan feedback "
        "export`): query vectors and article ids, no text, read by the second stage beside the shipped "
        "question memory (assist/knowledge/rerank_memory.jsonl, embedded by each index); a missing file adds nothing",
    )
    doc_title_in_prompt: bool = Field(
        default=True, description="Embed passages as 'title: <law> <article title> | text: <passage>'"
    )
    embed_batch_size: int = Field(default=16, ge=1, description="Passages per embedding batch at build time")
    threads: int = Field(default=2, ge=1, description="torch / ONNX Runtime intra-op threads")

    passage_max_chars: int = Field(
        default=400, ge=50, description="Articles longer than this are split into passages at 항 boundaries"
    )
    passage_min_chars: int = Field(default=120, ge=0, description="Short 항 are merged with the next one")

    bm25_k1: float = Field(default=1.2, gt=0, description="BM25 k1")
    bm25_b: float = Field(default=0.75, ge=0, le=1, description="BM25 b")
    query_expansion: bool = Field(default=True, description="Add legal terms for colloquial words in queries")
    dense_query_expansion: bool = Field(
        default=True, description="Append the legal terms of colloquial words to the query the encoder sees"
    )
    typo_tolerant: bool = Field(default=False, description="kiwipiepy typo-tolerant analysis of queries")

    fusion: Literal["weighted", "rrf"] = Field(
        default="weighted", description="weighted: normalised score sum; rrf: weighted reciprocal rank fusion"
    )
    weight_dense: float = Field(default=0.85, ge=0, description="Weight of the dense side in fusion")
    weight_bm25: float = Field(default=0.15, ge=0, description="Weight of the morpheme BM25 side in fusion")
    fuse_level: Literal["article", "passage"] = Field(
        default="article",
        description="article: each method scores an article by its best passage, then fuse; passage: fuse passages",
    )
    rrf_k: int = Field(default=60, ge=1, description="k of reciprocal rank fusion")
    candidates: int = Field(default=100, ge=10, description="Candidates taken from each side before fusion")
    dedupe_articles: bool = Field(default=True, description="Return the best passage of each article only")

    abstain_threshold: float = Field(
        default=0.34, description="Top hit's dense cosine below this: not confident (say no source found)"
    )
    abstain_bm25_threshold: float = Field(
        default=0.0, description="BM25-only mode: top normalised BM25 score below this is not confident"
    )
    batch_window_ms: float = Field(
        default=4.0, ge=0, description="Micro-batching: how long a query waits for others to share a batch"
    )
    batch_max: int = Field(default=32, ge=1, description="Micro-batching: most queries in one batch")
    snippet_chars: int = Field(default=160, ge=20, description="Length of a hit's snippet")

    def resolved(self) -> KnowledgeSettings:
        """These settings with ``dense_backend`` made concrete for this machine (``auto`` → the choice
        of :func:`assist.knowledge.dense.choose_backend`; an unusable ``cuda`` → the CPU choice). Indexes are keyed and built with the concrete
        backend, so an index built by one backend is never queried by another."""
        if self.dense_backend not in ("auto", "cuda"):
            return self
        from .dense import resolve_backend

        concrete = resolve_backend(self.dense_backend)
        out = self.model_copy(update={"dense_backend": concrete})
        out._requested_backend = self.dense_backend
        return out

    def query_encoders(self) -> tuple[str, str | None]:
        """The query encoder of an index these (resolved) settings load: (backend, backend of small
        batches or None). ``auto`` with the fp32 ONNX export present: a bf16 index keeps bf16 for
        batches above ``query_small_batch`` and gives the smaller ones (a search, one card) to ONNX
        fp32; a torch (fp32) index is queried by ONNX fp32 alone (faster at every batch size
        measured, the same vectors). An int8 index is queried by its own backend, whatever is set."""
        index = self.dense_backend
        if self.query_backend == "same" or index not in FP32_EQUIVALENT:
            return index, None
        if self.query_backend != "auto":
            return self.query_backend, None
        if index in ("bf16", "torch"):
            from .onnx_encoder import fp32_export_ready

            if fp32_export_ready(self.embedding_model_path):
                if index == "torch":
                    return "onnx-fp32", None
                return index, ("onnx-fp32" if self.query_small_batch > 0 else None)
        return index, None

    def backend_report(self) -> dict[str, str]:
        """Which encoder backend these (resolved) settings use, and why: for logs, the index
        manifest and ``dasan kb info``."""
        from .dense import backend_choice

        requested = self._requested_backend or self.dense_backend
        if requested == "auto" or (requested == "cuda" and self.dense_backend != "cuda"):
            choice = backend_choice()
            return {
                "backend": self.dense_backend,
                "requested": requested,
                "reason": choice.reason,
                "cpu": choice.cpu,
            }
        from streaming.hardware import cpu_info

        return {
            "backend": self.dense_backend,
            "requested": requested,
            "reason": "set by DASAN_KB_DENSE_BACKEND",
            "cpu": cpu_info().family,
        }
