"""Audio plumbing: G.711 decoding (numpy tables; ``audioop`` is gone in Python 3.13),
PCM16 conversion, de-interleaving and resampling to Whisper's 16 kHz."""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

from streaming.events import Codec

TARGET_RATE = 16_000


def _ulaw_table() -> np.ndarray:
    # ITU-T G.711 μ-law: bytes are stored inverted; sign bit, 3-bit exponent, 4-bit mantissa.
    u = ~np.arange(256, dtype=np.uint8)
    u = u.astype(np.int32)
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    # ITU-T G.711 A-law: even bits inverted (XOR 0x55); sign bit set means positive.
    a = (np.arange(256, dtype=np.int32) ^ 0x55) & 0xFF
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


ULAW_TO_PCM16: np.ndarray = _ulaw_table()
ALAW_TO_PCM16: np.ndarray = _alaw_table()


def bytes_per_sample(codec: Codec) -> int:
    return 2 if codec == Codec.pcm_s16le else 1


def decode_pcm16(data: bytes, codec: Codec) -> np.ndarray:
    """Encoded bytes → int16 samples (interleaved channels stay interleaved)."""
    if codec == Codec.pcm_s16le:
        if len(data) % 2:
            raise ValueError("pcm_s16le data has an odd number of bytes")
        return np.frombuffer(data, dtype="<i2").astype(np.int16)
    raw = np.frombuffer(data, dtype=np.uint8)
    if codec == Codec.mulaw:
        return ULAW_TO_PCM16[raw]
    if codec == Codec.alaw:
        return ALAW_TO_PCM16[raw]
    raise ValueError(f"unknown codec {codec!r}")


_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def encode_mulaw(pcm: np.ndarray) -> bytes:
    """int16 → μ-law bytes (G.711, bit-exact with the CCITT reference coder)."""
    x = pcm.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + 0x21
    seg = np.searchsorted(_SEG_UEND, mag)
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return ((uval ^ mask) & 0xFF).astype(np.uint8).tobytes()


def encode_alaw(pcm: np.ndarray) -> bytes:
    """int16 → A-law bytes (G.711, bit-exact with the CCITT reference coder)."""
    x = pcm.astype(np.int32) >> 3
    mask = np.where(x >= 0, 0xD5, 0x55)
    mag = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(_SEG_AEND, mag)
    aval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> np.where(seg < 2, 1, np.minimum(seg, 7))) & 0x0F))
    return ((aval ^ mask) & 0xFF).astype(np.uint8).tobytes()


def to_float32(pcm: np.ndarray) -> np.ndarray:
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def deinterleave(samples: np.ndarray, channels: int) -> list[np.ndarray]:
    """Interleaved samples (c0 c1 c0 c1 …) → one array per channel."""
    if channels == 1:
        return [samples]
    if len(samples) % channels:
        raise ValueError(f"{len(samples)} samples is not a whole number of {channels}-channel frames")
    return [np.ascontiguousarray(samples[i::channels]) for i in range(channels)]


def resample_to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """float32 mono at ``rate`` → float32 mono at 16 kHz (polyphase, scipy)."""
    if rate == TARGET_RATE:
        return x.astype(np.float32, copy=False)
    g = gcd(rate, TARGET_RATE)
    return resample_poly(x, TARGET_RATE // g, rate // g).astype(np.float32)


class StreamResampler:
    """Chunk-wise resampling without seams: keeps a few input samples of history and emits the
    output samples that are complete, so concatenated chunks equal one offline resample up to
    the filter's edge effects (a few ms at the very end)."""

    def __init__(self, rate: int, history: int = 64) -> None:
        self.rate = rate
        g = gcd(rate, TARGET_RATE)
        self.up, self.down = TARGET_RATE // g, rate // g
        self.history = history if rate != TARGET_RATE else 0
        self._tail = np.zeros(0, dtype=np.float32)
        self._in_total = 0
        self._out_total = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.rate == TARGET_RATE:
            return x.astype(np.float32, copy=False)
        buf = np.concatenate([self._tail, x.astype(np.float32)])
        start_in = self._in_total - len(self._tail)
        self._in_total += len(x)
        y = resample_poly(buf, self.up, self.down).astype(np.float32)
        # Output sample k of this block is global sample start_out + k.
        start_out = start_in * self.up // self.down
        # Keep only samples whose filter support lies inside the buffer minus the history margin.
        safe_end_in = self._in_total - self.history // 2
        safe_end_out = safe_end_in * self.up // self.down
        lo = self._out_total - start_out
        hi = safe_end_out - start_out
        out = y[max(lo, 0) : max(hi, 0)]
        self._out_total += len(out)
        self._tail = buf[-self.history :] if self.history else np.zeros(0, dtype=np.float32)
        return out

    def flush(self) -> np.ndarray:
        if self.rate == TARGET_RATE or not len(self._tail):
            return np.zeros(0, dtype=np.float32)
        start_in = self._in_total - len(self._tail)
        y = resample_poly(self._tail, self.up, self.down).astype(np.float32)
        start_out = start_in * self.up // self.down
        total_out = self._in_total * self.up // self.down
        out = y[self._out_total - start_out : total_out - start_out]
        self._out_total += len(out)
        return out
