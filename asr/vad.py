"""Streaming voice activity detection with the Silero VAD model that faster-whisper ships.

``faster_whisper.vad.SileroVADModel`` scores a whole array at once; :class:`StreamingVad` feeds
it chunk by chunk, carrying the LSTM state and the 64-sample context across calls, so live audio
gets the same per-window speech probabilities as an offline pass over the same samples.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
WINDOW = 512  # samples at 16 kHz = 32 ms
CONTEXT = 64
WINDOW_S = WINDOW / SAMPLE_RATE

_lock = threading.Lock()


def _session() -> Any:
    from faster_whisper.vad import get_vad_model

    with _lock:
        return get_vad_model().session


class StreamingVad:
    """Speech probability per 32 ms window of 16 kHz audio, fed incrementally."""

    def __init__(self) -> None:
        self._session = _session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._rest = np.zeros(0, dtype=np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Append samples; return the probabilities of the windows completed by them."""
        buf = np.concatenate([self._rest, x.astype(np.float32, copy=False)])
        n = len(buf) // WINDOW
        self._rest = buf[n * WINDOW :]
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        windows = buf[: n * WINDOW].reshape(n, WINDOW)
        contexts = np.empty((n, CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        if n > 1:
            contexts[1:] = windows[:-1, -CONTEXT:]
        self._context = windows[-1, -CONTEXT:].copy()
        batch = np.concatenate([contexts, windows], axis=1)
        out, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(out, dtype=np.float32).reshape(-1)
