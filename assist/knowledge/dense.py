"""Dense side: EmbeddingGemma-300M through sentence-transformers, exact inner-product search.

Backends (``KnowledgeSettings.dense_backend``):

- ``auto`` (default): chosen per machine at start by :func:`choose_backend` from what the hardware
  has (``/proc/cpuinfo`` flags, a usable CUDA device), logged with its reason and recorded in the
  index manifest. On CUDA ``cuda``; on a CPU with AVX512-BF16 or AMX ``bf16``; otherwise ``int8``.
- ``bf16``: bfloat16 weights and activations (EmbeddingGemma supports bf16, not fp16). On a CPU with
  AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids) about 4x faster than fp32 for passages and 2-3x for
  a query, with vectors equal to fp32 to cosine 0.999+: fp32 quality at better than int8 speed.
  Without AVX512-BF16 it runs but slowly: use ``int8`` there.
- ``torch``: fp32, as shipped.
- ``int8``: ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear`` (weights int8, activations
  quantised on the fly): about 2-5x faster on this CPU; vectors drift from fp32 (cosine about 0.94), so
  passages and queries must be embedded by the same backend (the backend is part of the index key).
- ``onnx``: ONNX Runtime, int8 (dynamic, per-channel ``MatMul`` weights) for this CPU's kernels
  (AVX512-VNNI or AVX2), from the export ``dasan models onnx`` makes (:mod:`.onnx_encoder`); vectors
  at cosine about 0.97 to fp32 (closer than ``int8``'s 0.94, still a drift: embed passages with it too).
- ``onnx-fp32``: the same export in float32 (vectors equal to ``torch``'s, cosine 1.0000).
- ``cuda``: bfloat16 on the GPU. When CUDA is not usable at start, the CPU choice (with a warning,
  before the index key is made); when the model then fails to load onto the GPU (no memory, a
  runtime mismatch), bf16 or fp32 on the CPU (:func:`load_with_cuda_fallback`: vectors of the same
  numerics as the ``cuda`` index, never int8's), with a structured warning.

Passages are embedded as ``title: <law> <article title> | text: <passage>`` (EmbeddingGemma's document
format with a real title), queries with the model's ``query`` prompt. Vectors are L2-normalised float32;
:class:`ExactIndex` does exact inner product and is the place to plug an ANN index.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from streaming.hardware import CpuInfo, cpu_info, cuda_usable

from .query_cache import QueryVectorCache

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .settings import KnowledgeSettings

log = logging.getLogger(__name__)
M = TypeVar("M")


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    reason: str
    cpu: str


def choose_backend(cpu: CpuInfo, cuda: tuple[bool, str]) -> BackendChoice:
    """The encoder backend for a machine (pure: the facts come in as arguments).

    Measured (docs/knowledge.md "Which encoder backend", EmbeddingGemma, 2 threads): on a CPU with
    AVX512-BF16/AMX bf16 is the fastest and gives fp32's vectors (cosine >= 0.999). On a CPU
    without them bfloat16 is *emulated* (AMD EPYC AVX2: one query 809 ms vs 261 ms fp32 and 162 ms
    int8; 32 articles at 256 tokens 110 s vs 21 s and 14 s). There fp32 is chosen, not the faster
    int8: fp32 keeps bf16's vectors, so the confidence thresholds, the second-stage ranker and the
    out-of-scope model (all calibrated on bf16 scores) hold; int8 drifts (cosine ~0.94; eval-dev
    hybrid MRR@10 0.679 vs 0.748, and a right article's dense score fell under the calibrated
    threshold). ``DASAN_KB_DENSE_BACKEND=int8`` trades that quality for speed explicitly."""
    ok, why = cuda
    if ok:
        return BackendChoice("cuda", f"{why}: bfloat16 on the GPU", cpu.family)
    if cpu.bf16:
        return BackendChoice("bf16", "CPU has AVX512-BF16/AMX: bfloat16 in hardware", cpu.family)
    return BackendChoice(
        "torch",
        "CPU lacks AVX512-BF16/AMX (bfloat16 would be emulated, 3-5x slower than fp32): float32, the same "
        "vectors as bf16, on which the thresholds and ranking models are calibrated (int8 is faster but "
        f"drifts; ask for it with DASAN_KB_DENSE_BACKEND=int8) ({why})",
        cpu.family,
    )


def resolve_backend(requested: str, cuda: Callable[[], tuple[bool, str]] = cuda_usable) -> str:
    """The concrete backend for a configured one: ``auto`` → this machine's choice; ``cuda`` on a
    machine where CUDA is not usable → the CPU choice, with a warning (never an exception).
    ``cuda``: the probe (:func:`streaming.hardware.cuda_usable`; a test passes its own)."""
    if requested == "auto":
        return backend_choice().backend if cuda is cuda_usable else choose_backend(cpu_info(), cuda()).backend
    if requested == "cuda":
        ok, why = cuda()
        if not ok:
            fallback = choose_backend(cpu_info(), (False, why))
            log.warning(
                "CUDA asked for but not usable: the encoder runs on the CPU",
                extra={"reason": why, "backend": fallback.backend},
            )
            return fallback.backend
    return requested


@lru_cache(maxsize=1)
def backend_choice() -> BackendChoice:
    """This machine's choice (probed once per process, logged once)."""
    choice = choose_backend(cpu_info(), cuda_usable())
    log.info(
        "encoder backend chosen",
        extra={"backend": choice.backend, "reason": choice.reason, "cpu": choice.cpu},
    )
    return choice


