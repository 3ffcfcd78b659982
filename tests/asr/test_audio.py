"""G.711 decoding, channel splitting and resampling (no model)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from asr.audio import (
    ALAW_TO_PCM16,
    ULAW_TO_PCM16,
    StreamResampler,
    decode_pcm16,
    deinterleave,
    encode_alaw,
    encode_mulaw,
    resample_to_16k,
)
from asr.session import deinterleave_bytes
from streaming.events import Codec


def test_mulaw_reference_values() -> None:
    # ITU-T G.711 μ-law: 0xFF and 0x7F are the two zeros, 0x00 / 0x80 the extremes.
    assert ULAW_TO_PCM16[0xFF] == 0
    assert ULAW_TO_PCM16[0x7F] == 0
    assert ULAW_TO_PCM16[0x00] == -32124
    assert ULAW_TO_PCM16[0x80] == 32124
    assert ULAW_TO_PCM16[0xFE] == 8  # smallest positive step
    assert ULAW_TO_PCM16[0xEF] == 132  # segment 1, mantissa 0


def test_alaw_reference_values() -> None:
    assert ALAW_TO_PCM16[0xD5] == 8
    assert ALAW_TO_PCM16[0x55] == -8
    assert ALAW_TO_PCM16[0xAA] == 32256
    assert ALAW_TO_PCM16[0x2A] == -32256


@pytest.mark.parametrize("table", [ULAW_TO_PCM16, ALAW_TO_PCM16])
def test_tables_are_odd_symmetric_and_monotonic(table: np.ndarray) -> None:
    values = np.sort(table.astype(np.int32))
    assert len(np.unique(values)) >= 255  # μ-law has two zero codes
    assert values.min() == -values.max()


@pytest.mark.parametrize(("enc", "table"), [(encode_mulaw, ULAW_TO_PCM16), (encode_alaw, ALAW_TO_PCM16)])
def test_g711_roundtrip_error_is_within_quantisation(enc, table) -> None:
    x = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    y = table[np.frombuffer(enc(x), dtype=np.uint8)].astype(np.int32)
    err = np.abs(y - x.astype(np.int32))
    # Logarithmic quantiser: error grows with amplitude but stays under ~1/16 of it (+ small floor).
    assert np.all(err <= np.abs(x.astype(np.int32)) / 16 + 64)
    # Every code decodes back to itself.
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(
        np.frombuffer(enc(table[codes]), np.uint8)[table[codes] != 0], codes[table[codes] != 0]
    )


def test_g711_is_bit_exact_with_audioop() -> None:
    """The CCITT reference as Python shipped it until 3.13: all 256 codes decode, and all 65,536
    samples encode, exactly as ``audioop`` does (skipped where audioop is gone)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    assert np.array_equal(np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2"), ULAW_TO_PCM16)
    assert np.array_equal(np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"), ALAW_TO_PCM16)
    x = np.arange(-32768, 32768, dtype=np.int16)
    assert encode_mulaw(x) == audioop.lin2ulaw(x.astype("<i2").tobytes(), 2)
    assert encode_alaw(x) == audioop.lin2alaw(x.astype("<i2").tobytes(), 2)


def test_decode_pcm16_and_codecs() -> None:
    pcm = np.array([0, 1, -1, 32767, -32768], dtype="<i2")
    assert np.array_equal(decode_pcm16(pcm.tobytes(), Codec.pcm_s16le), pcm)
    with pytest.raises(ValueError, match="odd"):
        decode_pcm16(b"\x00\x01\x02", Codec.pcm_s16le)
    assert decode_pcm16(bytes([0xFF, 0x80]), Codec.mulaw).tolist() == [0, 32124]
    assert decode_pcm16(bytes([0xD5]), Codec.alaw).tolist() == [8]


def test_deinterleave_stereo() -> None:
    left = np.arange(0, 100, dtype=np.int16)
    right = -left
    inter = np.stack([left, right], axis=1).reshape(-1)
    a, b = deinterleave(inter, 2)
    assert np.array_equal(a, left) and np.array_equal(b, right)
    with pytest.raises(ValueError):
        deinterleave(inter[:-1], 2)
    assert deinterleave_bytes(inter.astype("<i2").tobytes(), 2, 1, 2) == right.astype("<i2").tobytes()
    assert deinterleave_bytes(bytes([1, 2, 3, 4]), 2, 0, 1) == bytes([1, 3])


@pytest.mark.parametrize("rate", [8000, 16000])
def test_stream_resampler_matches_offline(rate: int) -> None:
    t = np.arange(rate * 2) / rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1700 * t)).astype(np.float32)
    r = StreamResampler(rate)
    rng = np.random.default_rng(1)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 900))
        parts.append(r.process(x[i : i + n]))
        i += n
    parts.append(r.flush())
    y = np.concatenate(parts)
    ref = resample_to_16k(x, rate)
    assert len(y) == len(ref) == 32000
    assert np.abs(y[200:-200] - ref[200:-200]).max() < 1e-4
