"""The counselor's own search and article look-up, over the same knowledge base as the cards.

Pure logic on a :class:`~assist.knowledge.kb.KnowledgeBase`: no HTTP, no clock. The assist service
serves it on its internal port (``/internal/search``, ``/internal/article``) and the console calls
that over loopback, so the console never loads the encoder.

- :func:`counselor_search`: hybrid search with the law / district / topic / as-of filters; a hit
  of the caller's district ordinance gets a boost (``district_boost`` of the top score), so it comes
  first when it is about as relevant as the city's or the nation's rule. Each result names the
  matching sentence and the character spans of the query's terms in it (for highlighting).
- :func:`article_version`: one exact version of a record (id + effective date), whether a newer one
  exists, and the 별표 of the same law its text mentions that the corpus has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from .corpus import in_force, version_key
from .records import Record, SearchFilters, SearchHit

SEOUL = "서울특별시"
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+|(?<=다\.)|\n+")
_APPENDIX = re.compile(r"별표\s*(\d+(?:의\d+)?)")


class SearchQuery(BaseModel):
    """What the counselor asked for (the query is already masked by whoever logs it)."""

    q: str = Field(min_length=1, max_length=200)
    law: str | None = None
    district: str | None = Field(default=None, description="A Seoul district, e.g. '강남구'")
    topic: str | None = None
    as_of: date | None = None
    k: int = Field(default=8, ge=1, le=20)


class SearchResult(BaseModel):
    record_id: str
    law_name: str
    article_no: str
    title: str | None
    citation: str
    jurisdiction: str
    applies_in: str = Field(description="Where the rule applies: 대한민국, 서울특별시 or 서울특별시 <구>")
    effective_date: date | None
    sentence: str = Field(description="The passage sentence that matches the query best")
    highlights: list[tuple[int, int]] = Field(
        default_factory=list, description="[start, end) character spans of query terms in the sentence"
    )
    score: float
    local: bool = Field(default=False, description="The caller's district ordinance")


class SearchAnswer(BaseModel):
    index_key: str
    results: list[SearchResult]


def district_place(district: str | None) -> str | None:
    """'강남구' → '서울특별시 강남구' (a full place name is kept as it is)."""
    if not district:
        return None
    district = district.strip()
    return district if district.startswith(SEOUL) else f"{SEOUL} {district}"


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _spans(sentence: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for term in terms:
        for m in re.finditer(re.escape(term), sentence):
            spans.append((m.start(), m.end()))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def best_sentence(text: str, terms: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence of ``text`` covering most query terms (the first one on a tie), and their spans."""
    terms = sorted({t for t in terms if len(t) >= 2 or t.isdigit()}, key=len, reverse=True)
    best: tuple[int, int, str, list[tuple[int, int]]] | None = None
    for i, sent in enumerate(sentences(text) or [text]):
        spans = _spans(sent, terms)
        covered = sum(e - s for s, e in spans)
        if best is None or covered > best[0]:
            best = (covered, i, sent, spans)
    assert best is not None
    return best[2], best[3]


def counselor_search(kb: Any, query: SearchQuery, district_boost: float = 0.15) -> SearchAnswer:
    """Search as a counselor does (see the module doc)."""
    place = district_place(query.district)
    filters = SearchFilters(
        law_names=[query.law] if query.law else [],
        applies_in=place,
        topics=[query.topic] if query.topic else [],
        **({"as_of": query.as_of} if query.as_of else {}),
    )
    hits: list[SearchHit] = kb.search(query.q, top_k=query.k * 2, filters=filters)
    if not hits:
        return SearchAnswer(index_key=kb.key, results=[])
    top = max(h.score for h in hits)
    bonus = district_boost * (abs(top) or 1.0)
    ranked = sorted(
        hits, key=lambda h: h.score + (bonus if place and h.jurisdiction == place else 0.0), reverse=True
    )
    terms = kb.analyzer.query_tokens(query.q, True) + query.q.split()
    out = []
    for h in ranked[: query.k]:
        sent, spans = best_sentence(h.text, terms)
        out.append(
            SearchResult(
                record_id=h.doc_id,
                law_name=h.law_name,
                article_no=h.article_no,
                title=h.article_title,
                citation=h.citation,
                jurisdiction=h.jurisdiction,
                applies_in=h.jurisdiction,
                effective_date=h.effective_date,
                sentence=sent,
                highlights=spans,
                score=round(float(h.score), 4),
                local=bool(place and h.jurisdiction == place),
            )
        )
    return SearchAnswer(index_key=kb.key, results=out)


class AppendixLink(BaseModel):
    record_id: str
    label: str = Field(description="e.g. '별표 1'")
    title: str | None


class ArticleVersion(BaseModel):
    index_key: str
    id: str
    kind: str
    citation: str
    law_name: str
    article_no: str
    article_title: str | None
    jurisdiction: str
    text: str
    effective_date: date | None
    expiry_date: date | None
    law_go_kr_url: str | None
    in_force: bool
    versions: list[date | None] = Field(
        description="Effective dates of every version of this id, oldest first"
    )
    newer_version: date | None = Field(description="Effective date of a later version, if there is one")
    appendices: list[AppendixLink] = Field(default_factory=list)


def _law_prefix(record_id: str) -> str:
    return record_id.rsplit("/", 1)[0]


def article_version(
    records_by_id: dict[str, list[Record]],
    index_key: str,
    record_id: str,
    effective_date: date | None = None,
    today: date | None = None,
) -> ArticleVersion | None:
    """The version of ``record_id`` that took effect on ``effective_date`` (None: the one in force
    ``today``, else the newest); None when the id (or that version) is unknown."""
    versions = sorted(records_by_id.get(record_id, []), key=version_key)
    if not versions:
        return None
    day = today or date.today()
    if effective_date is not None:
        found = [r for r in versions if r.effective_date == effective_date]
        if not found:
            return None
        rec = found[-1]
    else:
        current = [r for r in versions if in_force(r, day)]
        rec = (current or versions)[-1]
    later = [r.effective_date for r in versions if version_key(r) > version_key(rec)]
    prefix = _law_prefix(record_id)
    links = []
    seen = set()
    for m in _APPENDIX.finditer(rec.text):
        target = f"{prefix}/별표{m.group(1)}"
        if target == record_id or target in seen or target not in records_by_id:
            continue
        seen.add(target)
        app = records_by_id[target][-1]
        links.append(AppendixLink(record_id=target, label=f"별표 {m.group(1)}", title=app.article_title))
    return ArticleVersion(
        index_key=index_key,
        id=rec.id,
        kind=rec.kind,
        citation=rec.citation,
        law_name=rec.law_name,
        article_no=rec.article_no,
        article_title=rec.article_title,
        jurisdiction=rec.jurisdiction,
        text=rec.text,
        effective_date=rec.effective_date,
        expiry_date=rec.expiry_date,
        law_go_kr_url=rec.law_go_kr_url,
        in_force=in_force(rec, day),
        versions=[r.effective_date for r in versions],
        newer_version=later[-1] if later else None,
        appendices=links,
    )
