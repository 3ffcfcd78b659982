"""Write topics.yaml (Strimzi KafkaTopic resources) from the topic registry in streaming/topics.py.

    .venv/bin/python infra/k8s/platform/render_topics.py

tests/infra checks that topics.yaml matches the registry, so a change to streaming/topics.py
that is not rendered here fails CI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from streaming.topics import all_topic_specs  # noqa: E402

REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = "2"
OUT = Path(__file__).with_name("topics.yaml")


def topic_resources() -> list[dict[str, Any]]:
    out = []
    for spec in all_topic_specs(replication_factor=REPLICATION_FACTOR):
        config = {**spec.kafka_configs(), "min.insync.replicas": MIN_INSYNC_REPLICAS}
        out.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": {"name": spec.name, "labels": {"strimzi.io/cluster": "dasan-kafka"}},
                "spec": {
                    "topicName": spec.name,
                    "partitions": spec.partitions,
                    "replicas": spec.replication_factor,
                    "config": config,
                },
            }
        )
    return out


def render() -> str:
    header = (
        "# GENERATED from streaming/topics.py by infra/k8s/platform/render_topics.py: do not edit.\n"
        "# Every registry topic and its dead-letter topic, 3 replicas, min.insync.replicas 2.\n"
    )
    return header + yaml.safe_dump_all(topic_resources(), sort_keys=False, allow_unicode=True)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
