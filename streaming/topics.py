"""The topic registry: names, partition counts, retention and which events each topic carries.

This is the one place topics are defined. ``dasan topics create`` provisions them (idempotently,
through the Kafka admin API), the infra topic Job is checked against it, and consumers use it to
know which dead-letter topic belongs to their input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    event_types: tuple[str, ...]
    description: str
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)
    dead_letters: bool = True  # a dead-letter topic of its own (not for a control topic)

    @property
    def dlq(self) -> str:
        return dlq_name(self.name)

    def kafka_configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), **self.configs}


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


CALL_EVENTS = "call.events"
CALL_AUDIO = "call.audio"
CALL_TRANSCRIPTS = "call.transcripts"
ASSIST_SUGGESTIONS = "assist.suggestions"
CALL_SUMMARIES = "call.summaries"
ASSIST_SUGGESTIONS_SHADOW = "assist.suggestions.shadow"
KB_VERSIONS = "kb.versions"

# Partition counts bound the parallelism of each consumer group (one partition → one member).
# 12 divides evenly across 1, 2, 3, 4, 6 and 12 instances.
TOPICS: dict[str, TopicSpec] = {
    t.name: t
    for t in (
        TopicSpec(CALL_EVENTS, 12, 90 * DAY_MS, ("call_started", "call_ended"), "Call lifecycle"),
        TopicSpec(
            CALL_AUDIO,
            12,
            1 * DAY_MS,
            ("audio_frame",),
            "Raw call audio per channel (personal data: short retention)",
            configs={"max.message.bytes": "1048576"},
        ),
        TopicSpec(
            CALL_TRANSCRIPTS,
            12,
            7 * DAY_MS,
            ("transcript_segment",),
            "Partial and final transcript segments, unmasked (personal data: limited retention)",
        ),
        TopicSpec(
            ASSIST_SUGGESTIONS,
            12,
            90 * DAY_MS,
            ("suggestion", "keywords_updated"),
            "Keywords and cited draft answers (masked)",
        ),
        TopicSpec(CALL_SUMMARIES, 12, 90 * DAY_MS, ("call_summary",), "Call summaries (masked)"),
        # after the production topics: topic_for_event() finds those first
        TopicSpec(
            ASSIST_SUGGESTIONS_SHADOW,
            12,
            14 * DAY_MS,
            ("suggestion", "keywords_updated", "call_summary"),
            "Shadow assists' output (candidate configurations, masked): recorded for QA, shown to no counselor",
        ),
        TopicSpec(
            KB_VERSIONS,
            1,
            365 * DAY_MS,
            (),
            "The active knowledge-base version (key 'active', JSON {key, how, at}); compacted, read from "
            "its start by every assist instance (dasan kb activate|rollback|import --activate)",
            configs={"cleanup.policy": "compact"},
            dead_letters=False,
        ),
    )
}

DLQ_RETENTION_MS = 14 * DAY_MS
"""The longest a dead letter is kept: time for an operator to look at it and replay it."""


def dlq_retention_ms(source: TopicSpec) -> int:
    """A dead letter holds the source record's raw bytes (audio, unmasked text): it is kept no
    longer than its source topic keeps the original, and at most :data:`DLQ_RETENTION_MS`."""
    return min(DLQ_RETENTION_MS, source.retention_ms)


def all_topic_specs(partitions: int | None = None, replication_factor: int | None = None) -> list[TopicSpec]:
    """Every topic including one dead-letter topic per input topic.

    ``partitions``/``replication_factor`` override the registry (e.g. 1 partition in a tiny dev
    broker, 3 replicas in production).
    """
    out: list[TopicSpec] = []
    for spec in TOPICS.values():
        p = partitions or spec.partitions
        rf = replication_factor or spec.replication_factor
        out.append(
            TopicSpec(
                spec.name,
                p,
                spec.retention_ms,
                spec.event_types,
                spec.description,
                rf,
                spec.configs,
                spec.dead_letters,
            )
        )
        if not spec.dead_letters:
            continue
        out.append(
            TopicSpec(
                spec.dlq,
                min(p, 3),
                dlq_retention_ms(spec),
                (),
                f"Dead letters of {spec.name}: raw bytes + error + source offset in headers",
                rf,
                {"max.message.bytes": "8388608"},
            )
        )
    return out


def topic_for_event(event_type: str) -> str:
    for spec in TOPICS.values():
        if event_type in spec.event_types:
            return spec.name
    raise KeyError(f"no topic carries event type {event_type!r}")
