"""Settings of the assist service (environment variables ``DASAN_ASSIST_*``).

The knowledge base has its own settings (``DASAN_KB_*``, :mod:`assist.knowledge.settings`) and Kafka
its shared ones (``DASAN_KAFKA_*``). Every field has a default and a description.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AssistSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DASAN_ASSIST_", extra="ignore")

    # Draft generation ------------------------------------------------------------------------
    generator: Literal["grounded", "llm"] = Field(
        default="grounded",
        description="grounded: deterministic extractive drafts (no model); llm: OpenAI-compatible chat endpoint",
    )
    llm_base_url: str = Field(
        default="http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible API (…/v1)"
    )
    llm_model: str = Field(default="qwen2.5-1.5b-instruct", description="Model name sent to the endpoint")
    llm_api_key: SecretStr | None = Field(default=None, description="Bearer token for the endpoint, if any")
    llm_timeout_s: float = Field(default=6.0, gt=0, description="Whole-request timeout; then grounded")
    llm_max_tokens: int = Field(default=320, ge=16, description="Token budget of one draft or summary")
    llm_temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature")

    # Retrieval and drafts ----------------------------------------------------------------------
    top_k: int = Field(default=5, ge=1, le=20, description="Passages shown with a suggestion")
    draft_passages: int = Field(
        default=1, ge=1, le=10, description="Passages a draft may draw on (1: the best)"
    )
    draft_max_sentences: int = Field(default=4, ge=1, le=10, description="Most sentences in one draft")
    draft_context_weight: float = Field(
        default=0.0,
        ge=0,
        le=2,
        description="Grounded drafts: weight of the counselor's last words (before the caller's question) "
        "beside the question's own terms when choosing the statute sentence (0: the question alone; "
        "measured with dasan eval sentences: no gain, see docs/assist.md)",
    )
    draft_dense_weight: float = Field(
        default=0.65,
        ge=0,
        le=1,
        description="Grounded drafts: weight of the dense side when choosing the statute sentence, the cosine "
        "of the question's query vector and each sentence's document vector, beside the lexical overlap "
        "(each scaled within the passage; 0: lexical only and no encoder call; 1: dense only). 0.65: chosen by "
        "dasan eval sentences over folds of calls where the lexical and the dense reference agree "
        "(docs/assist.md). Sentence vectors come from the index's store (dasan kb units); a passage it lacks "
        "is chosen lexically unless draft_dense_on_demand",
    )
    draft_dense_cache: int = Field(
        default=1024,
        ge=1,
        description="Grounded drafts with draft_dense_on_demand: passages whose sentence vectors, embedded on "
        "demand, are kept (least recently used dropped), so a card on an article already read embeds nothing",
    )
    draft_dense_on_demand: bool = Field(
        default=False,
        description="Grounded drafts with draft_dense_weight > 0: embed a passage's sentences when the index's "
        "precomputed unit vectors (dasan kb units) lack it (p50 ~250 ms a card, under the encoder's lock); "
        "false: such a passage's sentence is chosen lexically",
    )
    draft_article_passages: bool = Field(
        default=True,
        description="Grounded drafts with the dense side and stored unit vectors: read the passage of the card's "
        "article that holds the best-scoring sentence over the whole article, not only the passage retrieval "
        "matched (a long article is split into passages; the card shows the one read)",
    )
    draft_relative_score: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="A passage is drafted from only if its score ≥ this × the top score",
    )
    support_lexical_min: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Citation check: share of a sentence's content words in its passage",
    )
    support_embedding_min: float = Field(
        default=0.55, ge=-1, le=1, description="Citation check: cosine of sentence and passage (dense side)"
    )
    min_dense_confidence: float = Field(
        default=0.38,
        description="Least dense cosine of the top passage for a confident suggestion (on top of the knowledge "
        "base's own threshold); tuned on eval-dev for EmbeddingGemma bf16, 256-token article vectors",
    )
    corroborate_dense_min: float = Field(
        default=0.2, description="Lexical corroboration: least dense cosine of the top passage"
    )
    corroborate_bm25_min: float = Field(
        default=24.0,
        description="Lexical corroboration: least morpheme-BM25 score of the top passage (0: off); a hit "
        "the knowledge base is not confident about is still shown when both minimums are met",
    )
    rerank: bool = Field(
        default=True,
        description="Order the candidates with the learned second stage over the whole conversation "
        "(assist/knowledge/rerank.py; its out-of-scope model decides abstention); off: first-stage order",
    )
    abstain: bool = Field(
        default=True, description="Below the knowledge base's confidence threshold, say no source was found"
    )
    context_views: bool = Field(
        default=True,
        description="The second stage reads the conversation (the counselor's last turn, the history) beside "
        "the caller's words; off: the caller's words only (one query text a suggestion instead of three; "
        "what load shedding does to a late request, and how its quality cost is measured)",
    )
    shed_context_after_ms: int = Field(
        default=400,
        ge=0,
        description="Load shedding: a suggestion that has waited longer than this since it became due "
        "(Kafka wait included, the debounce not) is retrieved from the caller's words only, and its "
        "card says so; 0: never (docs/assist.md, 'Load shedding')",
    )

    # Per-call behaviour -------------------------------------------------------------------------
    recent_turns: int = Field(default=3, ge=1, le=20, description="Caller turns that form a query")
    query_max_chars: int = Field(default=300, ge=40, description="Longest query sent to retrieval")
    min_keywords: int = Field(default=3, ge=1, description="Fewest keywords shown (when the text has them)")
    max_keywords: int = Field(default=8, ge=1, le=12, description="Most keywords shown")
    min_evidence_terms: int = Field(
        default=1, ge=0, description="A caller segment triggers only if it adds this many content nouns"
    )
    follow_up_questions: bool = Field(
        default=True,
        description='A caller question with no content noun of its own ("안 하면요?", "그러면 뭘 받을 수 '
        "있는 거예요?\") triggers once the call has had a trigger: it asks within the call's topic, which "
        "the conversation-aware query reads from the turns before",
    )
    skip_closings: bool = Field(
        default=True,
        description="A caller turn that only closes (thanks, acknowledges, says what they will do; no "
        "question) puts no new card up (assist/dialogue.py)",
    )
    debounce_ms: int = Field(
        default=600,
        ge=0,
        description="Final caller segments closer than this (audio time) to the last trigger are merged",
    )
    repeat_window: int = Field(
        default=3,
        ge=0,
        description="A suggestion with the same three articles led by the same one as one of the last N "
        "shown is not repeated (nor one whose primary article and draft sentences equal the newest "
        "card's); the same three led by another article is a new card",
    )
    summary_grace_ms: int = Field(
        default=1000,
        ge=0,
        description="After CallEnded, wait this long for late transcripts before summarising",
    )
    call_idle_timeout_s: float = Field(
        default=3 * 3600, gt=0, description="A call with no events for this long is forgotten"
    )
    max_failures: int = Field(
        default=3,
        ge=1,
        description="A call whose suggestion or summary raised this many times in a row is dropped "
        "(logged and counted; the other calls of the batch are published)",
    )

    # Kafka and service ---------------------------------------------------------------------------
    group_id: str = Field(default="assist", description="Consumer group on call.events + call.transcripts")
    role: Literal["all", "cards", "summaries"] = Field(
        default="all",
        description="all: live cards and call summaries in one loop; cards: live cards only (a hang-up "
        "only closes the call); summaries: call summaries only, in their own consumer group "
        "(<GROUP_ID>-summaries) that also reads assist.suggestions for the cards shown — so a wave of "
        "hang-ups never delays a card (run one cards and one summaries deployment)",
    )
    summary_cards_wait_ms: int = Field(
        default=5000,
        ge=0,
        description="Role summaries: after the grace, wait at most this long for the cards of the call's "
        "last caller finals (the cards role publishes nothing for a card it does not repeat)",
    )
    shadow: str = Field(
        default="",
        pattern=r"^[a-z0-9][a-z0-9-]{0,39}$|^$",
        description="Run as shadow NAME: a candidate beside production, in its own consumer group "
        "(<GROUP_ID>-shadow-NAME), writing only to assist.suggestions.shadow (no counselor sees it); "
        "'' = production",
    )
    rebuild_lookback_s: float = Field(
        default=6 * 3600,
        gt=0,
        description="On taking over partitions, re-read this much history to rebuild open calls",
    )
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        description="Longest a fetch waits on the broker for new transcripts (latency vs. requests)",
    )
    poll_timeout_ms: int = Field(default=50, ge=1, description="Consumer poll timeout (timers run between)")
    batch_max: int = Field(
        default=32, ge=1, description="Most suggestion requests (across calls) retrieved in one batch"
    )
    batch_time_share: float = Field(
        default=0.5,
        gt=0,
        le=0.8,
        description="Longest share of the consumer's max.poll.interval that one tick's suggestion batch "
        "may take, by the cost of a request measured on this machine (fewer than batch_max on a slow "
        "core, so the group never drops the member); the summaries after it get the same share, at "
        "most 1.5 s",
    )
    health_host: str = Field(default="127.0.0.1", description="Bind address of /healthz /readyz /metrics")
    health_port: int = Field(default=8082, ge=0, le=65535, description="Port of the health server; 0: any")
    summary_confirm_min: float = Field(
        default=0.54,
        ge=-1,
        le=1,
        description="Without the learned confirmation (summary_confirm_learned): a card's article is cited "
        "in the summary when the counselor's answer after the card is at least this close to it (cosine; "
        "0.54 was chosen on all labelled calls by F0.5 — each held-out fold chose 0.54–0.57; "
        "`dasan eval rerank --live`, docs/assist.md)",
    )
    summary_confirm_learned: bool = Field(
        default=True,
        description="Cite a card's article in the summary by the learned confirmation "
        "(assist/summary_confirm.json, fitted by `dasan eval rerank --live-summaries --train`: the answer's "
        "closeness, the article's rank on its cards and in its law, how many cards showed it or its law, what "
        "the whole call's counselor turns say of it; candidates include the 2 articles of each card's law "
        "closest to the answer) when that file is "
        "present; false: by the closeness threshold summary_confirm_min alone, over the shown articles",
    )
    summary_max_facts: int = Field(default=5, ge=1, description="Most key facts in a summary")
    kb_topic: str = Field(
        default="kb.versions",
        description="Compacted topic announcing the active knowledge-base version (read from its start, "
        "outside any group, by every instance)",
    )
    kb_watch: bool = Field(
        default=True, description="Switch to a newly activated knowledge-base version without a restart"
    )
    search_district_boost: float = Field(
        default=0.15,
        ge=0,
        description="Counselor search: the caller's district ordinance gains this share of the top score",
    )
    summary_max_answers: int = Field(default=5, ge=1, description="Most counselor answers in a summary")

    @property
    def variant(self) -> str:
        """``production``, or ``shadow:<name>``: stamped on every event's provenance."""
        return f"shadow:{self.shadow}" if self.shadow else "production"

    @property
    def consumer_group(self) -> str:
        """The consumer group: a shadow never joins production's (it would take its partitions); the
        summaries role has its own (it must see every partition, beside the cards role's members)."""
        group = f"{self.group_id}-summaries" if self.role == "summaries" else self.group_id
        return f"{group}-shadow-{self.shadow}" if self.shadow else group

    @property
    def cards(self) -> bool:
        """This instance publishes live cards (``Suggestion`` / ``KeywordsUpdated``)."""
        return self.role in ("all", "cards")

    @property
    def summaries(self) -> bool:
        """This instance writes call summaries."""
        return self.role in ("all", "summaries")

    @model_validator(mode="after")
    def _keywords(self) -> AssistSettings:
        if self.min_keywords > self.max_keywords:
            raise ValueError("min_keywords must not exceed max_keywords")
        return self
