"""Options of the pure ASR core, as frozen dataclasses (the shape of faster-whisper's
``TranscriptionOptions`` and ``VadOptions``).

The policy, the text guards and the decoder take these, never :class:`~asr.settings.AsrSettings`:
they can be built and tested without the environment. ``AsrSettings`` (the edge: environment
variables, validation, descriptions) takes its defaults from here and builds them
(:meth:`~asr.settings.AsrSettings.policy_options`, :meth:`~asr.settings.AsrSettings.decoder_options`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GuardOptions:
    """When a decoded text is dropped or cleaned (:func:`asr.guards.guard_text`)."""

    no_speech_threshold: float = 0.6  # with avg_logprob below logprob_threshold: Whisper's silence rule
    logprob_threshold: float = -1.0
    min_avg_logprob: float = -1.8  # the decoder itself does not believe it (music, noise)
    compression_ratio_threshold: float = 2.4  # above: a repetition loop


@dataclass(frozen=True)
class PolicyOptions:
    """What to decode when, and what becomes final (:class:`asr.policy.StreamingPolicy`)."""

    vad_threshold: float = 0.5  # Silero speech probability that opens an utterance
    vad_neg_threshold: float = 0.35  # below it a window counts as silence
    vad_min_silence_ms: int = 500  # silence that closes an utterance
    vad_min_speech_ms: int = 250  # shorter bursts are not utterances
    vad_speech_pad_ms: int = 200  # audio kept before the speech onset
    speculative_final_ms: int = 250  # start the final decode after this much silence (0: at the end)
    max_segment_s: float = 15.0  # longer speech is cut at its quietest pause
    partial_interval_s: float = 1.0  # audio between partial decodes of an open utterance
    min_partial_audio_s: float = 0.6  # speech before the first partial
    partials: bool = True  # decode partials at all
    guards: GuardOptions = field(default_factory=GuardOptions)


@dataclass(frozen=True)
class DecoderOptions:
    """How a window is decoded (:class:`asr.decoder.WhisperDecoder`)."""

    language: str = "ko"  # fixed: no language detection
    beam_size: int = 5  # finals
    partial_beam_size: int = 1  # partials (greedy)
    initial_prompt: str | None = None
    hotwords: str | None = None
    min_context_s: float = 10.0  # shortest encoder input (30: Whisper's fixed window)
    max_new_tokens: int = 160
    batch_size: int = 8  # windows per forward pass
