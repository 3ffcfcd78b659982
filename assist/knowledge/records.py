"""Data records of the knowledge base: corpus records, passages, search filters and hits (pydantic)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    """One corpus record (an article 조문, an appendix title 별표, or an operator's guide/FAQ entry)."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str = "조문"
    law_name: str = ""
    law_type: str | None = None
    jurisdiction: str = "대한민국"
    article_no: str = ""
    article_title: str | None = None
    citation: str = ""
    text: str
    effective_date: date | None = None
    expiry_date: date | None = Field(default=None, description="Optional: last day in force")
    topics: list[str] = Field(default_factory=list)
    law_go_kr_url: str | None = None


class PassageSource(BaseModel):
    """Where a passage comes from: its article, as a passage and a search hit both name it."""

    passage_id: str
    doc_id: str
    citation: str
    law_name: str
    article_no: str
    article_title: str | None
    jurisdiction: str
    topics: list[str]
    effective_date: date | None


SOURCE_FIELDS = frozenset(PassageSource.model_fields)


class Passage(PassageSource):
    """A retrievable unit: a whole short article, or one or more 항 of a long one."""

    version: str = Field(description="Record version key (effective date), distinguishes versions of one id")
    expiry_date: date | None = None
    paragraphs: list[str] = Field(default_factory=list, description="항 markers covered, e.g. ['①', '②']")
    text: str


class SearchFilters(BaseModel):
    """Restrict a search. Empty lists mean no restriction.

    ``jurisdictions`` matches a record's jurisdiction exactly; ``applies_in`` keeps the rules that apply
    in one place: national law, the city's ordinances and that district's ordinances (e.g.
    ``서울특별시 송파구`` keeps 대한민국, 서울특별시 and 서울특별시 송파구, drops 서울특별시 강남구).
    ``as_of`` (default today) applies the effective-date rule.
    """

    law_names: list[str] = Field(default_factory=list)
    jurisdictions: list[str] = Field(default_factory=list)
    applies_in: str | None = None
    topics: list[str] = Field(default_factory=list)
    as_of: date = Field(default_factory=date.today)


class SearchHit(PassageSource):
    text: str = Field(description="Passage text")
    snippet: str
    score: float = Field(description="Fused score (higher is better)")
    ranks: dict[str, int] = Field(default_factory=dict, description="1-based rank per method (bm25, dense)")
    scores: dict[str, float] = Field(default_factory=dict, description="Raw score per method")