def cuda_fallback_backend(cpu: CpuInfo) -> str:
    """The CPU backend that replaces ``cuda`` when the model fails to load onto the GPU *after* the
    index was keyed ``cuda``: bf16 where the CPU has it in hardware, else fp32 (``torch``). Both give
    vectors equal to the GPU's bf16 ones to cosine 0.999+, so the ``cuda`` index stays valid; int8
    would drift (cosine ~0.94) from the passages it is searched against."""
    return "bf16" if cpu.bf16 else "torch"


def load_with_cuda_fallback(
    backend: str, load: Callable[[str], M], cpu: CpuInfo | None = None
) -> tuple[M, str, str]:
    """``load(backend)``; when ``backend`` is ``cuda`` and that raises (no driver, a runtime
    mismatch, out of GPU memory), ``load`` of :func:`cuda_fallback_backend` instead, with one
    structured warning (``event=encoder_cuda_fallback``). Returns (model, backend, device)."""
    if backend != "cuda":
        return load(backend), backend, "cpu"
    try:
        return load("cuda"), "cuda", "cuda"
    except Exception as exc:
        fallback = cuda_fallback_backend(cpu or cpu_info())
        log.warning(
            "encoder cannot run on CUDA: falling back to the CPU (slower; fix the GPU or set "
            "DASAN_KB_DENSE_BACKEND)",
            extra={
                "event": "encoder_cuda_fallback",
                "requested": "cuda",
                "backend": fallback,
                "device": "cpu",
                "error": repr(exc)[:300],
            },
        )
        return load(fallback), fallback, "cpu"


def load_sentence_model(model_path: Path, backend: str) -> SentenceTransformer:
    """EmbeddingGemma as one concrete backend (``cuda``, ``bf16``, ``torch``, ``int8``, ``onnx``, ``onnx-fp32``).

    ``onnx``/``onnx-fp32``: the export ``dasan models onnx`` made next to the model folder
    (:mod:`assist.knowledge.onnx_encoder`; int8 for this CPU's kernels, or fp32), on ONNX Runtime with
    the threads torch was given."""
    import torch
    from sentence_transformers import SentenceTransformer

    if backend in ("onnx", "onnx-fp32"):
        from .onnx_encoder import FP32_FILE, OnnxSentenceModel, int8_file, int8_variant, onnx_dir

        file_name = FP32_FILE if backend == "onnx-fp32" else int8_file(int8_variant())
        # duck-typed: the SentenceTransformer calls the Encoder makes
        return OnnxSentenceModel(onnx_dir(model_path), file_name, threads=torch.get_num_threads())
    if backend in ("bf16", "cuda"):
        model = SentenceTransformer(
            str(model_path),
            device="cuda" if backend == "cuda" else "cpu",
            local_files_only=True,
            model_kwargs={"torch_dtype": torch.bfloat16},
        )
        model.eval()
        return model
    model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    model.eval()
    if backend == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
            )
    return model


class DenseModelMissing(RuntimeError):
    """The embedding model folder is not there (run ``dasan models install``)."""


