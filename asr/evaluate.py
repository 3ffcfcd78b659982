"""Korean-aware CER of the streaming path on a manifest of recordings (audio-dev format)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .audio import ULAW_TO_PCM16, encode_mulaw, resample_to_16k
from .offline import read_audio, transcribe_array
from .options import PolicyOptions
from .scheduler import Decode

_DIGITS = "영일이삼사오육칠팔구"
_SMALL = {1: "", 10: "십", 100: "백", 1000: "천"}
_BIG = [(10**8, "억"), (10**4, "만")]


def _under_10000(n: int) -> str:
    out = []
    for unit in (1000, 100, 10, 1):
        d = n // unit % 10
        if d:
            out.append(("" if d == 1 and unit > 1 else _DIGITS[d]) + _SMALL[unit])
    return "".join(out)


def sino_korean(n: int) -> str:
    """123 → 백이십삼 (how Zeroth transcripts spell numbers)."""
    if n == 0:
        return "영"
    out = []
    for value, name in _BIG:
        if n >= value:
            head = n // value
            out.append(("" if head == 1 and value == 10**4 else _under_10000(head)) + name)
            n %= value
    out.append(_under_10000(n))
    return "".join(out)


def normalize(text: str) -> str:
    """Hangul-only, no spaces or punctuation, numerals spelled out (Sino-Korean)."""
    text = re.sub(r"\d+", lambda m: sino_korean(int(m.group())), text)
    return re.sub(r"[^0-9A-Za-z가-힣]", "", text).lower()


def cer(refs: Iterable[str], hyps: Iterable[str]) -> float:
    """Corpus CER (edit distance / reference characters) ignoring spacing, punctuation and number
    format: ``kocer`` when installed (dev dependency), else jiwer on :func:`normalize`d text."""
    refs, hyps = list(refs), list(hyps)
    try:
        import kocer
    except ImportError:
        kocer = None
    if kocer is not None:
        return float(kocer.cer(refs, hyps))
    import jiwer

    r = [" ".join(normalize(x)) or "∅" for x in refs]
    h = [" ".join(normalize(x)) for x in hyps]
    return float(jiwer.wer(r, h))


def telephone(audio: np.ndarray, rate: int, band: str) -> tuple[np.ndarray, int]:
    """16 kHz → 8 kHz (polyphase), optionally through G.711 μ-law; returned at 8 kHz."""
    from math import gcd

    from scipy.signal import resample_poly

    if band == "16k":
        return audio, rate
    g = gcd(rate, 8000)
    x = resample_poly(audio, 8000 // g, rate // g).astype(np.float32)
    if band == "mulaw":
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
        x = ULAW_TO_PCM16[np.frombuffer(encode_mulaw(pcm), np.uint8)].astype(np.float32) / 32768
    return x, 8000


def load_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluate_manifest(
    manifest: Path,
    decode: Decode,
    options: PolicyOptions,
    bands: Iterable[str] = ("16k",),
    limit: int | None = None,
) -> dict[str, dict]:
    rows = load_manifest(manifest)[:limit]
    out: dict[str, dict] = {}
    for band in bands:
        refs, hyps = [], []
        for row in rows:
            audio, rate = read_audio(manifest.parent / row["audio"])
            x, r = telephone(audio[:, 0], rate, band)
            res = transcribe_array(x, r, decode, options, partials=False)
            refs.append(row["text"])
            hyps.append(" ".join(t.text for t in res.values()))
        out[band] = {"cer": cer(refs, hyps), "files": len(rows), "hyps": hyps, "refs": refs}
    return out


__all__ = ["cer", "evaluate_manifest", "normalize", "resample_to_16k", "sino_korean", "telephone"]
