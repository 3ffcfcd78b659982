"""Call summaries on CallEnded: category, reason, key facts, answers, actions, regulations, entities.

Grounded (default, deterministic): every turn is masked first; the category comes from the fixed
taxonomy (:mod:`assist.taxonomy`) by votes of the caller's words and the laws retrieved for the
caller's turns; the reason is the category plus the caller's first substantive question; key facts
are the caller's statements that carry numbers, places or domain terms; counselor answers are the
counselor's informative sentences; actions are recognised from what the counselor says they will do
(연결 → 이관, 접수 → 접수, 문자/연락 → 회신, explanations → 안내); regulations are the confident
top passages for the counselor's answers and the caller's questions; entities are found by pattern.

The summary's queries (caller turns, counselor answers) go through the encoder's query-vector cache
(:mod:`assist.knowledge.query_cache`): a caller turn a live card already asked (its ``t`` variant) is
not embedded again (benchmarks/summary_reuse.py measures how much a summary is spared).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from streaming.events import Channel, FollowUpKind, SummaryAction
from streaming.privacy import ALL_MASKS, mask_text

from .keywords import CONTEXT_WORDS
from .taxonomy import OTHER, TAXONOMY, classify
from .text import split_sentences

log = logging.getLogger("dasan.assist.summary")
_FILLER = re.compile(r"^(?:아|어|음|네|예|저기요|저기|그게|그|아니|여보세요)[,.…\s]+")
_QUESTION = re.compile(
    r"[?？]|(?:나요|까요|가요|어요\?|되나|돼요|인가요|하나요|있어요|없어요|거예요|건가요|죠)\s*[.?]?$"
    # an indirect question: "…언제 내야 되는지 하나도 모르겠어서요", "…궁금해서요"
    r"|지\s*(?:[가-힣]{1,4}\s)?(?:모르겠|몰라|궁금)|궁금해서|궁금합니다|여쭤"
)
_GREETING = re.compile(
    r"다산콜|안녕하세요|무엇을 도와|말씀하세요|감사합니다|궁금하신 점|잠시만|기다려 주세요"
)
_TRANSFER = re.compile(r"연결해\s*드리|연결해\s*드릴|이관|담당\s*부서로\s*(?:전달|넘겨)|넘겨\s*드리")
_REGISTER = re.compile(r"접수해\s*드리|접수하겠|접수되었|접수했|접수 도와|신고 접수|등록해\s*드리")
_CALLBACK = re.compile(r"문자로\s*(?:보내|안내)|연락\s*드리|회신|다시\s*전화|보내\s*드리겠|보내\s*드릴")
_AMOUNT = re.compile(
    r"(?:\d[\d,]*(?:\.\d+)?\s*(?:만\s*)?원|\d+(?:\.\d+)?\s*%|[일이삼사오육칠팔구십백천만]+\s*만?\s*원(?![가-힣])|\d+\s*퍼센트)"
)
_DATE = re.compile(
    r"(?:\d{4}\s*년\s*)?\d{1,2}\s*월\s*\d{1,2}\s*일|(?:[일이삼사오육칠팔구십]+|\d+)월\s*(?:[일이삼사오육칠팔구십]+|\d+)일"
    r"|\d{1,2}월\s*(?:초|중순|말)|\d+\s*(?:일|개월|년)\s*(?:이내|안에|전|후|동안)|(?:어제|그저께|오늘|내일|이번 달|지난달|작년|올해)"
)
_PLACE = re.compile(r"[가-힣]{1,6}(?:구|동|역|공원|시장|아파트|주민센터|구청|사업소|경찰서)(?![가-힣])")
_PLACE_STOP = {
    "도구",
    "가구",
    "요구",
    "연구",
    "친구",
    "입구",
    "출구",
    "창구",
    "주민센터",
    "구청",
    "경찰서",
    "시장",
    "아파트",
}


@dataclass
class Turn:
    channel: Channel
    text: str


@dataclass
class SummaryParts:
    category: str
    call_reason: str
    key_facts: list[str] = field(default_factory=list)
    counselor_answers: list[str] = field(default_factory=list)
    actions: list[SummaryAction] = field(default_factory=list)
    regulations_cited: list[str] = field(default_factory=list)
    entities: dict[str, list[str]] = field(default_factory=dict)
    keywords: list[str] = field(default_factory=list)
    generator: str = "grounded"
    latency_ms: float = 0.0


def _clean(sentence: str) -> str:
    s = sentence.strip()
    prev = None
    while prev != s:
        prev, s = s, _FILLER.sub("", s).strip()
    return s


def _dedupe(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for x in items:
        if x and x not in out:
            out.append(x)
    return out


def extract_entities(texts: Sequence[str]) -> dict[str, list[str]]:
    joined = "\n".join(texts)
    places = [p for p in _PLACE.findall(_DATE.sub(" ", joined)) if p not in _PLACE_STOP and len(p) >= 3]
    out = {
        "places": _dedupe(places)[:8],
        "dates": _dedupe(m.strip() for m in _DATE.findall(joined))[:8],
        "amounts": _dedupe(m.strip() for m in _AMOUNT.findall(joined))[:8],
    }
    masks = [m for m in ALL_MASKS if m in joined]
    if masks:
        out["personal_data_masked"] = masks
    return {k: v for k, v in out.items() if v}


class Summarizer:
    def __init__(self, assistant: Any) -> None:
        self.assistant = assistant
        self.kb = assistant.kb
        self.settings = assistant.settings
        self._confirmer: Any = None
        self._confirm_model: Any = False  # not loaded yet

    @property
    def confirmer(self) -> Any:
        if self._confirmer is None:
            from .summary_regs import RegulationConfirmer

            self._confirmer = RegulationConfirmer(self.kb)
        return self._confirmer

    @property
    def confirm_model(self) -> Any:
        """The learned confirmation (``summary_confirm.json``) when on and shipped; else None. It
        learned from the dense closeness of answers to articles: an index without a dense side scores
        by title nouns instead, which it cannot read, so there the threshold decides."""
        if self._confirm_model is False:
            from .summary_regs import ConfirmModel

            dense = getattr(self.kb, "dense", None) is not None
            self._confirm_model = (
                ConfirmModel.load() if self.settings.summary_confirm_learned and dense else None
            )
        return self._confirm_model

    def _salience(self, sentence: str) -> float:
        """Sum of the (capped) IDF of the sentence's content nouns; time, people and place-in-general
        words (:data:`assist.keywords.CONTEXT_WORDS`: 차이, 며칠째, 옆집) are rare in the corpus but
        say nothing about the call, so they count for nothing ("며칠 차이로요?" is not a reason)."""
        terms = [t for t in self.assistant.evidence_terms(sentence) if t not in CONTEXT_WORDS]
        return float(sum(min(self.kb.idf(t), 8.0) for t in set(terms)))

    def summarize(
        self, turns: Sequence[Turn], cards: Sequence[tuple[int, Sequence[str]]] | None = None
    ) -> SummaryParts:
        """``cards``: (position of the trigger in ``turns``, articles) of the cards shown in the call;
        the regulations cited are those the counselor's answers confirm (:mod:`assist.summary_regs`).
        Without them (a call summarised on its own), the confident top articles of the counselor's
        answers and the caller's questions."""
        t0 = time.perf_counter()
        s = self.settings
        masked = [Turn(t.channel, mask_text(t.text)) for t in turns if t.text and t.text.strip()]
        caller = [t.text for t in masked if t.channel == Channel.caller]
        counselor = [t.text for t in masked if t.channel == Channel.counselor]
        caller_sub = [t for t in caller if self.assistant.evidence_terms(t)]
        if not caller_sub:
            return SummaryParts(
                category=OTHER,
                call_reason="내용 없음(인식된 시민 발화가 없음)" if not caller else "구체적 문의 내용 없음",
                entities=extract_entities(caller + counselor),
                latency_ms=round((time.perf_counter() - t0) * 1000, 2),
            )
        # retrieval for caller questions and counselor answers, one batch
        counselor_sents = [
            _clean(x)
            for t in counselor
            for x in split_sentences(t)
            if not _GREETING.search(x)
            and not _QUESTION.search(x)
            and len(self.assistant.evidence_terms(x)) >= 2
        ]
        queries = caller_sub + (counselor_sents if cards is None else [])
        hits = self.kb.search_many(queries, 3) if queries else []
        caller_hits = hits[: len(caller_sub)]
        counselor_hits = hits[len(caller_sub) :]
        hit_votes = [
            [(h.law_name, h.topics, 1.0 if self.assistant.confident(hh) else 0.3) for h in hh]
            for hh in caller_hits
        ]
        category = classify(caller_sub, hit_votes)
        regs: list[str] = []
        if cards is not None:
            from .summary_regs import RegulationConfirmer

            all_masked = [Turn(t.channel, mask_text(t.text or "")) for t in turns]
            model = self.confirm_model
            evidence = self.confirmer.evidence(all_masked, cards, model.neighbours if model else 0)
            regs = (
                model.confirmed(evidence)
                if model is not None
                else RegulationConfirmer.confirmed(evidence, s.summary_confirm_min)
            )
        else:
            for hh in counselor_hits + caller_hits:
                if hh and self.assistant.confident(hh) and hh[0].doc_id not in regs:
                    regs.append(hh[0].doc_id)
        # topic switch: the category of the second half of the call, when different
        reason_parts = []
        first_q = self._reason_sentence(caller_sub[: max(1, len(caller_sub) // 2 + 1)])
        cat_desc = next((c.description for c in TAXONOMY if c.name == category), "기타 문의")
        reason_parts.append(f"{cat_desc} 문의: {first_q}" if first_q else f"{cat_desc} 문의")
        if len(caller_sub) >= 4:
            half = len(caller_sub) // 2
            second = classify(caller_sub[half:], hit_votes[half:])
            if second not in (category, OTHER):
                later = self._reason_sentence(caller_sub[half:])
                reason_parts.append(f"이후 {second} 문의로 전환" + (f": {later}" if later else ""))
        facts = self._key_facts(caller)
        answers = sorted(counselor_sents, key=self._salience, reverse=True)[: s.summary_max_answers]
        answers = [a for a in counselor_sents if a in answers]  # keep call order
        actions = self._actions(counselor, answers)
        kw = self.assistant.keywords.terms(caller_sub)
        call_reason, generator = " / ".join(reason_parts), "grounded"
        if s.generator == "llm":
            call_reason, generator = self._llm_reason(masked, category, call_reason)
        return SummaryParts(
            category=category,
            call_reason=call_reason,
            generator=generator,
            key_facts=facts,
            counselor_answers=answers,
            actions=actions,
            regulations_cited=regs[:10],
            entities=extract_entities(caller + counselor),
            keywords=kw,
            latency_ms=round((time.perf_counter() - t0) * 1000, 2),
        )

    def _llm_reason(self, masked: Sequence[Turn], category: str, grounded: str) -> tuple[str, str]:
        """``llm``: the model writes the free-text call reason from the masked transcript; the
        category, facts, actions and regulations stay extractive. Any failure keeps the grounded one."""
        complete = getattr(self.assistant.generator, "complete", None)
        if complete is None:
            return grounded, "grounded"
        lines = [f"{'시민' if t.channel == Channel.caller else '상담사'}: {t.text}" for t in masked]
        transcript = "\n".join(lines)[-3000:]
        messages = [
            {
                "role": "system",
                "content": "120다산콜센터 통화 기록입니다. 시민이 전화한 이유를 한 문장(80자 이내)으로 쓰세요. "
                "개인정보와 [마스킹] 표시는 옮기지 마세요.",
            },
            {"role": "user", "content": f"민원 유형: {category}\n통화:\n{transcript}\n\n문의 사유:"},
        ]
        try:
            text = " ".join(str(complete(messages)).split())[:200]
        except (httpx.HTTPError, KeyError, IndexError, ValueError, TypeError) as exc:  # grounded stands
            log.warning("llm summary fell back to grounded", extra={"reason": repr(exc)})
            return grounded, "grounded(llm-fallback)"
        text = mask_text(text)
        if not text or any(m in text for m in ALL_MASKS):
            return grounded, "grounded(llm-fallback)"
        return text, "llm"

    def _reason_sentence(self, texts: Sequence[str]) -> str:
        scored = [(x, self._salience(x)) for x in (_clean(y) for t in texts for y in split_sentences(t))]
        content = [(x, sal) for x, sal in scored if sal > 0]
        pool = [(x, sal) for x, sal in content if _QUESTION.search(x)] or content
        if not pool:
            return ""
        best = max(pool[:4], key=lambda p: p[1])[0]
        return best[:120]

    def _key_facts(self, caller: Sequence[str]) -> list[str]:
        facts: list[tuple[float, int, str]] = []
        for i, t in enumerate(caller):
            for x in split_sentences(t):
                x = _clean(x)
                if not x or _QUESTION.search(x) or len(x) < 6:
                    continue
                score = self._salience(x)
                if _DATE.search(x) or _AMOUNT.search(x) or _PLACE.search(x) or re.search(r"\d", x):
                    score += 3.0
                if any(m in x for m in ALL_MASKS):
                    score += 1.0
                if score > 4.0:
                    facts.append((score, i, x[:150]))
        best = sorted(facts, key=lambda f: -f[0])[: self.settings.summary_max_facts]
        return [f[2] for f in sorted(best, key=lambda f: f[1])]

    def _actions(self, counselor: Sequence[str], answers: Sequence[str]) -> list[SummaryAction]:
        out: list[SummaryAction] = []
        for t in counselor:
            for x in split_sentences(t):
                x = _clean(x)
                kind = None
                if _TRANSFER.search(x):
                    kind = FollowUpKind.transfer
                elif _REGISTER.search(x):
                    kind = FollowUpKind.registered
                elif _CALLBACK.search(x) and not _QUESTION.search(x):
                    kind = FollowUpKind.callback
                if kind and not any(a.text == x for a in out):
                    out.append(SummaryAction(kind=kind, text=x[:200]))
        for a in answers[:3]:
            out.append(SummaryAction(kind=FollowUpKind.informed, text=a[:200]))
        return out
