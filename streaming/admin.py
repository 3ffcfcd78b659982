"""Topic provisioning through the Kafka admin API (idempotent)."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from .settings import KafkaSettings
from .topics import TopicSpec, all_topic_specs

log = logging.getLogger("dasan.topics")


def admin_client(settings: KafkaSettings | None = None) -> KafkaAdminClient:
    settings = settings or KafkaSettings()
    return KafkaAdminClient(**settings.common_config(), request_timeout_ms=15_000)


def create_topics(
    settings: KafkaSettings | None = None,
    *,
    partitions: int | None = None,
    replication_factor: int | None = None,
    with_configs: bool = True,
) -> dict[str, str]:
    """Create every registry topic that is missing. Returns {topic: 'created' | 'exists'}."""
    specs: list[TopicSpec] = all_topic_specs(partitions, replication_factor)
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        result: dict[str, str] = {}
        missing = []
        for spec in specs:
            if spec.name in existing:
                result[spec.name] = "exists"
            else:
                missing.append(
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        spec.replication_factor,
                        topic_configs=spec.kafka_configs() if with_configs else {},
                    )
                )
        for topic in missing:
            try:
                admin.create_topics([topic], validate_only=False)
                result[topic.name] = "created"
            except TopicAlreadyExistsError:  # a concurrent provisioner won the race
                result[topic.name] = "exists"
            log.info(
                "topic %s",
                result[topic.name],
                extra={"topic": topic.name, "partitions": topic.num_partitions},
            )
        return result
    finally:
        admin.close()


def describe_topics(settings: KafkaSettings | None = None) -> dict[str, int]:
    """{topic: partition count} for the topics the broker has."""
    admin = admin_client(settings)
    try:
        out = {}
        for t in admin.describe_topics():
            out[t.get("name") or t.get("topic")] = len(t.get("partitions") or [])
        return out
    finally:
        admin.close()
