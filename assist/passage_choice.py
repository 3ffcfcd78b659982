"""Which passage of a card's article the draft reads.

A long article is split into passages (one or more 항 each), and retrieval ranks articles by the
passage that matched best. That passage is not always the one that answers: for "세금을 뭘 언제 내야
되는지" the first stage matches 「지방세법」 제20조 ⑤ (a creditor paying the 취득세 by subrogation), while
① (신고·납부 within 60 days) is what the caller needs. With the index's stored unit vectors
(:mod:`assist.unit_store`), the sentence choice can look at every sentence of the article at no
encoder cost: :func:`best_passage` scores all units of all the article's passages as the draft scores
one passage's (:meth:`assist.drafts.GroundedGenerator.unit_scores` over their union) and names the
passage holding the best one; :class:`ArticlePassages` swaps it into the card (same article, same
rank and score, the passage's own text and snippet), so the card, the draft and its citations agree.

Only where every passage of the article has stored vectors and the dense side is weighted: the
lexical side alone is not trusted to move a card between passages (docs/assist.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .drafts import GroundedGenerator, combine_scores
from .text import Unit, split_units


class ArticlePassages:
    """The passages of each article version in an index, in index order."""

    def __init__(self, passages: Sequence[Any]) -> None:
        self._by_article: dict[tuple[str, Any], list[Any]] = {}
        for p in passages:
            self._by_article.setdefault((p.doc_id, p.effective_date), []).append(p)

    def of(self, hit: Any) -> list[Any]:
        """Every passage of ``hit``'s article version (``hit``'s own among them)."""
        return self._by_article.get((hit.doc_id, hit.effective_date), [])

    def refine(
        self,
        gen: GroundedGenerator,
        query: str,
        hits: Sequence[Any],
        snippet: Callable[[str], str],
        first: int,
    ) -> list[Any]:
        """``hits`` with each of the ``first`` ones replaced by its article's passage whose unit the
        draft would choose (:func:`best_passage`); ``snippet(text)``: the snippet of a swapped-in passage."""
        out = list(hits)
        for k, hit in enumerate(out[:first]):
            better = best_passage(gen, query, hit, self.of(hit))
            if better is not None:
                out[k] = hit.model_copy(
                    update={
                        "passage_id": better.passage_id,
                        "text": better.text,
                        "snippet": snippet(better.text),
                    }
                )
        return out


@dataclass
class ArticleUnits:
    """Every unit of an article's passages, in order, scored against one text."""

    units: list[Unit]
    owner: list[Any]  # the passage each unit is in
    lexical: list[float]  # GroundedGenerator._score_units of the text's terms
    cosines: list[float]  # cosine of the text's query vector and each unit's stored vector


def article_units(gen: GroundedGenerator, text: str, siblings: Sequence[Any]) -> ArticleUnits | None:
    """The units of ``siblings`` (an article's passages) scored against ``text``, or None when the
    generator has no dense side or a passage lacks vectors."""
    if gen.dense is None:
        return None
    terms = gen.terms(text)
    out = ArticleUnits([], [], [], [])
    for p in siblings:
        units = split_units(p.text)
        if not units:
            continue
        cos = gen.dense.cosines(text, p, units)
        if cos is None:
            return None
        out.units += units
        out.owner += [p] * len(units)
        out.lexical += gen._score_units(terms, units)
        out.cosines += cos
    return out


def best_passage(gen: GroundedGenerator, query: str, hit: Any, siblings: Sequence[Any]) -> Any | None:
    """The passage among ``siblings`` (the article's passages) that holds the unit the draft scores
    best over all of them, or None: keep ``hit`` (it holds it, the article has one passage, there is
    no weighted dense side, or a passage lacks stored vectors)."""
    w = gen.settings.draft_dense_weight
    if len(siblings) < 2 or w <= 0 or not query.strip():
        return None
    art = article_units(gen, query, siblings)
    if art is None or not art.units:
        return None
    exceptions = [u.text.startswith("다만") for u in art.units]
    scores = combine_scores(art.lexical, art.cosines, w, exceptions)
    best = art.owner[max(range(len(scores)), key=lambda j: scores[j])]
    return None if best.passage_id == hit.passage_id else best
