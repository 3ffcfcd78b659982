"""Fixtures of the ASR tests: the real Whisper base model (loaded once) and Kafka readers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from asr.settings import AsrSettings
from streaming.codec import decode
from streaming.events import Event
from streaming.settings import KafkaSettings

AUDIO_DEV = "audio-dev"


@pytest.fixture(scope="session")
def asr_settings() -> AsrSettings:
    return AsrSettings(cpu_threads=1, device="cpu")


@pytest.fixture(scope="session")
def whisper_decoder(asr_settings: AsrSettings):
    from asr.decoder import WhisperDecoder

    return WhisperDecoder.load(asr_settings)


@pytest.fixture(scope="session")
def audio_dev(shared_dir: Path) -> list[dict]:
    from asr.evaluate import load_manifest

    manifest = shared_dir / AUDIO_DEV / "manifest.jsonl"
    rows = load_manifest(manifest)
    for r in rows:
        r["path"] = manifest.parent / r["audio"]
    return rows


def load_mono(path: Path) -> tuple[np.ndarray, int]:
    from asr.offline import read_audio

    audio, rate = read_audio(path)
    return audio[:, 0], rate


def read_events(
    kafka_settings: KafkaSettings,
    topic: str,
    call_id: str,
    until: Callable[[list[Event]], bool],
    timeout_s: float = 60.0,
) -> list[Event]:
    """Events of one call on ``topic`` (from the beginning), until ``until(events)`` or timeout."""
    from kafka import KafkaConsumer, TopicPartition

    cfg = kafka_settings.common_config()
    consumer = KafkaConsumer(**cfg, enable_auto_commit=False, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Event] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for _tp, recs in consumer.poll(timeout_ms=300).items():
                for rec in recs:
                    if rec.key == call_id.encode():
                        out.append(decode(rec.value, list(rec.headers or []), rec.key))
            if until(out):
                break
        return out
    finally:
        consumer.close()
