"""Keywords a counselor would tag, from the recent caller turns.

Candidates are the nouns kiwipiepy finds (through the knowledge base's analyser, so its domain user
dictionary keeps 대형폐기물 or 층간소음 whole), compounds of adjacent bare nouns (``수도 계량기`` →
``수도계량기``), and the domain terms the colloquial words map to (``불법주차`` → ``주정차``). Each is
weighted by term frequency (newer turns count more) × its IDF in the corpus, with a bonus for domain
terms; fillers and call-centre small talk never count. 3–8 are kept: those within reach of the best.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from streaming.privacy import ALL_MASKS


class Analyzer(Protocol):
    terms: set[str]

    def nouns(self, text: str) -> list[str]: ...

    def expansions(self, text: str) -> list[str]: ...


# Words that are nouns to the analyser but never a keyword on a 120 call.
STOPWORDS = frozenset(
    [
        "저기",
        "저기요",
        "거기",
        "여기",
        "이거",
        "그거",
        "저거",
        "거",
        "것",
        "게",
        "뭐",
        "무엇",
        "때",
        "때문",
        "제",
        "저",
        "저희",
        "우리",
        "분",
        "번",
        "좀",
        "지금",
        "이번",
        "혹시",
        # conditionals (만약에 그 60일을 넘기면요?): the analyser tags them nouns
        "만약",
        "만일",
        "가령",
        "어디",
        "얼마",
        "사람",
        "경우",
        "생각",
        "정도",
        "말씀",
        "문의",
        "질문",
        # discourse verbs of any call's wrap-up (정리하면 …, 요약해 드리면 …), not its subject
        "정리",
        "요약",
        "전화",
        "얘기",
        "이야기",
        "상담",
        "상담사",
        "고객",
        "고객님",
        "선생",
        "선생님",
        "감사",
        "안녕",
        "네",
        "예",
        "아니",
        "그냥",
        "진짜",
        "정말",
        "너무",
        "그게",
        "근데",
        "그런데",
        "다음",
        "이상",
        "이하",
        "이내",
        "부분",
        "쪽",
        "데",
        "수",
        "중",
        "등",
        "일",
        "월",
        "년",
        "시",
        "분",
        "초",
        "원",
        "개",
        "명",
        "건",
        "하나",
        "오늘",
        "어제",
        "내일",
        "아까",
        "방금",
        "요즘",
        "며칠",
        "언제",
        "처음",
        "나중",
        "동안",
        "이후",
        "전",
        "후",
        "앞",
        "뒤",
        "위",
        "아래",
        "안",
        "밖",
        "옆",
        "뭘",
        "누구",
        "무슨",
        "다산콜",
        "다산콜센터",
        "센터",
        "120",
        "확인",
        "필요",
        "가능",
        "관련",
        "내용",
        "방법",
        "경우",
        "사실",
        "상황",
        "문제",
        "정신",
        "죄송",
        "괜찮",
        "해당",
        "다른",
        "자기",
    ]
)
_MASK_WORDS = {m.strip("[]") for m in ALL_MASKS}
# Time, people and places-in-general words: true nouns, never what a counselor tags a call with.
CONTEXT_WORDS = frozenset(
    [
        "지난달",
        "이번달",
        "다음달",
        "올해",
        "작년",
        "내년",
        "재작년",
        "어제",
        "그저께",
        "모레",
        "주말",
        "평일",
        "요일",
        "아침",
        "저녁",
        "밤",
        "밤새",
        "낮",
        "오전",
        "오후",
        "새벽",
        "하반기",
        "상반기",
        "일주일",
        "한달",
        "달",
        "주",
        "전쯤",
        "당장",
        "시작",
        "끝",
        "건지",
        "신경",
        "차이",
        "인정",
        "이유",
        "상태",
        "느낌",
        "기분",
        "걱정",
        "불안",
        "정도",
        "주변",
        "근처",
        "쪽",
        "곳",
        "밑",
        "가게",
        "동네",
        "건물",
        "집",
        "방",
        "창문",
        "문",
        "사람",
        "분들",
        "할아버지",
        "할머니",
        "아저씨",
        "아주머니",
        "아줌마",
        "옆집",
        "이웃",
        "부모",
        "애기",
        "아이",
        "애",
        "엄마",
        "아빠",
        "남편",
        "아내",
        "어머니",
        "아버지",
        "어머님",
        "아버님",
        "딸",
        "아들",
        "가족",
        "친구",
        "실수",
        "대기",
        "신호",
        "얼굴",
        "목소리",
        "마음",
        "일월",
        "이월",
        "삼월",
        "사월",
        "오월",
        "유월",
        "칠월",
        "팔월",
        "구월",
        "시월",
        "십일월",
        "십이월",
        "하루",
        "이틀",
        "사흘",
        "며칠째",
        "계속",
        "매일",
        "가끔",
        "자꾸",
    ]
)

_HANGUL_WORD = re.compile(r"[가-힣A-Za-z0-9]+")


@dataclass(frozen=True)
class Keyword:
    term: str
    score: float


class KeywordExtractor:
    def __init__(
        self,
        analyzer: Analyzer,
        idf: Callable[[str], float],
        min_keywords: int = 3,
        max_keywords: int = 8,
        relative_cutoff: float = 0.45,
        known: Callable[[str], bool] | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.idf = idf
        self.min_keywords = min_keywords
        self.max_keywords = max_keywords
        self.relative_cutoff = relative_cutoff
        # a compound of two words written apart counts only if the corpus or the lexicon knows it
        self.known = known or (lambda term: term in analyzer.terms)

    def candidates(self, text: str) -> list[str]:
        """Nouns and noun compounds of one turn, in order of appearance (duplicates kept)."""
        out: list[str] = []
        words = _HANGUL_WORD.findall(text)
        prev_bare: str | None = None
        for word in words:
            if word in _MASK_WORDS:
                prev_bare = None
                continue
            nouns = [n for n in self.analyzer.nouns(word) if n not in _MASK_WORDS]
            if not nouns:
                prev_bare = None
                continue
            if len(nouns) >= 2 and all(len(n) >= 2 for n in nouns[:3]):
                compound = "".join(nouns[:3])
                if compound in word:
                    out.append(compound)
            out.extend(nouns)
            bare = nouns[-1] if word.endswith(nouns[-1]) else None
            # two adjacent nouns written apart (수도 계량기가) form a compound
            if (
                prev_bare
                and len(nouns) == 1
                and len(prev_bare) >= 2
                and len(nouns[0]) >= 2
                and self.known(prev_bare + nouns[0])
            ):
                out.append(prev_bare + nouns[0])
            prev_bare = bare if len(nouns) == 1 else None
        return out

    def extract(self, turns: Sequence[str]) -> list[Keyword]:
        """Keywords of the recent caller turns (oldest first), best first."""
        weights: dict[str, float] = {}
        first_seen: dict[str, int] = {}
        n = len(turns)
        order = 0
        for i, turn in enumerate(turns):
            recency = 1.0 if i == n - 1 else 0.6 ** (n - 1 - i)
            terms = [(t, 1.0) for t in self.candidates(turn)]
            for term in self.analyzer.expansions(turn):
                squashed = term.replace(" ", "")
                if squashed in self.analyzer.terms:
                    terms.append((squashed, 0.5))
            for term, w in terms:
                if len(term) < 2 or term in STOPWORDS or term in CONTEXT_WORDS or term.isdigit():
                    continue
                weights[term] = weights.get(term, 0.0) + recency * w
                if term not in first_seen:
                    first_seen[term] = order
                    order += 1
        scored: list[Keyword] = []
        for term, tf in weights.items():
            idf = max(self.idf(term), 0.1)
            bonus = 1.6 if term in self.analyzer.terms else 1.0
            length = 1.0 + 0.1 * min(len(term) - 2, 4)
            scored.append(Keyword(term, tf * idf * bonus * length))
        scored.sort(key=lambda k: (-k.score, first_seen[k.term]))
        # a part of a kept compound adds nothing (keep 버스전용차로, drop 전용/차로)
        kept: list[Keyword] = []
        for kw in scored:
            if any(kw.term in k.term for k in kept):
                continue
            kept.append(kw)
        if not kept:
            return []
        best = kept[0].score
        out = [
            k for i, k in enumerate(kept) if i < self.min_keywords or k.score >= self.relative_cutoff * best
        ]
        return out[: self.max_keywords]

    def terms(self, turns: Sequence[str]) -> list[str]:
        return [k.term for k in self.extract(turns)]