def model_fingerprint(model_path: Path) -> str:
    """Identity of the model weights (size and name of every file; cheap, no hashing of 1.2 GB)."""
    h = hashlib.sha256()
    for p in sorted(model_path.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            h.update(f"{p.relative_to(model_path)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


class Encoder:
    """Query and passage embedding with one backend; thread-safe (one lock around the model)."""

    def __init__(
        self,
        model_path: Path,
        backend: str = "int8",  # concrete: resolve "auto" with KnowledgeSettings.resolved()
        max_seq_length: int = 160,
        query_max_length: int = 64,
        threads: int = 2,
        cuda: Callable[[], tuple[bool, str]] = cuda_usable,  # the CUDA probe (a test passes its own)
        query_cache: int = 0,  # query vectors kept (KnowledgeSettings.query_cache; 0: no cache)
        small_batch_backend: str | None = None,  # another fp32-equivalent backend for small query batches
        small_batch_max: int = 0,  # query batches of at most this many texts go to it
    ) -> None:
        if not (Path(model_path) / "modules.json").is_file():
            raise DenseModelMissing(
                f"embedding model not found at {model_path}: run `dasan models install` "
                "(or assist.knowledge.ensure_embedding_model())"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch

        backend = resolve_backend(backend, cuda)
        torch.set_num_threads(threads)
        self.requested_backend = backend  # what the index is keyed by (resolved at start)
        self.max_seq_length = max_seq_length
        self._query_max_length = query_max_length
        self._lock = threading.Lock()
        t0 = time.perf_counter()
        model, backend, device = load_with_cuda_fallback(
            backend, lambda b: load_sentence_model(model_path, b)
        )
        self.backend = backend
        self.device = device
        self.model = model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim() or 768)
        self.query_prompt = model.prompts.get("query", "task: search result | query: ")
        self.load_seconds = time.perf_counter() - t0
        log.info(
            "encoder loaded",
            extra={
                "backend": backend,
                "device": device,
                "threads": threads,
                "seconds": round(self.load_seconds, 2),
            },
        )
        # a second model for small query batches (one counselor's search, one card): ONNX Runtime's
        # fp32 answers one short query in half bf16's time on CPUs whose bf16 is AVX512-BF16, not AMX,
        # while bf16 wins from about four texts a batch (docs/knowledge.md, "Query encoder")
        self.small_model: Any = None
        self.small_backend: str | None = None
        self.small_batch_max = 0
        if small_batch_backend and small_batch_max > 0 and small_batch_backend != backend and device == "cpu":
            t1 = time.perf_counter()
            self.small_model = load_sentence_model(model_path, small_batch_backend)
            self.small_backend = small_batch_backend
            self.small_batch_max = small_batch_max
            log.info(
                "small query batches on a second backend",
                extra={
                    "backend": small_batch_backend,
                    "at_most": small_batch_max,
                    "seconds": round(time.perf_counter() - t1, 2),
                },
            )
        self.small_batches = 0
        self.fingerprint = f"{model_fingerprint(Path(model_path))}-{backend}"
        # what the model was asked for queries: batches and texts (a summary's share is read off these)
        self.query_batches = 0
        self.query_texts = 0
        # keyed by the text the model sees and what makes its vector: weights, backend, token cap
        self.query_cache = QueryVectorCache(query_cache, self._query_key())

    def _query_key(self) -> str:
        return f"{self.fingerprint}-q{self._query_max_length}"

    @property
    def query_fingerprint(self) -> str:
        """What makes a query's vector besides its text: weights, backend, token cap and the query
        prompt (vectors stored for later, like the question memory's, are keyed by it)."""
        prompt = hashlib.sha256(self.query_prompt.encode()).hexdigest()[:8]
        return f"{self._query_key()}-p{prompt}"

    @property
    def query_max_length(self) -> int:
        return self._query_max_length

    @query_max_length.setter
    def query_max_length(self, cap: int) -> None:
        """A new query token cap (an evaluation sweeps it): vectors cached at another cap no longer match."""
        self._query_max_length = cap
        self.query_cache.fingerprint = self._query_key()

    @classmethod
    def for_settings(cls, settings: KnowledgeSettings) -> Encoder:
        """The encoder a ``KnowledgeSettings`` describes (resolve ``auto`` first: ``settings.resolved()``)."""
        return cls(
            settings.embedding_model_path,
            settings.dense_backend,
            settings.max_seq_length,
            settings.query_max_length,
            settings.threads,
            query_cache=settings.query_cache,
        )

    @classmethod
    def for_queries(cls, settings: KnowledgeSettings) -> Encoder:
        """The query encoder of an index built with ``settings`` (resolved):
        :meth:`KnowledgeSettings.query_encoders` — one backend, or the index's backend with ONNX fp32
        for small batches (every choice gives vectors that match the index's)."""
        backend, small = settings.query_encoders()
        if backend == settings.dense_backend and small is None:
            return cls.for_settings(settings)
        log.info(
            "query encoder",
            extra={
                "backend": backend,
                "small_batches": small,
                "index_backend": settings.dense_backend,
                "setting": settings.query_backend,
            },
        )
        return cls(
            settings.embedding_model_path,
            backend,
            settings.max_seq_length,
            settings.query_max_length,
            settings.threads,
            query_cache=settings.query_cache,
            small_batch_backend=small,
            small_batch_max=settings.query_small_batch if small else 0,
        )

    @property
    def query_backends(self) -> str:
        """What embeds queries, for reports: ``bf16``, or ``onnx-fp32 (≤ 3 a batch) + bf16``."""
        if self.small_backend is None:
            return self.backend
        return f"{self.small_backend} (≤ {self.small_batch_max} a batch) + {self.backend}"

    def _encode(
        self, texts: list[str], cap: int, batch_size: int, progress: bool = False, model: Any = None
    ) -> np.ndarray:
        """``texts`` through ``model.encode`` (default: the main model; the small-batch one for small
        query batches) at token cap ``cap``, as unit float32 rows."""
        import torch

        model = self.model if model is None else model
        with self._lock, torch.inference_mode():
            model.max_seq_length = cap
            vecs = model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_tensor=True,
                show_progress_bar=progress,
            )
        return _unit_float32(vecs)

    def token_lengths(self, texts: list[str]) -> list[int]:
        """Tokens of each text, untruncated (what a cap would cut), from the model's own tokenizer."""
        enc = self.model.tokenizer(texts, add_special_tokens=True, truncation=False)
        return [len(ids) for ids in enc["input_ids"]]

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """Query vectors, one row per query: those in the query cache reused, the others embedded in
        one batch (and cached)."""
        texts = [self.query_prompt + q for q in queries]
        return self.query_cache.encode(texts, self._embed_queries, self.dim)

    def cached_query(self, query: str) -> np.ndarray | None:
        """The cached vector of one query, if the cache holds it (no model call)."""
        return self.query_cache.get(self.query_prompt + query)

    def _embed_queries(self, texts: list[str]) -> np.ndarray:
        """One batch of query texts through the model's modules directly: the tokenisation, modules
        and normalisation of ``SentenceTransformer.encode``, without its per-call loop (length sort,
        mode switch, progress bar and stacking; a query batch is one batch)."""
        import torch
        from sentence_transformers.util import batch_to_device

        small = self.small_model is not None and len(texts) <= self.small_batch_max
        with self._lock:
            self.query_batches += 1
            self.query_texts += len(texts)
            self.small_batches += small
        if small or not hasattr(self.model, "preprocess"):  # ONNX Runtime models: their own encode
            return self._encode(
                texts,
                self.query_max_length,
                batch_size=max(1, len(texts)),
                model=self.small_model if small else None,
            )
        with self._lock, torch.inference_mode():
            self.model.max_seq_length = self.query_max_length
            features = batch_to_device(self.model.preprocess(texts), self.model.device)
            vecs = torch.nn.functional.normalize(self.model(features)["sentence_embedding"], p=2, dim=1)
        return _unit_float32(vecs)

    def encode_documents(self, texts: list[str], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Embed passage texts (already in document format). sentence-transformers sorts by length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode(texts, self.max_seq_length, batch_size=batch_size, progress=progress)


def _unit_float32(vecs: Any) -> np.ndarray:
    """A model's output tensor as unit float32 rows: normalised again in float32 (a bf16 model
    normalises in bf16, norms off by up to 0.5 %)."""
    out = np.ascontiguousarray(vecs.float().cpu().numpy(), dtype=np.float32)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def document_text(title: str, text: str, with_title: bool = True) -> str:
    return f"title: {title if with_title and title else 'none'} | text: {text}"


class ExactIndex:
    """Exact inner product over a normalised float32 matrix (swap in an ANN index with the same API)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)

    def scores(self, query_vecs: np.ndarray) -> np.ndarray:
        """(n_queries, n_passages) cosine scores."""
        return query_vecs @ self.matrix.T


class MicroBatcher:
    """Coalesce concurrent single-query calls into one model call.

    A caller's query waits at most ``window_ms`` for others to join, then one batch of at most
    ``max_batch`` queries is embedded; every caller gets its own row back.
    """

    def __init__(self, fn: Callable[[list[str]], np.ndarray], window_ms: float = 4.0, max_batch: int = 32):
        self._fn = fn
        self._window = window_ms / 1000.0
        self._max = max_batch
        self._q: queue.Queue[tuple[str, Future[np.ndarray]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="kb-microbatch", daemon=True)
        self._thread.start()

    def submit(self, text: str) -> np.ndarray:
        fut: Future[np.ndarray] = Future()
        self._q.put((text, fut))
        return fut.result()

    def _run(self) -> None:
        while True:
            batch = [self._q.get()]
            deadline = time.perf_counter() + self._window
            while len(batch) < self._max:
                remaining = deadline - time.perf_counter()
                try:
                    batch.append(
                        self._q.get(timeout=max(0.0, remaining)) if remaining > 0 else self._q.get_nowait()
                    )
                except queue.Empty:
                    break
            try:
                vecs = self._fn([t for t, _ in batch])
                for i, (_, fut) in enumerate(batch):
                    fut.set_result(vecs[i])
            except Exception as exc:  # delivered to every waiting caller
                for _, fut in batch:
                    fut.set_exception(exc)
