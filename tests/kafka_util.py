"""The test broker, and reading what a test's calls left on a topic, straight from the partitions
(no consumer group)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streaming.admin import create_topics
from streaming.broker import LocalBroker
from streaming.codec import decode
from streaming.events import Event
from streaming.settings import KafkaSettings

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@contextmanager
def running_broker(log_name: str) -> Iterator[LocalBroker]:
    """A Tansu broker on a free loopback port (its log in test-artifacts/, when that folder exists)."""
    b = LocalBroker(log_path=ARTIFACTS / log_name if ARTIFACTS.exists() else None)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def broker_settings(broker: LocalBroker) -> KafkaSettings:
    """Settings for a test broker, with a short group join (Tansu waits for it); topics created."""
    s = KafkaSettings(bootstrap=broker.bootstrap, max_poll_interval_ms=3000)
    create_topics(s)
    return s


def read_records(kafka: Any, topic: str, call_ids: set[str], timeout_s: float = 30) -> list[Any]:
    """The records on ``topic`` keyed by these calls, from the beginning of every partition."""
    cfg = kafka.consumer_config(None)
    cfg.update(enable_auto_commit=False)
    c = KafkaConsumer(**cfg)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)  # a lower bound on Tansu (it may report the last batch)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = c.poll(timeout_ms=300)
            for recs in batches.values():
                out += [rec for rec in recs if rec.key and rec.key.decode() in call_ids]
            if not batches and all(c.position(tp) >= ends[tp] for tp in tps):
                break
        return out
    finally:
        c.close()


def read_topic(kafka: Any, topic: str, call_ids: set[str], timeout_s: float = 30) -> list[Event]:
    """Every event on ``topic`` for these calls, from the beginning of every partition."""
    return [
        decode(r.value, list(r.headers or []), r.key) for r in read_records(kafka, topic, call_ids, timeout_s)
    ]
