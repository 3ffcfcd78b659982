"""Draft answers behind one interface: ``grounded`` (deterministic, extractive) and ``llm``.

Both return a :class:`streaming.events.DraftAnswer` whose every sentence cites a retrieved
``passage_id``; below the knowledge base's confidence threshold they abstain and say so.

- :class:`GroundedGenerator` picks, in each of the best passages, the sentence (or 호 item) that shares
  most weighted query terms (optionally blended with the cosine of the question's vector and the
  unit's, :class:`UnitVectors`, at ``draft_dense_weight``), rewrites it into the counselor register (``~하여서는 아니 된다`` →
  ``~하시면 안 됩니다``) and names the source (``도로교통법 제32조에 따르면 …``).
- :class:`LlmGenerator` prompts an OpenAI-compatible chat endpoint with numbered passages, parses
  the ``[n]`` markers, keeps only the sentences the :class:`~assist.citations.CitationChecker`
  finds supported, and falls back to ``grounded`` on a timeout, an error or an empty result.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
import numpy as np

from streaming.events import DraftAnswer, DraftSentence

from .citations import CitationChecker
from .knowledge.query_cache import BoundedLru
from .settings import AssistSettings
from .text import Unit, drop_parentheticals, mentions, split_sentences, split_units, to_counselor_register
from .unit_store import UnitStore, text_hash, unit_title

log = logging.getLogger("dasan.assist.drafts")

ABSTAIN_TEXT = "관련 규정을 찾지 못했습니다. 확인이 필요한 내용이라 담당 부서 안내나 이관을 권해 드립니다."
_LIST_INTRO = re.compile(r"다음 각 (?:호|목)")
_LIST_REWRITES = (
    (re.compile(r"다음 각 (?:호|목)의 어느 하나에 해당하는"), "아래에 해당하는"),
    (re.compile(r"다음 각 (?:호|목)의"), "아래의"),
    (re.compile(r"다음 각 (?:호|목)"), "아래"),
)


def _rewrite_list_intro(text: str) -> str:
    for pat, rep in _LIST_REWRITES:
        text = pat.sub(rep, text)
    return text


class Hit(Protocol):
    """What a draft needs of a search hit (``assist.knowledge.SearchHit`` has it)."""

    passage_id: str
    doc_id: str
    citation: str
    law_name: str
    article_no: str
    article_title: str | None
    text: str
    score: float


class DraftGenerator(Protocol):
    name: str

    def draft(self, query: str, hits: Sequence[Hit], confident: bool, context: str = "") -> DraftAnswer:
        """``context``: what was said just before the question (the counselor's last words), which
        a follow-up such as "그 60일을 넘기면요?" leans on."""
        ...


def abstention(generator: str, reason: str = ABSTAIN_TEXT) -> DraftAnswer:
    return DraftAnswer(generator=generator, sentences=[], abstained=True, abstain_reason=reason)


class UnitVectors(BoundedLru[np.ndarray]):
    """The dense side of the sentence choice: the question's query vector and a document vector of
    each unit (sentence or 호 item) of a passage.

    ``encode_query(text)``: the query vector the retrieval computed (the knowledge base's encoder with
    its query prompt; its query cache hands back the vector retrieval just made). Unit vectors come
    first from the index's precomputed store (:class:`assist.unit_store.UnitStore`, ``dasan kb
    units``; ``load_store`` is asked again every ``retry_s`` seconds while there is none, so a store
    built while the service runs is picked up), else — only with ``on_demand`` — from
    ``encode_units(title, texts)`` (document vectors in the index's ``title: … | text: …`` format),
    kept per passage in a bounded LRU keyed by its id and a hash of its text. With neither, a
    passage gets no cosines and its sentence choice stays lexical. Thread-safe; two threads missing
    on one passage at once both embed it (the second store wins, with the same vectors)."""

    def __init__(
        self,
        encode_query: Callable[[str], np.ndarray],
        encode_units: Callable[[str, list[str]], np.ndarray],
        size: int = 1024,
        *,
        load_store: Callable[[], UnitStore | None] | None = None,
        on_demand: bool = True,
        retry_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1:
            raise ValueError("the unit-vector cache holds at least one passage")
        super().__init__(size)
        self.encode_query = encode_query
        self.encode_units = encode_units
        self.on_demand = on_demand
        self._load_store = load_store
        self._retry_s = retry_s
        self._clock = clock
        self._store: UnitStore | None = None
        self._store_tried: float | None = None
        self.stored = 0  # passages whose vectors came from the precomputed store
        self.unavailable = 0  # passages with no vectors (no store entry, no on-demand embedding)

    @classmethod
    def for_kb(cls, kb: Any, size: int = 1024, on_demand: bool = False) -> UnitVectors | None:
        """Over a knowledge base's encoder and its precomputed store (None: the index has no dense side)."""
        encoder = getattr(kb, "encoder", None)
        if encoder is None or getattr(kb, "dense", None) is None:
            return None
        from assist.knowledge.dense import document_text

        with_title = bool(getattr(kb.settings, "doc_title_in_prompt", True))

        def encode_query(text: str) -> np.ndarray:
            return np.asarray(kb.encode_queries([text])[0], dtype=np.float32)

        def encode_units(title: str, texts: list[str]) -> np.ndarray:
            docs = [document_text(title, t, with_title) for t in texts]
            return np.asarray(encoder.encode_documents(docs, batch_size=max(1, len(docs))), dtype=np.float32)

        def load_store() -> UnitStore | None:
            return UnitStore.load(getattr(kb, "path", None), getattr(encoder, "fingerprint", None))

        return cls(encode_query, encode_units, size, load_store=load_store, on_demand=on_demand)

    @property
    def store(self) -> UnitStore | None:
        """The precomputed store, looked for again every ``retry_s`` seconds while there is none."""
        if self._store is None and self._load_store is not None:
            now = self._clock()
            if self._store_tried is None or now - self._store_tried >= self._retry_s:
                first = self._store_tried is None
                self._store_tried = now
                self._store = self._load_store()
                if self._store is not None:
                    log.info("unit vectors loaded", extra={"passages": len(self._store)})
                elif first and not self.on_demand:
                    log.info("no stored unit vectors: sentence choice lexical until `dasan kb units` has run")
        return self._store

    def units(self, hit: Hit, units: Sequence[Unit]) -> np.ndarray | None:
        """Unit vectors of ``hit`` (rows in ``units`` order): stored, else embedded once per passage
        text when ``on_demand``, else None."""
        store = self.store
        stored = store.rows(hit.passage_id, hit.text, list(units)) if store is not None else None
        if stored is not None:
            with self._lock:
                self.stored += 1
            return stored
        key = (hit.passage_id, text_hash(hit.text))
        with self._lock:
            rows = self._touch(key)
            if rows is not None and len(rows) == len(units):
                self.hits += 1
                return rows
            if not self.on_demand:
                self.unavailable += 1
                return None
            self.misses += 1
        title = unit_title(hit.law_name, hit.article_title)
        rows = np.asarray(self.encode_units(title, [u.text for u in units]), dtype=np.float32)
        rows.setflags(write=False)
        with self._lock:
            self._put(key, rows)
        return rows

    def cosines(self, query: str, hit: Hit, units: Sequence[Unit]) -> list[float] | None:
        """Cosine of the question's vector and each unit's (both unit-normalised); None when the
        passage's unit vectors are not at hand."""
        m = self.units(hit, units)
        if m is None:
            return None
        q = np.asarray(self.encode_query(query), dtype=np.float32)
        qn = q / max(float(np.linalg.norm(q)), 1e-12)
        mn = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        return [float(x) for x in mn @ qn]


def combine_scores(
    lexical: Sequence[float], cosines: Sequence[float], weight: float, exceptions: Sequence[bool]
) -> list[float]:
    """The sentence-choice score of each unit: ``(1 − weight)`` × its lexical score over the passage's
    best, plus ``weight`` × its cosine min-max scaled over the passage's units (so both sides span
    [0, 1] within the passage and only their order matters). An exception (``다만 …``) keeps the
    lexical side's discount on the dense side too. ``weight`` 0: the lexical scores' order."""
    if len(lexical) != len(cosines) or len(lexical) != len(exceptions):
        raise ValueError("one lexical score, one cosine and one exception flag per unit")
    if not lexical:
        return []
    top = max(lexical)
    lex = [x / top if top > 0 else 0.0 for x in lexical]
    lo, hi = min(cosines), max(cosines)
    dense = [(c - lo) / (hi - lo) if hi > lo else 0.0 for c in cosines]
    dense = [d * EXCEPTION_FACTOR if e else d for d, e in zip(dense, exceptions, strict=True)]
    return [(1 - weight) * x + weight * d for x, d in zip(lex, dense, strict=True)]


EXCEPTION_FACTOR = 0.6  # an exception is worth saying only after the rule
UNIT_TOKENS_CACHE = 50_000  # statute units whose morphemes are kept (the corpus has ~20,000)


class GroundedGenerator:
    name = "grounded"

    def __init__(
        self,
        content_morphemes_many: Callable[[list[str]], list[list[str]]],
        idf: Callable[[str], float],
        settings: AssistSettings | None = None,
        dense: UnitVectors | None = None,
    ) -> None:
        self.morphs = content_morphemes_many
        self._tokens: BoundedLru[list[str]] = BoundedLru(UNIT_TOKENS_CACHE)
        self.idf = idf
        self.settings = settings or AssistSettings()
        # the dense side of the sentence choice (None, or a weight of 0: lexical only, no encoder call)
        self.dense = dense

    def unit_tokens(self, texts: list[str]) -> list[list[str]]:
        """Content morphemes of statute units, analysed once per text (a bounded cache: cards read
        the same articles again, and the article-wide passage choice reads all of theirs)."""
        cache = self._tokens
        with cache._lock:
            found = {t: cache._touch(t) for t in texts}
        missing = [t for t, toks in found.items() if toks is None]
        if missing:
            analysed = self.morphs(missing)
            with cache._lock:
                for t, toks in zip(missing, analysed, strict=True):
                    cache._put(t, toks)
                    found[t] = toks
        return [found[t] or [] for t in texts]

    def _score_units(self, query_terms: dict[str, float], units: list[Unit]) -> list[float]:
        toks = self.unit_tokens([u.text for u in units])
        out = []
        for u, t in zip(units, toks, strict=True):
            ts = set(t)
            hit = sum(w for term, w in query_terms.items() if term in ts)
            # short items and sentences are easier to say: mild length normalisation
            score = hit / math.sqrt(max(len(t), 4) / 4) + (0.01 if u.kind == "sentence" else 0.0)
            if u.text.startswith("다만"):  # an exception is worth saying only after the rule
                score *= EXCEPTION_FACTOR
            out.append(score)
        return out

    def terms(self, query: str, context: str = "") -> dict[str, float]:
        """Weighted terms a statute sentence is chosen by: the question's content morphemes at their
        idf, and those of ``context`` (the counselor's last words) that the question lacks at
        ``draft_context_weight`` × idf."""
        texts = [query, context] if context and self.settings.draft_context_weight > 0 else [query]
        toks = self.morphs(texts)
        out = {t: max(self.idf(t), 0.05) for t in toks[0] if len(t) > 1 or t.isdigit()}
        if len(toks) > 1:
            w = self.settings.draft_context_weight
            for t in toks[1]:
                if (len(t) > 1 or t.isdigit()) and t not in out:
                    out[t] = w * max(self.idf(t), 0.05)
        return out

    def unit_scores(self, query: str, hit: Hit, units: list[Unit], lexical: list[float]) -> list[float]:
        """What a unit is chosen by: its ``lexical`` score (:meth:`_score_units`), blended with its
        cosine to the question at ``draft_dense_weight`` when a dense side is attached
        (:func:`combine_scores`)."""
        w = self.settings.draft_dense_weight
        if self.dense is None or w <= 0 or not query.strip():
            return lexical
        try:
            cos = self.dense.cosines(query, hit, units)
        except Exception as exc:  # the encoder failing must not cost the card its draft
            log.warning("dense sentence choice failed: lexical only", extra={"error": repr(exc)[:300]})
            return lexical
        if cos is None:  # no vectors for this passage (not in the store, none embedded on demand)
            return lexical
        return combine_scores(lexical, cos, w, [u.text.startswith("다만") for u in units])

    def select(self, query: str, hits: Sequence[Hit], context: str = "") -> list[tuple[Hit, list[str]]]:
        """For each passage drafted from, the statute sentences chosen (in reading order). Whether a
        passage or an item is said at all stays a lexical decision (some term of the question in it);
        which one is said is :meth:`unit_scores`'s."""
        s = self.settings
        if not hits:
            return []
        top = hits[0].score
        chosen = [
            h for h in hits[: s.draft_passages] if h.score >= s.draft_relative_score * top or h is hits[0]
        ]
        query_terms = self.terms(query, context)
        out: list[tuple[Hit, list[str]]] = []
        for hit in chosen:
            units = split_units(hit.text)
            if not units:
                continue
            lexical = self._score_units(query_terms, units)
            scores = self.unit_scores(query, hit, units, lexical)
            best = max(range(len(units)), key=lambda i: scores[i])
            if lexical[best] <= 0 and hit is not hits[0]:
                continue
            u = units[best]
            picked: list[str] = []
            if u.kind == "item":
                intro = units[u.parent].text if u.parent is not None else ""
                if intro:
                    picked.append(intro)
                picked.append("ITEM:" + u.text)
            else:
                picked.append(u.text)
                if _LIST_INTRO.search(u.text):
                    items = [i for i, x in enumerate(units) if x.kind == "item" and x.parent == best]
                    if items:
                        bi = max(items, key=lambda i: scores[i])
                        if lexical[bi] > 0.01:
                            picked.append("ITEM:" + units[bi].text)
            out.append((hit, picked))
        return out

    def draft(self, query: str, hits: Sequence[Hit], confident: bool, context: str = "") -> DraftAnswer:
        if not hits or (self.settings.abstain and not confident):
            return abstention(self.name)
        sentences: list[DraftSentence] = []
        for hit, picked in self.select(query, hits, context):
            first = True
            for raw in picked:
                if raw.startswith("ITEM:"):
                    item = drop_parentheticals(raw[5:]).rstrip(".;, ")
                    text = f"여기에는 '{item}' 항목이 포함됩니다."
                else:
                    body = to_counselor_register(_rewrite_list_intro(raw))
                    text = f"{mentions(hit.law_name, hit.article_no)}, {body}" if first else body
                    first = False
                sentences.append(DraftSentence(text=text, citations=[hit.passage_id]))
                if len(sentences) >= self.settings.draft_max_sentences:
                    break
            if len(sentences) >= self.settings.draft_max_sentences:
                break
        if not sentences:
            return abstention(self.name)
        return DraftAnswer(generator=self.name, sentences=sentences)


# --------------------------------------------------------------------------- llm

SYSTEM_PROMPT = (
    "당신은 서울 120다산콜센터 상담사를 돕는 보조입니다. 아래 번호가 붙은 근거 조문만 사용해 시민에게 "
    "바로 말할 수 있는 짧은 존댓말 문장 2~4개로 답변 초안을 쓰세요. 모든 문장 끝에 근거 번호를 [1]처럼 "
    "붙이고, 근거에 없는 내용(전화번호, 기관 이름, 금액, 기간)은 쓰지 마세요. 근거로 답할 수 없으면 "
    "'관련 근거를 찾지 못했습니다.'라고만 쓰세요."
)
_MARK = re.compile(r"\[(\d{1,2})\]")
_NOT_WORD = re.compile(r"[\s「」『』()\[\]<>·.,:;\"'-]+")


def _squash(text: str) -> str:
    return _NOT_WORD.sub("", text)


def build_messages(query: str, hits: Sequence[Hit], max_chars: int = 700) -> list[dict[str, str]]:
    blocks = []
    for i, h in enumerate(hits, 1):
        body = drop_parentheticals(h.text)[:max_chars]
        blocks.append(f"[{i}] {h.citation}\n{body}")
    user = "근거 조문:\n" + "\n\n".join(blocks) + f"\n\n시민의 말: {query}\n\n답변 초안:"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_cited_sentences(answer: str, n_passages: int) -> list[tuple[str, list[int]]]:
    """Sentences of a model answer with the passage numbers each cites (1-based)."""
    out: list[tuple[str, list[int]]] = []
    # 'sentence. [1]' → 'sentence [1].' so the marker stays with its sentence
    answer = re.sub(
        r"([.?!])\s*((?:\[\d{1,2}\]\s*)+)", lambda m: " " + m.group(2).strip() + m.group(1) + " ", answer
    )
    for line in answer.splitlines():
        for sent in split_sentences(line.strip()):
            nums = [int(x) for x in _MARK.findall(sent) if 1 <= int(x) <= n_passages]
            text = _MARK.sub("", sent).strip()
            text = re.sub(r"\s+([.?!])", r"\1", text)
            if text:
                out.append((text, list(dict.fromkeys(nums))))
    return out


class LlmGenerator:
    name = "llm"

    def __init__(
        self,
        settings: AssistSettings,
        checker: CitationChecker,
        fallback: GroundedGenerator,
        client: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.checker = checker
        self.fallback = fallback
        headers = {}
        if settings.llm_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
        self.client = client or httpx.Client(
            base_url=settings.llm_base_url.rstrip("/"), timeout=settings.llm_timeout_s, headers=headers
        )
        self.fallbacks = 0
        self.dropped_sentences = 0
        # what the model wrote and what the citation check kept (for `dasan eval assist --generator llm`)
        self.calls = 0
        self.model_sentences = 0
        self.kept_sentences = 0
        self.model_abstentions = 0  # the model answered "관련 근거를 찾지 못했습니다"
        self.fallback_reasons: dict[str, int] = {}

    def complete(self, messages: list[dict[str, str]]) -> str:
        s = self.settings
        resp = self.client.post(
            "/chat/completions",
            json={
                "model": s.llm_model,
                "messages": messages,
                "max_tokens": s.llm_max_tokens,
                "temperature": s.llm_temperature,
                "stream": False,
            },
        )
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return str(data["choices"][0]["message"]["content"] or "")

    def _fallback(
        self, query: str, hits: Sequence[Hit], confident: bool, why: str, kind: str, context: str = ""
    ) -> DraftAnswer:
        self.fallbacks += 1
        self.fallback_reasons[kind] = self.fallback_reasons.get(kind, 0) + 1
        log.warning("llm draft fell back to grounded", extra={"reason": why, "kind": kind})
        ans = self.fallback.draft(query, hits, confident, context)
        return ans.model_copy(update={"generator": "grounded(llm-fallback)"})

    def draft(self, query: str, hits: Sequence[Hit], confident: bool, context: str = "") -> DraftAnswer:
        """The model sees the caller's words only (its prompt is measured as it is); ``context``
        reaches the grounded fallback's sentence choice."""
        if not hits or (self.settings.abstain and not confident):
            return abstention(self.name)
        # the model sees a few passages to choose from; the citation check keeps it honest
        use = list(hits[: max(self.settings.draft_passages, 3)])
        self.calls += 1
        try:
            answer = self.complete(build_messages(query, use))
        except httpx.TimeoutException as exc:
            return self._fallback(query, hits, confident, repr(exc), "timeout", context)
        except httpx.HTTPError as exc:
            return self._fallback(query, hits, confident, repr(exc), "http_error", context)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            return self._fallback(query, hits, confident, repr(exc), "unparsable", context)
        kept: list[DraftSentence] = []
        headings = [_squash(f"{h.citation}{h.article_title or ''}") for h in use]
        for text, nums in parse_cited_sentences(answer, len(use)):
            self.model_sentences += 1
            if not nums or any(_squash(text) in hd for hd in headings):
                # no marker, or only a passage's heading copied back (「법」 제20조(…) [1]): no claim to check
                self.dropped_sentences += 1
                continue
            ok_ids = []
            for n in nums:
                h = use[n - 1]
                if self.checker.check(text, h.text, h.passage_id, f"{h.citation}").supported:
                    ok_ids.append(h.passage_id)
            if ok_ids:
                self.kept_sentences += 1
                kept.append(DraftSentence(text=text, citations=ok_ids))
            else:
                self.dropped_sentences += 1
            if len(kept) >= self.settings.draft_max_sentences:
                break
        if not kept:
            if "찾지 못했" in answer:
                self.model_abstentions += 1
                return abstention(self.name)
            return self._fallback(query, hits, confident, "no supported sentence", "check_failed", context)
        return DraftAnswer(generator=self.name, sentences=kept)


def grounded_of(generator: Any) -> GroundedGenerator | None:
    """The grounded generator behind ``generator``: itself, or the LLM generator's fallback."""
    if isinstance(generator, GroundedGenerator):
        return generator
    fallback = getattr(generator, "fallback", None)
    return fallback if isinstance(fallback, GroundedGenerator) else None


def make_generator(
    settings: AssistSettings, kb: Any, checker: CitationChecker | None = None
) -> DraftGenerator:
    dense = (
        UnitVectors.for_kb(kb, settings.draft_dense_cache, settings.draft_dense_on_demand)
        if settings.draft_dense_weight > 0
        else None
    )
    grounded = GroundedGenerator(kb.analyzer.content_morphemes_many, kb.idf, settings, dense)
    if settings.generator == "grounded":
        return grounded
    checker = checker or CitationChecker.for_kb(
        kb, settings.support_lexical_min, settings.support_embedding_min
    )
    return LlmGenerator(settings, checker, grounded)
