"""Text guards on every decode: what Whisper produces on silence, noise or music is dropped.

Whisper's own silence rule (``no_speech_prob`` with a low log-probability), a floor on the average
log-probability, the compression ratio (repetition loops: collapsed, or dropped over non-speech),
repeated n-grams collapsed, known closing hallucinations ("시청해 주셔서 감사합니다", "구독",
"좋아요" …) removed, and text too long for the amount of speech dropped.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from .options import GuardOptions
from .types import DecodeResult

HALLUCINATION_PATTERNS = [
    r"시청\s*해\s*주셔서\s*감사(합니다|드립니다)[.!]*",
    r"구독\s*(과|와|하고|,)?\s*좋아요\s*(와|과|,)?\s*(알림\s*설정)?[^.!?]*[.!]*",
    r"좋아요\s*(와|과|,)?\s*구독[^.!?]*[.!]*",
    r"구독\s*(해|눌러)\s*주세요[.!]*",
    r"알림\s*설정[^.!?]*[.!]*",
    r"다음\s*(영상|시간)에서\s*(만나요|뵙겠습니다)[.!]*",
    r"[A-Z]{2,4}\s*뉴스\s*(?:[가-힣]{2,4}?입니다|[가-힣]{2,4})[.!]*",
    r"자막\s*(제공|제작)[^.!?]*[.!]*",
    r"^\s*(구독|좋아요)[.!]*\s*$",
]
_HALLUCINATION_RE = [re.compile(p) for p in HALLUCINATION_PATTERNS]
_WS = re.compile(r"\s+")


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def collapse_repeats(text: str, max_repeats: int = 2) -> str:
    """Collapse any word n-gram (n ≤ 6) repeated more than ``max_repeats`` times in a row."""
    words = text.split()
    changed = True
    while changed:
        changed = False
        for n in range(1, 7):
            i = 0
            out: list[str] = []
            while i < len(words):
                gram = words[i : i + n]
                j = i + n
                reps = 1
                while len(gram) == n and words[j : j + n] == gram:
                    reps += 1
                    j += n
                if reps > max_repeats:
                    out.extend(gram * max_repeats)
                    i = j
                    changed = True
                else:
                    out.append(words[i])
                    i += 1
            words = out
    # Character-level loops inside one "word" (Korean without spaces): 하하하하하… → 하하
    joined = " ".join(words)
    return re.sub(r"(.{1,8}?)\1{" + str(max_repeats) + r",}", r"\1" * max_repeats, joined)


def strip_hallucinations(text: str) -> str:
    for rx in _HALLUCINATION_RE:
        text = rx.sub(" ", text)
    return _WS.sub(" ", text).strip()


def guard_text(result: DecodeResult, speech_s: float, options: GuardOptions) -> tuple[str, float | None]:
    """Apply the hallucination guards; returns (text, confidence). Empty text means drop."""
    text = _WS.sub(" ", result.text).strip()
    if not text:
        return "", None
    if result.no_speech_prob > options.no_speech_threshold and result.avg_logprob < options.logprob_threshold:
        return "", None  # Whisper's own silence rule
    if result.avg_logprob < options.min_avg_logprob:
        return "", None  # the decoder itself does not believe it (music, noise)
    if compression_ratio(text) > options.compression_ratio_threshold:
        if result.no_speech_prob > 0.5:
            return "", None  # a repetition loop over audio the model thinks is not speech
        text = collapse_repeats(text)
        if compression_ratio(text) > options.compression_ratio_threshold:
            return "", None
    else:
        text = collapse_repeats(text, max_repeats=3)
    text = strip_hallucinations(text)
    if not re.search(r"[0-9A-Za-z가-힣]", text):
        return "", None
    # Korean speech runs at ~4–8 syllables a second; far more text than speech is a loop.
    syllables = len(re.findall(r"[0-9A-Za-z가-힣]", text))
    if syllables > 14 * max(speech_s, 0.3) + 8:
        return "", None
    confidence = float(min(1.0, max(0.0, np.exp(result.avg_logprob))))
    return text, confidence
