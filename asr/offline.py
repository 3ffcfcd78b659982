"""Transcribe a recording through the live streaming path (policy + batcher), without Kafka.

Used by ``dasan transcribe``, the accuracy tests and the benchmarks: the audio is fed in small
chunks exactly as a live call would arrive, every due decode runs after each chunk
("computation-unaware" replay: the result does not depend on machine speed), and the final
segments are returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from streaming.events import Channel

from .audio import StreamResampler, resample_to_16k
from .options import PolicyOptions
from .policy import StreamingPolicy
from .scheduler import Decode, DecodeScheduler
from .settings import AsrSettings
from .types import SegmentUpdate

CHANNEL_ORDER = (Channel.caller, Channel.counselor)


@dataclass(frozen=True)
class Transcript:
    channel: str
    updates: list[SegmentUpdate]

    @property
    def finals(self) -> list[SegmentUpdate]:
        return [u for u in self.updates if u.is_final]

    @property
    def text(self) -> str:
        return " ".join(u.text for u in self.finals)


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """(float32 samples × channels, sample rate) of a WAV/FLAC file (soundfile)."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if data.shape[1] > 2:
        raise ValueError(f"{path}: {data.shape[1]} channels; expected mono or stereo (caller, counselor)")
    return data, int(rate)


def transcribe_channels(
    channels: dict[str, np.ndarray],
    rate: int,
    decode: Decode,
    options: PolicyOptions,
    *,
    batch_size: int = 8,
    chunk_s: float = 0.1,
    partials: bool | None = None,
    on_update: Callable[[str, SegmentUpdate], None] | None = None,
) -> dict[str, Transcript]:
    """Stream each channel (float32 at ``rate``) through policy + scheduler; all updates per channel.
    ``partials`` overrides ``options.partials``."""
    updates: dict[str, list[SegmentUpdate]] = {name: [] for name in channels}

    def _collect(key: str, upd: SegmentUpdate) -> None:
        updates[key].append(upd)
        if on_update:
            on_update(key, upd)

    if partials is not None:
        options = replace(options, partials=partials)
    sched = DecodeScheduler(decode, batch_size=batch_size, batch_window_ms=0, on_update=_collect)
    resamplers = {name: StreamResampler(rate) for name in channels}
    for name in channels:
        sched.add(name, StreamingPolicy(options, name))
    step = max(1, int(chunk_s * rate))
    n = max(len(x) for x in channels.values())
    for i in range(0, n, step):
        for name, x in channels.items():
            if i < len(x):
                sched.insert(name, resamplers[name].process(x[i : i + step]))
        sched.drain()
    for name in channels:
        tail = resamplers[name].flush()
        if len(tail):
            sched.insert(name, tail)
        sched.finish(name)
    sched.drain()
    return {name: Transcript(name, ups) for name, ups in updates.items()}


def transcribe_array(
    audio: np.ndarray, rate: int, decode: Decode, options: PolicyOptions, **kw: Any
) -> dict[str, Transcript]:
    """``audio``: float32, shape (n,) or (n, channels); ``kw``: :func:`transcribe_channels`' options."""
    if audio.ndim == 1:
        audio = audio[:, None]
    chans = {CHANNEL_ORDER[c].value: np.ascontiguousarray(audio[:, c]) for c in range(audio.shape[1])}
    return transcribe_channels(chans, rate, decode, options, **kw)


def offline_transcribe(model: Any, audio: np.ndarray, rate: int, settings: AsrSettings) -> str:
    """Plain faster-whisper ``transcribe`` (``model``: a ``WhisperModel``) of a mono array (the
    non-streaming baseline)."""
    x = resample_to_16k(audio.astype(np.float32), rate)
    segments, _ = model.transcribe(
        x,
        language=settings.language,
        beam_size=settings.beam_size,
        vad_filter=True,
        condition_on_previous_text=False,
        initial_prompt=settings.initial_prompt,
        hotwords=settings.hotwords,
        no_speech_threshold=settings.no_speech_threshold,
        log_prob_threshold=settings.logprob_threshold,
        compression_ratio_threshold=settings.compression_ratio_threshold,
        word_timestamps=settings.hallucination_silence_threshold is not None,
        hallucination_silence_threshold=settings.hallucination_silence_threshold,
    )
    return " ".join(s.text.strip() for s in segments)
