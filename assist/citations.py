"""Citation check: does the passage a draft sentence cites actually support it?

Two signals, both required where available:

- **lexical**: the share of the sentence's content morphemes (nouns, stems, numbers) found in the
  cited passage, after removing what the counselor register adds (``따르다``, ``안``, the law's own name);
  every number in the sentence (``60일``, ``20%``) must appear in the passage;
- **embedding**: cosine of the sentence and the passage under the knowledge base's encoder (its
  document prompt on both sides), when the knowledge base has a dense side.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .text import clean_statute

# Morphemes the spoken register and citation phrasing add, which a passage need not contain.
REGISTER_WORDS = frozenset(
    [
        "따르",
        "하",
        "되",
        "있",
        "없",
        "않",
        "안",
        "수",
        "것",
        "경우",
        "등",
        "여기",
        "포함",
        "항목",
        "해당",
        "이",
        "그",
        "저",
        "드리",
        "말씀",
        "고객",
        "님",
        "주",
        "보",
        "시",
        "알",
        "수",
        "있",
        "이다",
    ]
)
_NUM = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class Support:
    supported: bool
    lexical: float
    embedding: float | None
    missing_numbers: tuple[str, ...] = ()


class CitationChecker:
    def __init__(
        self,
        content_morphemes: Callable[[str], list[str]],
        encode: Callable[[list[str]], np.ndarray] | None = None,
        lexical_min: float = 0.5,
        embedding_min: float = 0.55,
        strong_lexical: float = 0.85,
    ) -> None:
        self.content_morphemes = content_morphemes
        self.encode = encode
        self.lexical_min = lexical_min
        self.embedding_min = embedding_min
        self.strong_lexical = strong_lexical
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_kb(cls, kb: Any, lexical_min: float = 0.5, embedding_min: float = 0.55) -> CitationChecker:
        encoder = getattr(kb, "encoder", None)
        encode = None
        if encoder is not None and getattr(kb, "dense", None) is not None:

            def encode(texts: list[str]) -> np.ndarray:
                return np.asarray(encoder.encode_documents(texts), dtype=np.float32)

        return cls(kb.analyzer.content_morphemes, encode, lexical_min, embedding_min)

    def _passage_vec(self, key: str, text: str) -> np.ndarray | None:
        if self.encode is None:
            return None
        with self._lock:
            vec = self._cache.get(key)
        if vec is None:
            vec = self.encode([text])[0]
            with self._lock:
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[key] = vec
        return vec

    def check(
        self,
        sentence: str,
        passage_text: str,
        passage_key: str | None = None,
        extra_source: str = "",
        use_embedding: bool = True,
    ) -> Support:
        """``extra_source``: text the sentence may also draw on (the citation: law name, title)."""
        source = clean_statute(passage_text)
        src_terms = set(self.content_morphemes(source + " " + extra_source))
        src_squashed = re.sub(r"\s+", "", source + extra_source)
        terms = [t for t in self.content_morphemes(sentence) if t not in REGISTER_WORDS and len(t) > 0]
        if terms:
            found = sum(1 for t in terms if t in src_terms or t in src_squashed)
            lexical = found / len(terms)
        else:
            lexical = 0.0
        src_numbers = set(_NUM.findall(source + " " + extra_source))
        missing = tuple(n for n in _NUM.findall(sentence) if n not in src_numbers)
        embedding = None
        if use_embedding and self.encode is not None:
            pvec = self._passage_vec(passage_key or source[:200], source)
            svec = self.encode([sentence])[0]
            if pvec is not None:
                embedding = float(np.dot(pvec, svec) / (np.linalg.norm(pvec) * np.linalg.norm(svec) + 1e-9))
        ok = lexical >= self.lexical_min and not missing
        if ok and embedding is not None and lexical < self.strong_lexical:
            ok = embedding >= self.embedding_min
        return Support(ok, round(lexical, 3), None if embedding is None else round(embedding, 3), missing)
