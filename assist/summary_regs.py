"""Which regulations a call summary cites: articles of the cards shown during the call that the
counselor's answer after each card confirms. Precision first: a summary that names a law the call
was not about misleads whoever reads it later, and searching every sentence of a call for articles
(the earlier way) cited mostly irrelevant ones.

A card's article is confirmed when the counselor's next turns (up to ``ANSWER_TURNS``) are close to
it: the cosine between those turns, embedded as a query, and the article's best passage vector
(the dense side); on an index without one, the share of the article title's nouns the answer says.
The threshold is the assist setting ``summary_confirm_min``, chosen by cross-validation over labelled
calls (``dasan eval assist`` reports the held-out figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streaming.events import Channel

ANSWER_TURNS = 2  # counselor turns after a card that may confirm it


@dataclass(frozen=True)
class CardEvidence:
    card: int  # index of the card in the call
    doc_id: str
    rank: int  # 0: the card's primary citation
    score: float


def answer_after(turns: Sequence[Any], pos: int) -> str:
    """The counselor's turns that follow position ``pos`` (at most ``ANSWER_TURNS``)."""
    out: list[str] = []
    for t in turns[pos + 1 :]:
        if t.channel == Channel.counselor and t.text.strip():
            out.append(t.text.strip())
            if len(out) >= ANSWER_TURNS:
                break
    return " ".join(out)


class RegulationConfirmer:
    def __init__(self, kb: Any) -> None:
        self.kb = kb
        self._rows: dict[str, np.ndarray] = {}
        by_doc: dict[str, list[int]] = {}
        for i, p in enumerate(kb.passages):
            by_doc.setdefault(p.doc_id, []).append(i)
        self.passages_of = by_doc

    def evidence(
        self, turns: Sequence[Any], cards: Sequence[tuple[int, Sequence[str]]]
    ) -> list[CardEvidence]:
        """Every (card, article) pair with the closeness of the counselor's answer to the article."""
        answers = [answer_after(turns, pos) for pos, _docs in cards]
        out: list[CardEvidence] = []
        if not cards:
            return out
        if self.kb.dense is not None:
            todo = [a for a in answers if a]
            vecs = dict(zip(todo, self.kb.encode_queries(todo), strict=True)) if todo else {}
        for k, ((_pos, docs), answer) in enumerate(zip(cards, answers, strict=True)):
            for r, doc in enumerate(docs):
                out.append(
                    CardEvidence(
                        k, doc, r, self._score(doc, answer, vecs if self.kb.dense is not None else None)
                    )
                )
        return out

    def _score(self, doc: str, answer: str, vecs: dict[str, np.ndarray] | None) -> float:
        plist = self.passages_of.get(doc, [])
        if not answer or not plist:
            return 0.0
        if vecs is not None:
            rows = np.unique(self.kb.unit_of[plist])
            return float((self.kb.dense.matrix[rows] @ vecs[answer]).max())
        title = self.kb.passages[plist[0]].article_title or ""
        terms = {t for t in self.kb.analyzer.nouns(title) if len(t) >= 2}
        said = set(self.kb.analyzer.nouns(answer))
        return len(terms & said) / len(terms) if terms else 0.0

    @staticmethod
    def confirmed(evidence: Sequence[CardEvidence], threshold: float, max_regs: int = 10) -> list[str]:
        docs = [e.doc_id for e in evidence if e.score >= threshold]
        return list(dict.fromkeys(docs))[:max_regs]
