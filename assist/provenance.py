"""Provenance of what assist publishes: the index, encoder, generator and settings that made it.

Computed once per :class:`assist.assistant.Assistant` from the knowledge base object it holds (its
index key, its records, its settings and encoder), so a replay or shadow run over another index
version or other settings is told apart from production on every card.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from streaming.events import Provenance

from .settings import AssistSettings

# Settings that change nothing a counselor sees (ports, group ids, secrets, batching, paths).
_ASSIST_NOT_OUTPUT = {
    "llm_api_key",
    "llm_timeout_s",
    "group_id",
    "rebuild_lookback_s",
    "fetch_max_wait_ms",
    "poll_timeout_ms",
    "batch_max",
    "batch_time_share",
    "health_host",
    "health_port",
    "call_idle_timeout_s",
    "max_failures",
    "shed_context_after_ms",  # load shedding: each shed card says so itself (Suggestion.shed)
}
_KB_NOT_OUTPUT = {
    "index_dir",
    "corpus_paths",
    "embedding_model_path",
    "first_build_budget_s",
    "embed_batch_size",
    "threads",
    "batch_window_ms",
    "batch_max",
    "memory_site_path",  # where the site's memory lies; its contents count (site_memory_hash)
}


def _digest(*parts: str, n: int = 16) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()[:n]


def settings_hash(settings: AssistSettings, kb_settings: Any | None) -> str:
    """Hash of the assist settings and the knowledge base's retrieval settings that change output."""
    a = settings.model_dump(mode="json", exclude=_ASSIST_NOT_OUTPUT)
    if settings.generator != "llm":
        a = {k: v for k, v in a.items() if not k.startswith("llm_")}
    k = kb_settings.model_dump(mode="json", exclude=_KB_NOT_OUTPUT) if kb_settings is not None else {}
    return _digest(
        json.dumps(a, sort_keys=True),
        json.dumps(k, sort_keys=True),
        rerank_models_hash(settings),
        site_memory_hash(kb_settings),
    )


def site_memory_hash(kb_settings: Any | None) -> str:
    """The site's question memory (``dasan kb memory add``): grown, it changes what is shown."""
    path = getattr(kb_settings, "memory_site_path", None)
    if path is None or not Path(path).exists():
        return "none"
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def rerank_models_hash(settings: AssistSettings) -> str:
    """The learned second stage's files (both rankers, the out-of-scope models, the thresholds, the
    question memory): a retrained model or a grown memory changes what is shown as much as a setting
    does."""
    if not settings.rerank:
        return "off"
    from .knowledge.rerank import CALL_MODEL_FILE, MEMORY_FILE, MODEL_PATH, MODEL_T_PATH

    h = hashlib.sha256()
    for name in (
        MODEL_PATH.name,
        MODEL_T_PATH.name,
        "abstain_model.txt",
        "abstain_threshold.json",
        CALL_MODEL_FILE,
        MEMORY_FILE,
    ):
        path = MODEL_PATH.with_name(name)
        h.update(path.read_bytes() if path.exists() else b"missing")
    return h.hexdigest()[:16]


def corpus_version(kb: Any) -> str | None:
    """The corpus version of the knowledge base: its own ``corpus_version`` when it has one, else the
    hash of its records (what the index key covers)."""
    own = getattr(kb, "corpus_version", None)
    if isinstance(own, str) and own:
        return own[:64]
    records = getattr(kb, "records", None)
    if not records:
        return None
    from .knowledge.corpus import record_hash

    return _digest(*sorted(record_hash(r) for r in records))


def encoder_identity(kb: Any) -> tuple[str | None, str | None]:
    """(model and backend, weights fingerprint) of the knowledge base's encoder; (None, None) without one."""
    s = getattr(kb, "settings", None)
    if s is None or getattr(kb, "encoder", None) is None or not getattr(s, "dense_enabled", False):
        return None, None
    from .knowledge.dense import model_fingerprint

    path = Path(s.embedding_model_path)  # a str when the settings came from an index manifest
    try:
        fp = model_fingerprint(path)
    except OSError:
        fp = None
    name = f"{path.name}/{s.dense_backend}/{s.max_seq_length}tok"
    query = getattr(kb.encoder, "query_backends", s.dense_backend)
    if isinstance(query, str) and query != s.dense_backend:  # queries by fp32-equivalent other backends
        name += f"/q:{query}"
    return name, fp


def provenance_of(kb: Any, settings: AssistSettings, variant: str = "production") -> Provenance:
    encoder, encoder_hash = encoder_identity(kb)
    return Provenance(
        index_key=(str(getattr(kb, "key", "")) or None),
        corpus_version=corpus_version(kb),
        encoder=encoder,
        encoder_hash=encoder_hash,
        generator=settings.generator,
        generator_model=settings.llm_model if settings.generator == "llm" else None,
        settings_hash=settings_hash(settings, getattr(kb, "settings", None)),
        variant=variant,
    )
