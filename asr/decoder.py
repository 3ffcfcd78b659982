"""Batched Whisper decoding of many streams' windows in one forward pass (CPU and GPU alike).

Every pending window (≤ ``max_segment_s`` of audio, one per stream) becomes a log-mel matrix;
windows with the same number of frames go through one CTranslate2 ``encode`` and one
``generate`` call, with the language fixed (no detection) and no timestamps (segment times come
from the VAD). Finals use beam search, partials greedy decoding, so a batch is split by beam size
and by encoder length. Windows are never padded to a longer batch-mate: the encoder sees the
padding, and a final's text then depended on which other streams happened to be due at the same
moment, i.e. on load (measured: 2 of 6 audio-dev utterances decoded differently beside a 14 s
window). Batched with windows of its own length, a window decodes exactly as it does alone.

The encoder runs on ``max(min_context_s, window + 1 s)`` of audio rather than Whisper's fixed
30 s (CTranslate2 accepts shorter inputs): for short windows this cuts encoder time about four
times on CPU with little accuracy cost (see docs/asr.md). ``min_context_s = 30`` restores the
standard behaviour.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .hardware import Placement
from .options import DecoderOptions
from .types import DecodeRequest, DecodeResult

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from .settings import AsrSettings

log = logging.getLogger("dasan.asr.decoder")

FRAMES_PER_S = 100
MAX_FRAMES = 3000


class WhisperDecoder:
    """Decodes batches of :class:`DecodeRequest` with one loaded faster-whisper model."""

    def __init__(
        self,
        model: WhisperModel,
        model_name: str,
        options: DecoderOptions,
        placement: Placement | None = None,
    ) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model = model
        self.model_name = model_name
        self.placement = placement  # device, compute type, threads and why (None: built by hand)
        self.opts = options
        self.tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=options.language
        )
        prev = self.tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        self.prompt = model.get_prompt(
            self.tokenizer, prev, without_timestamps=True, hotwords=options.hotwords
        )
        self.suppress_tokens = get_suppressed_tokens(self.tokenizer, [-1])
        self.max_length = min(model.max_length, len(self.prompt) + options.max_new_tokens)
        self._lock = threading.Lock()
        self.decode_seconds = 0.0
        self.audio_seconds = 0.0
        self.batches = 0
        self.windows = 0

    @classmethod
    def load(cls, settings: AsrSettings) -> WhisperDecoder:
        """The configured model, loaded where :mod:`asr.hardware` chooses (the edge: reads settings)."""
        from .weights import load_whisper

        model, name, placement = load_whisper(settings)
        return cls(model, name, settings.decoder_options(), placement)

    def _frames(self, samples: int) -> int:
        """Encoder input length (mel frames) of a window: ``max(min_context_s, window + 1 s)``."""
        need = max(self.opts.min_context_s, samples / self.model.feature_extractor.sampling_rate + 1.0)
        return min(MAX_FRAMES, int(math.ceil(need)) * FRAMES_PER_S)

    def _features(self, audio: np.ndarray) -> np.ndarray:
        fe = self.model.feature_extractor
        frames = self._frames(len(audio))
        audio = audio[: MAX_FRAMES * fe.hop_length]
        pad = frames * fe.hop_length - len(audio)
        feats = fe(audio, padding=max(pad, 0) + fe.hop_length)
        return feats[:, :frames]

    def decode(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        """Decode windows (any streams), batched by beam size and encoder length; results in request order."""
        out: list[DecodeResult | None] = [None] * len(requests)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(requests):
            beam = self.opts.beam_size if r.final else self.opts.partial_beam_size
            groups.setdefault((beam, self._frames(len(r.audio))), []).append(i)
        with self._lock:
            t0 = time.perf_counter()
            for (beam, _frames), idx in groups.items():
                for k in range(0, len(idx), self.opts.batch_size):
                    part = idx[k : k + self.opts.batch_size]
                    for i, res in zip(
                        part, self._decode_batch([requests[i] for i in part], beam), strict=True
                    ):
                        out[i] = res
            self.decode_seconds += time.perf_counter() - t0
            self.audio_seconds += sum(len(r.audio) for r in requests) / 16_000
            self.windows += len(requests)
        return [r for r in out if r is not None]

    def _decode_batch(self, reqs: list[DecodeRequest], beam: int) -> list[DecodeResult]:
        batch = np.stack([self._features(r.audio) for r in reqs])  # one length: see decode()
        encoder_output = self.model.encode(batch)
        kwargs: dict[str, Any] = {
            "beam_size": beam,
            "max_length": self.max_length,
            "return_scores": True,
            "return_no_speech_prob": True,
            "suppress_blank": True,
            "suppress_tokens": self.suppress_tokens,
            "repetition_penalty": 1.0,
            "no_repeat_ngram_size": 0,
            "length_penalty": 1.0,
        }
        results = self.model.model.generate(encoder_output, [list(self.prompt) for _ in reqs], **kwargs)
        self.batches += 1
        out = []
        for res in results:
            tokens = [t for t in res.sequences_ids[0] if t < self.tokenizer.eot]
            seq_len = len(res.sequences_ids[0])
            avg_logprob = res.scores[0] * (seq_len**1.0) / (seq_len + 1)
            out.append(
                DecodeResult(
                    text=self.tokenizer.decode(tokens).strip(),
                    avg_logprob=float(avg_logprob),
                    no_speech_prob=float(res.no_speech_prob),
                    model=self.model_name,
                )
            )
        return out
