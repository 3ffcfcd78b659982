"""What the streaming policy, the decode scheduler and the decoder hand each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DecodeRequest:
    """One window of audio to decode for one stream."""

    stream: str
    segment_id: str
    audio: np.ndarray
    final: bool
    revision: int
    start_s: float
    end_s: float
    speech_s: float
    speculative: bool = False  # a final decoded early, at the first pause; kept if the pause lasts


@dataclass(frozen=True)
class DecodeResult:
    text: str
    avg_logprob: float
    no_speech_prob: float
    model: str = ""


@dataclass(frozen=True)
class SegmentUpdate:
    """A partial (tentative) or final (never changes) segment of one stream."""

    segment_id: str
    start_s: float
    end_s: float
    text: str
    is_final: bool
    revision: int
    confidence: float | None
