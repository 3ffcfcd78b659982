"""Prometheus metrics shared by every service (each service exposes them on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("dasan_events_in_total", "Events consumed", ["topic", "type", "group"])
EVENTS_OUT = Counter("dasan_events_out_total", "Events produced", ["topic", "type"])
DUPLICATES = Counter(
    "dasan_duplicate_events_total", "Redelivered events absorbed by dedupe", ["topic", "group"]
)
DEAD_LETTERS = Counter(
    "dasan_dead_letters_total", "Messages sent to a dead-letter topic", ["topic", "reason"]
)
UNKNOWN_FIELDS = Counter(
    "dasan_unknown_fields_total",
    "Events of a known major version that carried fields this consumer does not know (dropped)",
    ["topic", "type"],
)
INGEST_REFUSED = Counter(
    "dasan_ingest_refused_total",
    "Ingest connections or calls the gateway refused or cut, by reason (unauthorized_<token reason>, "
    "busy, too_fast, max_duration)",
    ["reason"],
)
SHED = Counter(
    "dasan_assist_shed_total",
    "Suggestions retrieved from the caller's words only because they had waited too long (load shedding)",
    ["service"],
)
ERRORS = Counter("dasan_errors_total", "Errors by service and kind", ["service", "kind"])
COMMIT_FAILURES = Counter(
    "dasan_commit_failures_total",
    "Offset commits the group refused: the member was dropped, most often because its poll loop "
    "overran max.poll.interval (its records are delivered again)",
    ["group"],
)
CONSUMER_LAG = Gauge("dasan_consumer_lag", "Records behind the end of the assigned partitions", ["group"])
ACTIVE_CALLS = Gauge("dasan_active_calls", "Calls currently followed by this instance", ["service"])
BATCH_LIMIT = Gauge(
    "dasan_batch_limit",
    "Most suggestion requests the next tick may batch: batch_max, or fewer where a request's measured "
    "cost would overrun the tick's share of max.poll.interval",
    ["service"],
)
REBUILD_BACKLOG = Gauge(
    "dasan_rebuild_backlog_calls",
    "Taken-over calls whose history is still to be replayed (a rebuild replays them a tick's budget at "
    "a time; they get no card until replayed)",
    ["service"],
)
STAGE_LATENCY = Histogram(
    "dasan_stage_latency_seconds",
    "Latency of one processing stage",
    ["service", "stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
