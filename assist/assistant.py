"""The assist pipeline without Kafka: mask → keywords → retrieve → draft, for one or many calls.

:class:`Assistant` is what the service, the CLI and the evaluator share. ``suggest_many`` takes the
requests of several calls at once and retrieves them in one batch (one embedding batch for all
queries), which is how the service keeps latency flat when many calls speak at the same moment.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming.events import DraftAnswer, Provenance, RetrievedPassage, StageLatency
from streaming.privacy import mask_text

from .drafts import DraftGenerator, grounded_of, make_generator
from .keywords import KeywordExtractor
from .passage_choice import ArticlePassages
from .settings import AssistSettings

SEOUL_DISTRICTS = [
    "종로구",
    "중구",
    "용산구",
    "성동구",
    "광진구",
    "동대문구",
    "중랑구",
    "성북구",
    "강북구",
    "도봉구",
    "노원구",
    "은평구",
    "서대문구",
    "마포구",
    "양천구",
    "강서구",
    "구로구",
    "금천구",
    "영등포구",
    "동작구",
    "관악구",
    "서초구",
    "강남구",
    "송파구",
    "강동구",
]
_DISTRICT = re.compile("(" + "|".join(sorted(SEOUL_DISTRICTS, key=len, reverse=True)) + ")")


def district_of(texts: Sequence[str]) -> str | None:
    """The last Seoul district named in the texts (e.g. '송파구'), if any."""
    found = None
    for t in texts:
        for m in _DISTRICT.finditer(t):
            # '중구' inside another word (e.g. '집중구간') is not the district
            start = m.start()
            if m.group() == "중구" and start > 0 and re.match(r"[가-힣]", t[start - 1]):
                continue
            found = m.group()
    return found


@dataclass
class SuggestRequest:
    call_id: str
    turns: list[str]  # masked caller turns, oldest first (the newest is the trigger)
    trigger_segment_ids: list[str] = field(default_factory=list)
    district: str | None = None
    masking_ms: float = 0.0
    queue_ms: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    # the whole conversation up to the trigger, both channels, masked: ("caller"|"counselor", text)
    conversation: list[tuple[str, str]] = field(default_factory=list)
    # when it became due (debounce over), on the same timer as ``started``; None: at ``started``
    ready: float | None = None
    # load shedding: retrieve from the caller's words only (the service decides, see AssistService)
    caller_only: bool = False

    def waited_ms(self, now: float | None = None) -> float:
        """How long this request has waited since it became due, Kafka wait included (the debounce,
        a wait by design, is not)."""
        now = time.perf_counter() if now is None else now
        since = self.started if self.ready is None else self.ready
        return self.queue_ms + max(0.0, now - since) * 1000


def shed_late(requests: Sequence[SuggestRequest], limit_ms: float, now: float) -> list[SuggestRequest]:
    """Load shedding: the requests that have waited longer than ``limit_ms`` (at ``now``, on their
    timer) are marked to be retrieved from the caller's words only; returns them. ``limit_ms`` 0:
    none."""
    if limit_ms <= 0:
        return []
    late = [r for r in requests if r.waited_ms(now) > limit_ms]
    for r in late:
        r.caller_only = True
    return late


def district_filters(district: str | None) -> Any:
    """The search filters of a call that named ``district`` (its rules and the nation's; None: all)."""
    from assist.knowledge import SearchFilters

    return SearchFilters(applies_in=f"서울특별시 {district}") if district else None


def turns_before_trigger(turns: Sequence[tuple[str, str]], n_trigger: int = 1) -> list[tuple[str, str]]:
    """The conversation before the trigger: the last ``n_trigger`` caller turns are the question,
    everything before them is context."""
    k = len(turns)
    seen = 0
    while k > 0 and seen < n_trigger:
        k -= 1
        if turns[k][0] == "caller":
            seen += 1
    return list(turns[:k])


def last_counselor_turn(turns: Sequence[tuple[str, str]]) -> str:
    return next((t for who, t in reversed(turns) if who == "counselor"), "")


def conversation_for(assistant: Assistant, turns: Sequence[tuple[str, str]], n_trigger: int = 1) -> Any:
    """The retrieval question of a conversation whose last turn(s) are the caller's trigger: the
    caller's recent turns (as the first stage searches them), the counselor's last turn before the
    trigger, the earlier conversation (both channels) and the district named anywhere in it."""
    from assist.knowledge.rerank import Conversation

    caller = [t for who, t in turns if who == "caller"]
    text = assistant.build_query(assistant.context_turns(caller, n_trigger)) if caller else ""
    before = turns_before_trigger(turns, n_trigger)
    counselor = last_counselor_turn(before)
    history = " ".join(t for _w, t in before)
    district = district_of([t for _w, t in turns])
    trigger = " ".join(t for who, t in turns[len(before) :] if who == "caller")
    return Conversation(
        text, counselor, history, district, assistant.filters(district), trigger, tuple(t for _w, t in before)
    )


@dataclass
class SuggestResult:
    request: SuggestRequest
    query: str
    keywords: list[str]
    passages: list[RetrievedPassage]
    draft: DraftAnswer
    latency: StageLatency
    hits: list[Any]
    confident: bool


def to_passage(hit: Any) -> RetrievedPassage:
    return RetrievedPassage(
        doc_id=hit.doc_id,
        passage_id=hit.passage_id,
        citation=hit.citation,
        law_name=hit.law_name,
        article_no=hit.article_no,
        score=round(float(hit.score), 4),
        snippet=hit.snippet[:2000],
        effective_date=hit.effective_date.isoformat() if hit.effective_date else None,
        ranks=dict(hit.ranks),
    )


class Assistant:
    def __init__(self, kb: Any, settings: AssistSettings | None = None) -> None:
        self.kb = kb
        self.settings = settings or AssistSettings()
        unseen = kb.idf("\u2400never-a-term\u2400")
        self.keywords = KeywordExtractor(
            kb.analyzer,
            kb.idf,
            self.settings.min_keywords,
            self.settings.max_keywords,
            known=lambda t: t in kb.analyzer.terms or kb.idf(t) < unseen - 1e-6,
        )
        self.generator: DraftGenerator = make_generator(self.settings, kb)
        self.article_passages = ArticlePassages(getattr(kb, "passages", []))
        self.reranker: Any = None
        if self.settings.rerank and getattr(kb, "dense", None) is not None:
            from assist.knowledge.rerank import Reranker

            self.reranker = Reranker.load(kb)
        self._provenance: Provenance | None = None

    @property
    def provenance(self) -> Provenance:
        """How this assistant's suggestions and summaries are made (index, encoder, generator, settings)."""
        if self._provenance is None:
            from .provenance import provenance_of

            self._provenance = provenance_of(self.kb, self.settings)
        return self._provenance

    @classmethod
    def open(
        cls, settings: AssistSettings | None = None, kb_settings: Any = None, index: Path | None = None
    ) -> Assistant:
        """The assistant over the configured knowledge base, or over a built index folder ``index``
        (loaded with the settings it was built with)."""
        from assist.knowledge import KnowledgeBase, KnowledgeSettings

        if index is not None:
            manifest = json.loads((Path(index) / "manifest.json").read_text())
            built = {
                k: v for k, v in manifest.get("settings", {}).items() if k in KnowledgeSettings.model_fields
            }
            base = kb_settings or KnowledgeSettings()
            kb = KnowledgeBase.load(Path(index), base.model_copy(update=built))
        else:
            kb = KnowledgeBase.open(kb_settings or KnowledgeSettings())
        return cls(kb, settings)

    WARM_UP = (
        ("caller", "안녕하세요, 소파를 버리려고 하는데 대형폐기물 수수료는 얼마예요?"),
        ("counselor", "네, 대형폐기물은 구청에 배출 신고하시고 수수료를 납부하시면 됩니다."),
        ("caller", "그럼 신고는 어디서 해요?"),
    )

    def warm_up(self) -> float:
        """One follow-up suggestion through every stage (masking, analysis, keywords, encoder, ranker,
        draft):
        what a first query would pay for lazy set-up is paid here, at start, not by the first caller
        (measured: the first card's keyword stage took 4.4 s, the next ones 6 ms). Returns seconds."""
        from streaming.privacy import mask_text

        t0 = time.perf_counter()
        conv = [(who, mask_text(text)) for who, text in self.WARM_UP]  # the tracker masks every final
        self.suggest_many(
            [
                SuggestRequest(
                    "warm-up", [t for who, t in conv if who == "caller"], ["w"], None, conversation=conv
                )
            ]
        )
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ pieces
    def evidence_terms(self, text: str) -> list[str]:
        """Content nouns of a (masked) turn that could carry a question (fillers removed)."""
        from .keywords import STOPWORDS

        return [n for n in self.kb.analyzer.nouns(text) if len(n) >= 2 and n not in STOPWORDS]

    @property
    def warms_context(self) -> bool:
        """Whether a conversation's turns are worth embedding ahead of its next question: the second
        stage composes its context queries from per-turn vectors (``composed`` context vectors)."""
        r = self.reranker
        return r is not None and getattr(r, "context_vectors", "text") != "text" and self.kb.dense is not None

    def warm_context(self, texts: Sequence[str]) -> int:
        """Embed the (masked) turn texts a later question will compose its context from, into the
        query cache (texts it holds cost nothing); how many were asked. No-op for ``text`` vectors."""
        if not self.warms_context:
            return 0
        todo = list(dict.fromkeys(t for t in texts if t.strip()))
        if todo:
            self.kb.searcher.encode_queries(todo)
        return len(todo)

    def context_turns(self, turns: Sequence[str], n_trigger: int = 1, enough: int = 2) -> list[str]:
        """The trigger turns, plus older turns only while the question is thin (a follow-up such as
        '수수료는 얼마예요?' needs the turn before; a new self-contained question does not)."""
        limit = max(1, min(len(turns), self.settings.recent_turns))
        k = max(1, min(n_trigger, limit))
        evidence = sum(len(self.evidence_terms(t)) for t in turns[len(turns) - k :])
        while k < limit and evidence < enough:
            k += 1
            evidence += len(self.evidence_terms(turns[len(turns) - k]))
        return list(turns[len(turns) - k :])

    def build_query(self, turns: Sequence[str]) -> str:
        """Newest turn first (a capped encoder reads the start), then older turns.

        Keywords are not appended: on eval-dev that lowered MRR@10 from 0.65 to 0.58 (they repeat
        words already in the turn and shift the dense query away from how the caller put it)."""
        parts = [t.strip() for t in reversed(turns) if t.strip()]
        return " ".join(parts)[: self.settings.query_max_chars]

    def confident(self, hits: Sequence[Any]) -> bool:
        """Show the top passage only if the knowledge base is confident *and* its dense cosine reaches
        ``min_dense_confidence``, or if lexical corroboration holds: a moderately similar passage
        (dense ≥ ``corroborate_dense_min``) that shares many rare words with the question (BM25 ≥
        ``corroborate_bm25_min``). Without a dense side the knowledge base decides alone."""
        if not hits:
            return False
        s = self.settings
        top = hits[0].scores
        if "out_of_scope" in top and self.reranker is not None and self.reranker.abstainer is not None:
            # the learned stage's out-of-scope model, its threshold tuned by cross-validation
            return top["out_of_scope"] < self.reranker.threshold_for(top)
        dense = top.get("dense")
        if dense is None:
            return self.kb.is_confident(list(hits))
        if dense >= s.min_dense_confidence and self.kb.is_confident(list(hits)):
            return True
        bm25 = top.get("bm25", 0.0)
        return (
            s.corroborate_bm25_min > 0 and dense >= s.corroborate_dense_min and bm25 >= s.corroborate_bm25_min
        )

    def abstain_reason(self, hits: Sequence[Any], confident: bool) -> str:
        """Why a card shows no answer, in the counselor's words."""
        if not hits:
            return "이 질문에 맞는 조문이 규정집에 없습니다. 소관 부서 안내나 이관을 권합니다."
        top = hits[0]
        p = top.scores.get("out_of_scope")
        in_call_model = self.reranker is not None and self.reranker.call_abstainer is not None
        if not confident and p is not None and top.scores.get("in_call") and in_call_model:
            # the in-call model withholds turns that need no card: a statement, an answer to the
            # counselor, or a question the regulations do not answer
            return (
                f"이 발화에는 조문 카드가 필요해 보이지 않습니다(질문이 아닌 진술·답변이거나 규정집 밖의 "
                f"질문일 가능성 {p:.0%}; 가장 가까운 조문은 「{top.law_name}」 {top.article_no}). 질문이라면 "
                "조문 없이 답하지 말고 규정 검색으로 확인하거나 소관 기관을 안내해 주세요."
            )
        if not confident and p is not None:
            return (
                f"120 규정집 밖의 질문으로 보입니다(범위 밖일 가능성 {p:.0%}; 가장 가까운 조문은 "
                f"「{top.law_name}」 {top.article_no}). 조문 없이 답하지 말고 소관 기관 안내나 이관을 권합니다."
            )
        if not confident:
            return (
                f"가장 가까운 조문(「{top.law_name}」 {top.article_no})도 질문과의 유사도가 낮아 근거로 "
                "제시하지 않습니다. 질문을 더 듣거나 담당 부서 안내를 권합니다."
            )
        return (
            f"「{top.law_name}」 {top.article_no}에서 질문에 답하는 문장을 찾지 못해 초안을 만들지 "
            "않았습니다. 조문 원문을 확인해 주세요."
        )

    def filters(self, district: str | None) -> Any:
        return district_filters(district)

    # ------------------------------------------------------------------ suggestions
    def suggest_many(self, requests: Sequence[SuggestRequest]) -> list[SuggestResult]:
        if not requests:
            return []
        s = self.settings
        kw_ms: list[float] = []
        queries: list[str] = []
        kws: list[list[str]] = []
        for req in requests:
            t0 = time.perf_counter()
            recent = self.context_turns(req.turns, len(req.trigger_segment_ids))
            k = self.keywords.terms(recent)
            kws.append(k)
            queries.append(self.build_query(recent))
            kw_ms.append((time.perf_counter() - t0) * 1000)
        # one encoder pass for the whole batch; each call keeps its own district filter
        t0 = time.perf_counter()
        if self.reranker is not None:
            convs = [
                conversation_for(
                    self,
                    req.conversation or [("caller", t) for t in req.turns],
                    len(req.trigger_segment_ids) or 1,
                )
                for req in requests
            ]
            for cv, req in zip(convs, requests, strict=True):
                if req.district and not cv.district:
                    cv.district, cv.filters = req.district, self.filters(req.district)
                if req.caller_only or not s.context_views:
                    # one query text instead of three; the ranker's caller-words model scores it. The
                    # newest turn stays marked (a thin follow-up is searched with the turn before it)
                    cv.counselor, cv.history, cv.history_turns = "", "", ()
            hits_all = self.reranker.rank(convs, s.top_k)
        else:
            hits_all = self.kb.search_many(queries, s.top_k, [self.filters(req.district) for req in requests])
        retrieval_ms = (time.perf_counter() - t0) * 1000
        out = []
        for i, req in enumerate(requests):
            hits = hits_all[i]
            t0 = time.perf_counter()
            confident = self.confident(hits)
            # the counselor's last words, only where the sentence choice weighs them (off by default)
            context = (
                last_counselor_turn(turns_before_trigger(req.conversation, len(req.trigger_segment_ids) or 1))
                if req.conversation and s.draft_context_weight > 0
                else ""
            )
            hits = self._article_passage(queries[i], hits)
            draft = self.generator.draft(queries[i], hits, confident, context)
            if draft.abstained:
                draft = draft.model_copy(update={"abstain_reason": self.abstain_reason(hits, confident)})
            draft_ms = (time.perf_counter() - t0) * 1000
            passages = [to_passage(h) for h in hits] if (confident or not s.abstain) else []
            total = (time.perf_counter() - req.started) * 1000
            latency = StageLatency(
                masking_ms=round(req.masking_ms, 2),
                keywords_ms=round(kw_ms[i], 2),
                retrieval_ms=round(retrieval_ms, 2),
                draft_ms=round(draft_ms, 2),
                total_ms=round(total, 2),
                queue_ms=round(req.queue_ms, 2),
            )
            out.append(SuggestResult(req, queries[i], kws[i], passages, draft, latency, hits, confident))
        return out

    def _article_passage(self, query: str, hits: list[Any]) -> list[Any]:
        """``hits`` whose drafted ones read the passage of their article that answers best
        (:mod:`assist.passage_choice`; only with the dense side and stored unit vectors)."""
        gen = grounded_of(self.generator)
        if not self.settings.draft_article_passages or gen is None or not hits:
            return hits

        def snippet(text: str) -> str:
            return str(self.kb.searcher.ranker.snippet(text, self.kb.analyzer.query_tokens(query, False)))

        return self.article_passages.refine(gen, query, hits, snippet, self.settings.draft_passages)

    def suggest_text(self, text: str, call_id: str = "cli") -> SuggestResult:
        t0 = time.perf_counter()
        masked = mask_text(text)
        masking_ms = (time.perf_counter() - t0) * 1000
        req = SuggestRequest(call_id, [masked], ["cli"], district_of([masked]), masking_ms, started=t0)
        return self.suggest_many([req])[0]
