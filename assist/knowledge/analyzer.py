"""Korean morpheme analysis for lexical search and keyword extraction (kiwipiepy).

The analyser keeps content morphemes (nouns, verb/adjective stems, numbers, foreign words, roots),
with a user dictionary of domain compounds (:mod:`.lexicon`) so that 대형폐기물 or 층간소음 stay whole.
A compound is indexed both whole and as its parts, and adjacent nouns that form a known compound
are joined, so ``대형 폐기물``, ``대형폐기물`` and ASR's ``대형 폐기 물`` meet on the same tokens.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from .lexicon import DOMAIN_TERMS, VARIANTS

CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "SN", "SL", "SH", "XR", "VV", "VA"})
NOUN_TAGS = frozenset({"NNG", "NNP"})
VERB_TAGS = frozenset({"VV", "VA"})
ANALYZER_VERSION = "3"
_SPACE = re.compile(r"\s+")
_TERM = re.compile(r"[가-힣0-9A-Za-z]+")


def _dictionary_terms(terms: Iterable[str]) -> Iterator[str]:
    """The terms a user dictionary takes: spaces removed, two characters or more, Hangul/digits/Latin."""
    for raw in terms:
        term = _SPACE.sub("", raw)
        if len(term) >= 2 and _TERM.fullmatch(term):
            yield term


def _fingerprint(terms: Iterable[str], variants: dict[str, list[str]], typo_tolerant: bool) -> str:
    h = hashlib.sha256(ANALYZER_VERSION.encode())
    h.update("\n".join(sorted(terms)).encode())
    h.update(repr(sorted(variants.items())).encode())
    h.update(str(typo_tolerant).encode())
    return h.hexdigest()[:16]


_PLAIN_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _plain_kiwi() -> Any:
    """One kiwipiepy without a user dictionary per process (a start costs seconds): it only splits
    dictionary terms into their nouns, which every analyser does for the same domain terms."""
    from kiwipiepy import Kiwi

    return Kiwi()


@lru_cache(maxsize=65_536)
def _noun_parts(term: str) -> tuple[str, ...]:
    with _PLAIN_LOCK:
        return tuple(t.form for t in _plain_kiwi().tokenize(term) if t.tag in NOUN_TAGS or t.tag == "XR")


def analyzer_fingerprint(extra_terms: Iterable[str] = (), typo_tolerant: bool = False) -> str:
    """The fingerprint of ``KoreanAnalyzer(extra_terms, typo_tolerant)`` without building it (an index
    key is computed on every start; building the analyser starts kiwipiepy and takes seconds)."""
    terms = {*_dictionary_terms(DOMAIN_TERMS), *_dictionary_terms(extra_terms)}
    return _fingerprint(terms, {k.lower(): v for k, v in VARIANTS.items()}, typo_tolerant)


class KoreanAnalyzer:
    """kiwipiepy with the domain user dictionary. Thread-safe (one lock around kiwi calls)."""

    def __init__(self, extra_terms: Iterable[str] = (), typo_tolerant: bool = False) -> None:
        from kiwipiepy import Kiwi

        self._lock = threading.Lock()
        self._kiwi = Kiwi(typos="basic") if typo_tolerant else Kiwi()
        self.typo_tolerant = typo_tolerant
        self.terms: set[str] = set()
        self._parts: dict[str, list[str]] = {}
        self.variants: dict[str, list[str]] = {k.lower(): v for k, v in VARIANTS.items()}
        self.add_terms(DOMAIN_TERMS)
        self.add_terms(extra_terms)
        self._expansion_cache: dict[str, list[str]] = {}

    # -- vocabulary -------------------------------------------------------------------------
    def add_terms(self, terms: Iterable[str]) -> None:
        """Add domain compounds (e.g. the corpus' topic tags) to the user dictionary."""
        for term in _dictionary_terms(terms):
            if term in self.terms:
                continue
            parts = list(_noun_parts(term))
            self._kiwi.add_user_word(term, "NNG", 0.0)
            self.terms.add(term)
            if len(parts) > 1:
                self._parts[term] = parts

    def fingerprint(self) -> str:
        """Changes when anything that alters tokenisation changes (part of the index key)."""
        return _fingerprint(self.terms, self.variants, self.typo_tolerant)

    # -- analysis ---------------------------------------------------------------------------
    def _tokens(self, text: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(t.form, t.tag) for t in self._kiwi.tokenize(text)]

    def _tokens_many(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        with self._lock:
            return [[(t.form, t.tag) for t in toks] for toks in self._kiwi.tokenize(texts)]

    def _content(self, toks: list[tuple[str, str]]) -> list[str]:
        out: list[str] = []
        nouns_run: list[str] = []

        def flush() -> None:
            # join adjacent nouns that form a known compound (2 or 3 in a row)
            for n in (3, 2):
                for i in range(len(nouns_run) - n + 1):
                    joined = "".join(nouns_run[i : i + n])
                    if joined in self.terms:
                        out.append(joined)
            nouns_run.clear()

        for form, tag in toks:
            # one-syllable verb/adjective stems (하, 되, 있, 가, 보 …) carry no topic: dropped
            if tag not in CONTENT_TAGS or (tag in VERB_TAGS and len(form) < 2):
                flush()
                continue
            form = form.lower() if tag == "SL" else form
            out.append(form)
            if tag in NOUN_TAGS:
                nouns_run.append(form)
                out.extend(self._parts.get(form, ()))
            else:
                flush()
        flush()
        return out

    def content_morphemes(self, text: str) -> list[str]:
        """Content morphemes of ``text`` (nouns, stems, numbers, roots), compounds whole and split."""
        return self._content(self._tokens(text))

    def content_morphemes_many(self, texts: list[str]) -> list[list[str]]:
        return [self._content(t) for t in self._tokens_many(texts)] if texts else []

    def nouns(self, text: str) -> list[str]:
        """Nouns (NNG/NNP) in order, domain compounds whole (for keyword extraction)."""
        out: list[str] = []
        run: list[str] = []
        for form, tag in [*self._tokens(text), ("", "END")]:
            if tag in NOUN_TAGS:
                run.append(form)
                continue
            i = 0
            while i < len(run):
                for n in (3, 2, 1):
                    joined = "".join(run[i : i + n])
                    if n == 1 or (i + n <= len(run) and joined in self.terms):
                        out.append(joined)
                        i += n
                        break
            run = []
        return out

    def expansions(self, text: str) -> list[str]:
        """Legal terms for the colloquial variants found in ``text`` (matched without spaces).

        A one-syllable variant (약, 차) matches only as a noun of its own: inside another word
        (만약, 계약, 예약) it is not the colloquial word, and matching it there put 폐의약품 on a call
        about a house purchase."""
        squashed = _SPACE.sub("", text).lower()
        found: list[str] = []
        nouns: set[str] | None = None
        for key, terms in self.variants.items():
            if key in squashed:
                if len(key) == 1:
                    if nouns is None:
                        nouns = set(self.nouns(text))
                    if key not in nouns:
                        continue
                found.extend(terms)
        return found

    def query_tokens(self, text: str, expand: bool = True) -> list[str]:
        """Tokens of a query: content morphemes plus the analysed expansions of colloquial words."""
        toks = self.content_morphemes(text)
        if expand:
            for term in self.expansions(text):
                cached = self._expansion_cache.get(term)
                if cached is None:
                    cached = self.content_morphemes(term)
                    self._expansion_cache[term] = cached
                toks.extend(cached)
        return toks


def whitespace_tokens(text: str) -> list[str]:
    """Baseline tokenisation: lower-cased whitespace tokens with surrounding punctuation stripped."""
    out = []
    for tok in text.lower().split():
        tok = tok.strip(".,?!…\"'()[]「」<>·ㆍ:;~")
        if tok:
            out.append(tok)
    return out
