"""A first index build that fits a time budget on any machine.

Embedding the corpus is the slow part of a build, and its speed differs 3-5x between CPUs (bf16 in
hardware with AVX512-BF16/AMX vs int8 or fp32 on an AVX2-only CPU). Rather than promise a time
that only one CPU keeps, the first build measures this machine: it embeds one batch of the longest
articles, derives a throughput in tokens per second, and projects the whole corpus from the exact
token count of every article at each cap (articles shorter than the cap cost only their length).
When the configured cap does not fit the budget, the build uses the largest shorter cap that does
and marks the index *provisional*; the full build replaces it later (``dasan kb build``).

The projection counts tokens linearly; attention grows faster than linearly with length, so a
shorter cap costs a little less than projected (the estimate errs on the safe side).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import numpy as np

from .settings import KnowledgeSettings

log = logging.getLogger(__name__)

# caps tried below the configured one, longest first
CAPS: tuple[int, ...] = (192, 160, 128, 96, 64, 48, 32)
CALIBRATION_UNITS = 16


class _Encoder(Protocol):
    max_seq_length: int

    def token_lengths(self, texts: list[str]) -> list[int]: ...

    def encode_documents(
        self, texts: list[str], batch_size: int = 16, progress: bool = False
    ) -> np.ndarray: ...


def tokens_at(lengths: np.ndarray, cap: int) -> int:
    return int(np.minimum(lengths, cap).sum())


def plan_token_cap(
    encoder: _Encoder, doc_texts: list[str], settings: KnowledgeSettings, budget_s: float
) -> tuple[int, dict[str, Any], tuple[list[int], np.ndarray] | None]:
    """The token cap to embed ``doc_texts`` at within ``budget_s`` on this machine.

    Returns ``(cap, plan, calibration)``: ``plan`` says what was measured and projected (for the log
    and the index manifest); ``calibration`` holds the unit indexes and vectors of the timed batch,
    embedded at the configured cap, so a build that keeps that cap does not embed them twice."""
    full = settings.max_seq_length
    lengths = np.asarray(encoder.token_lengths(doc_texts), dtype=np.int64)
    # time the longest units: a throughput measured on full-length batches is the pessimistic one
    sample = [int(i) for i in np.argsort(-lengths)[:CALIBRATION_UNITS]]
    t0 = time.perf_counter()
    vecs = encoder.encode_documents([doc_texts[i] for i in sample], batch_size=len(sample))
    seconds = time.perf_counter() - t0
    per_token_s = seconds / max(1, tokens_at(lengths[sample], full))
    remaining = np.delete(lengths, sample)
    projected = {full: tokens_at(remaining, full) * per_token_s}
    for cap in CAPS:
        if cap < full:
            projected[cap] = tokens_at(lengths, cap) * per_token_s
    fitting = [c for c in sorted(projected, reverse=True) if projected[c] <= budget_s]
    cap = fitting[0] if fitting else min(projected)
    plan = {
        "budget_s": round(budget_s, 1),
        "calibration_units": len(sample),
        "calibration_s": round(seconds, 2),
        "tokens_per_s": round(1 / per_token_s, 1),
        "projected_s": {str(c): round(v, 1) for c, v in sorted(projected.items(), reverse=True)},
        "max_seq_length": cap,
    }
    if not fitting:
        log.warning("no token cap fits the first-build budget: using the shortest", extra=plan)
    log.info("first-build plan", extra=plan)
    return cap, plan, (sample, vecs) if cap == full else None
