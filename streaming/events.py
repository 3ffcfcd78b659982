"""Typed, versioned event contracts: the only thing the packages share.

Every event carries ``schema_version``, an ``event_id`` (consumers dedupe on it) and the
``call_id`` (the Kafka key, so one call's events stay ordered on one partition).

Serialisation (see :mod:`streaming.codec`): compact JSON for every event except
:class:`AudioFrame`, whose value is the raw audio bytes with its metadata in a header.

Version policy: ``SCHEMA_VERSION`` is the major version. An additive, optional field keeps it;
a field removed, renamed or changed in meaning (or a new required field) bumps it. Consumers
accept ``schema_version <= SCHEMA_VERSION`` and send anything newer to the dead-letter topic, so an
old consumer never misreads a new event.

Producers are strict (``extra="forbid"``: a misspelt field in our own code is an error), consumers
are tolerant within their major version: :func:`streaming.codec.decode` validates with
:data:`DECODE_CONTEXT`, which drops fields this version does not know (at every nesting level)
instead of refusing the event. That is what lets a newer producer add an optional field during a
rolling upgrade without every older consumer dead-lettering its events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

SCHEMA_VERSION = 1

TOLERATE_UNKNOWN = "tolerate_unknown_fields"
"""Validation-context key: when true, fields a contract does not declare are dropped, not refused."""
IGNORED_FIELDS = "ignored_fields"
"""Validation-context key: a list that collects the dotted names of the fields that were dropped."""

CALL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
CallId = Annotated[str, Field(pattern=CALL_ID_PATTERN, description="Call id; also the Kafka key")]


def new_event_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Channel(StrEnum):
    """Who is speaking. Telephony delivers caller and counselor on separate channels."""

    caller = "caller"
    counselor = "counselor"


class Codec(StrEnum):
    pcm_s16le = "pcm_s16le"
    mulaw = "mulaw"
    alaw = "alaw"


class TranscriptSource(StrEnum):
    """Where a transcript came from: real ASR, or a scripted call injected by the simulator."""

    asr = "asr"
    scripted = "scripted"


class EndReason(StrEnum):
    """Why a call ended. Values are added within the major version (``too_fast`` and
    ``max_duration`` were): a consumer decoding a value it does not know reads it as ``error`` (see
    :class:`CallEnded`) instead of dead-lettering the event. Consumers deployed before that rule
    existed refuse new values, so roll out consumers before the gateway that sends them."""

    hangup = "hangup"
    idle_timeout = "idle_timeout"
    error = "error"
    gateway_shutdown = "gateway_shutdown"
    too_fast = "too_fast"  # audio ran ahead of the wall clock (the gateway's max_ahead_s)
    max_duration = "max_duration"  # the call reached the gateway's max_call_s


class Contract(BaseModel):
    """Base of every model on the wire: strict when built in code, tolerant when decoded.

    Built in code (a producer) an unknown field is an error (``extra="forbid"``). Validated with a
    context that sets :data:`TOLERATE_UNKNOWN` (the codec's decode), unknown fields of the same
    major version are dropped, and their names are appended to the context's
    :data:`IGNORED_FIELDS` list so the consumer can count them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_when_decoding(cls, data: object, info: ValidationInfo) -> object:
        ctx = info.context
        if not (isinstance(data, dict) and isinstance(ctx, dict) and ctx.get(TOLERATE_UNKNOWN)):
            return data
        known = cls.model_fields
        unknown = [k for k in data if k not in known]
        if not unknown:
            return data
        ignored = ctx.get(IGNORED_FIELDS)
        if isinstance(ignored, list):
            ignored.extend(f"{cls.__name__}.{k}" for k in unknown)
        return {k: v for k, v in data.items() if k in known}


class Event(Contract):
    """Fields every event has."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    event_id: str = Field(default_factory=new_event_id, min_length=8, max_length=64)
    call_id: CallId
    produced_at: datetime = Field(default_factory=utcnow)

    @field_validator("produced_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- call.events


class CallStarted(Event):
    type: Literal["call_started"] = "call_started"
    counselor_id: str = Field(min_length=1, max_length=64)
    team: str | None = Field(
        default=None, max_length=64, description="Counselor's team (supervisors see their team)"
    )
    queue: str | None = Field(default=None, max_length=64, description="IVR queue, if known")
    category: str | None = Field(default=None, max_length=64, description="Call category, if known")
    started_at: datetime = Field(default_factory=utcnow)
    caller_number_masked: str | None = Field(default=None, max_length=32, description="e.g. 010-****-5678")
    caller_key: str | None = Field(
        default=None,
        max_length=128,
        description="Keyed hash (HMAC-SHA256, site secret) of the caller number, for caller history",
    )
    channels: list[Channel] = Field(default_factory=lambda: [Channel.caller, Channel.counselor])
    source: TranscriptSource = TranscriptSource.asr


class CallEnded(Event):
    type: Literal["call_ended"] = "call_ended"
    ended_at: datetime = Field(default_factory=utcnow)
    reason: EndReason = EndReason.hangup
    detail: str | None = Field(default=None, max_length=500)
    duration_s: float | None = Field(default=None, ge=0)

    @field_validator("reason", mode="before")
    @classmethod
    def _unknown_reason_is_error(cls, v: object, info: ValidationInfo) -> object:
        """Decoding (tolerant context): a reason a newer producer added reads as ``error``; its name
        is counted with the ignored fields. Built in code, an unknown reason stays an error."""
        ctx = info.context
        if not (isinstance(ctx, dict) and ctx.get(TOLERATE_UNKNOWN)) or not isinstance(v, str):
            return v
        if v in EndReason.__members__.values():
            return v
        ignored = ctx.get(IGNORED_FIELDS)
        if isinstance(ignored, list):
            ignored.append("CallEnded.reason")
        return EndReason.error


# --------------------------------------------------------------------------- call.audio


class AudioFrame(Event):
    """One chunk of one channel of call audio.

    On the wire the value is ``audio`` itself (raw bytes); the other fields travel as JSON in
    the ``dasan-meta`` header.
    """

    type: Literal["audio_frame"] = "audio_frame"
    channel: Channel
    seq: int = Field(ge=0, description="Per call and channel, starts at 0, no gaps")
    codec: Codec
    sample_rate: Literal[8000, 16000]
    capture_ts: float = Field(ge=0, description="Call-relative time of the first sample, seconds")
    audio: bytes = Field(repr=False)

    @model_validator(mode="after")
    def _frame_size(self) -> AudioFrame:
        if not self.audio:
            raise ValueError("empty audio frame")
        if self.codec == Codec.pcm_s16le and len(self.audio) % 2:
            raise ValueError("pcm_s16le frame has an odd number of bytes")
        return self

    @property
    def num_samples(self) -> int:
        return len(self.audio) // 2 if self.codec == Codec.pcm_s16le else len(self.audio)

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


# --------------------------------------------------------------------------- call.transcripts


class TranscriptSegment(Event):
    """A partial (tentative, replaced later) or final (never changes) piece of transcript.

    ``segment_id`` is stable across a segment's partial revisions and its final; consumers show
    the highest ``revision`` and freeze the segment once ``is_final`` arrives.
    Raw text: only this topic and ``call.audio`` carry unmasked data (with a retention limit).
    """

    type: Literal["transcript_segment"] = "transcript_segment"
    segment_id: str = Field(min_length=1, max_length=80)
    channel: Channel
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str = Field(max_length=4000)
    is_final: bool
    revision: int = Field(default=0, ge=0)
    confidence: float | None = Field(default=None, ge=0, le=1)
    asr_model: str = Field(max_length=120)
    source: TranscriptSource = TranscriptSource.asr
    emitted_at: datetime = Field(default_factory=utcnow)
    audio_end_at: datetime | None = Field(
        default=None, description="Wall-clock time the segment's audio ended (for end-to-end latency)"
    )

    @model_validator(mode="after")
    def _times(self) -> TranscriptSegment:
        if self.end_s < self.start_s:
            raise ValueError("end_s before start_s")
        return self


# --------------------------------------------------------------------------- assist.suggestions


class RetrievedPassage(Contract):
    doc_id: str = Field(description="Corpus record id, e.g. 도로교통법/제32조")
    passage_id: str = Field(description="Passage id within the index, e.g. 도로교통법/제32조#2")
    citation: str = Field(description="「도로교통법」 제32조(정차 및 주차의 금지)")
    law_name: str
    article_no: str
    score: float
    snippet: str = Field(max_length=2000)
    effective_date: str | None = None
    ranks: dict[str, int] = Field(default_factory=dict, description="Per-method rank, e.g. bm25/dense")


class DraftSentence(Contract):
    text: str
    citations: list[str] = Field(min_length=1, description="passage_ids this sentence rests on")


class DraftAnswer(Contract):
    generator: str = Field(description="grounded | llm | …")
    sentences: list[DraftSentence] = Field(default_factory=list)
    abstained: bool = Field(default=False, description="No source good enough: say so instead of guessing")
    abstain_reason: str | None = None

    @model_validator(mode="after")
    def _abstain_or_cite(self) -> DraftAnswer:
        if not self.abstained and not self.sentences:
            raise ValueError("a draft that does not abstain needs at least one cited sentence")
        return self

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


class StageLatency(Contract):
    masking_ms: float = 0.0
    keywords_ms: float = 0.0
    retrieval_ms: float = 0.0
    draft_ms: float = 0.0
    total_ms: float = 0.0
    queue_ms: float = Field(default=0.0, description="Transcript on Kafka → picked up by assist")


class Provenance(Contract):
    """How a suggestion or summary was made: which index, encoder, generator and settings.

    Optional on :class:`Suggestion` and :class:`CallSummary` (added within schema version 1: older
    consumers drop it). Replay reports and the console's QA views compare it between runs.
    """

    index_key: str | None = Field(default=None, max_length=64, description="Knowledge index folder key")
    corpus_version: str | None = Field(
        default=None, max_length=64, description="Version (content hash) of the regulation corpus indexed"
    )
    encoder: str | None = Field(
        default=None, max_length=200, description="Embedding model and backend (None: BM25 only)"
    )
    encoder_hash: str | None = Field(default=None, max_length=64, description="Fingerprint of its weights")
    generator: str = Field(max_length=40, description="grounded | llm")
    generator_model: str | None = Field(default=None, max_length=200, description="The LLM, for llm")
    settings_hash: str = Field(
        max_length=64, description="Hash of the assist and retrieval settings that change what is shown"
    )
    variant: str = Field(
        default="production",
        max_length=80,
        description="production | shadow:<name> | replay:<run id> (who produced the event)",
    )


class KeywordsUpdated(Event):
    """The keyword chips for a call changed (published even when no new suggestion is due)."""

    type: Literal["keywords_updated"] = "keywords_updated"
    keywords: list[str] = Field(max_length=12)
    trigger_segment_ids: list[str] = Field(default_factory=list)


class Suggestion(Event):
    type: Literal["suggestion"] = "suggestion"
    suggestion_id: str = Field(min_length=1, max_length=80)
    trigger_segment_ids: list[str] = Field(min_length=1)
    query: str = Field(description="Masked query sent to retrieval", max_length=4000)
    keywords: list[str] = Field(default_factory=list, max_length=12)
    passages: list[RetrievedPassage] = Field(default_factory=list)
    draft: DraftAnswer
    latency: StageLatency = Field(default_factory=StageLatency)
    provenance: Provenance | None = Field(default=None, description="How it was made (optional)")
    shed: bool = Field(
        default=False,
        description="Retrieved from the caller's words only, without the conversation, because the "
        "service was behind (load shedding; added within schema version 1)",
    )

    @model_validator(mode="after")
    def _citations_resolve(self) -> Suggestion:
        known = {p.passage_id for p in self.passages}
        for s in self.draft.sentences:
            missing = [c for c in s.citations if c not in known]
            if missing:
                raise ValueError(f"draft cites passages that were not retrieved: {missing}")
        return self


# --------------------------------------------------------------------------- call.summaries


class FollowUpKind(StrEnum):
    transfer = "이관"
    registered = "접수"
    callback = "회신"
    informed = "안내"


class SummaryAction(Contract):
    kind: FollowUpKind
    text: str


class CallSummary(Event):
    """Written by assist when a call ends; masked throughout. Supervisors review it in the console."""

    type: Literal["call_summary"] = "call_summary"
    summary_id: str = Field(min_length=1, max_length=80)
    category: str = Field(max_length=64, description="민원 유형 from the fixed taxonomy (assist.taxonomy)")
    call_reason: str
    key_facts: list[str] = Field(default_factory=list)
    counselor_answers: list[str] = Field(
        default_factory=list, description="What the counselor told the caller"
    )
    actions: list[SummaryAction] = Field(default_factory=list)
    regulations_cited: list[str] = Field(default_factory=list, description="Corpus record ids")
    entities: dict[str, list[str]] = Field(default_factory=dict, description="places, dates, amounts …")
    keywords: list[str] = Field(default_factory=list)
    generator: str
    latency_ms: float = 0.0
    provenance: Provenance | None = Field(default=None, description="How it was made (optional)")


AnyEvent = Annotated[
    CallStarted | CallEnded | TranscriptSegment | KeywordsUpdated | Suggestion | CallSummary,
    Field(discriminator="type"),
]
"""Every JSON-serialised event (AudioFrame travels as raw bytes and is decoded separately)."""

EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        CallStarted,
        CallEnded,
        AudioFrame,
        TranscriptSegment,
        KeywordsUpdated,
        Suggestion,
        CallSummary,
    )
}
