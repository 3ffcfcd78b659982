"""Retention of the topics: a dead letter never outlives the original it copies.

Dead letters hold the raw bytes of the source record (call audio, unmasked transcripts), so each
DLQ keeps them no longer than its source topic does, in the registry and in what infra provisions.
"""

from __future__ import annotations

from streaming.topics import DLQ_RETENTION_MS, TOPICS, all_topic_specs, dlq_name

from .manifests import render_overlay
from .test_k8s import by_kind


def test_every_dlq_keeps_no_longer_than_its_source() -> None:
    specs = {s.name: s for s in all_topic_specs()}
    for name, source in TOPICS.items():
        if not source.dead_letters:  # a control topic (kb.versions): no dead letters
            assert dlq_name(name) not in specs
            continue
        dlq = specs[dlq_name(name)]
        assert dlq.retention_ms <= source.retention_ms, name
        assert dlq.retention_ms <= DLQ_RETENTION_MS
    # the personal-data topics, by name (the figures docs/security.md states)
    day = 24 * 3_600_000
    assert specs["call.audio.dlq"].retention_ms == 1 * day
    assert specs["call.transcripts.dlq"].retention_ms == 7 * day


def test_provisioned_dlqs_keep_no_longer_than_their_source() -> None:
    for overlay in ("staging", "production"):
        topics = {
            t["spec"]["topicName"]: t["spec"]["config"]
            for t in by_kind(render_overlay(overlay), "KafkaTopic").values()
        }
        for name in (n for n, spec in TOPICS.items() if spec.dead_letters):
            assert int(topics[dlq_name(name)]["retention.ms"]) <= int(topics[name]["retention.ms"]), (
                overlay,
                name,
            )
