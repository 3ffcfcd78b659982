"""The sizing model of infra/CAPACITY.md (infra/capacity.py) is consistent with the wire format."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from streaming.topics import TOPICS

from .manifests import INFRA


@pytest.fixture(scope="module")
def capacity() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capacity", INFRA / "capacity.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["capacity"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def traffic(capacity: ModuleType, **kw: object) -> Any:  # infra/capacity.py's Traffic
    base = dict(
        concurrent_calls=500, calls_per_day=30_000, avg_call_s=240.0, retention_days=90,
        replication_factor=3, codec="mulaw", sample_rate=8000, frame_ms=100, channels=2,
        partials_per_s=0.5, finals_per_min=6.0, suggestions_per_call=6.0, keyword_updates_per_call=10.0,
    )  # fmt: skip
    base.update(kw)
    return capacity.Traffic(**base)


def test_audio_bytes_follow_codec_and_frame_size(capacity: ModuleType) -> None:
    mulaw = capacity.event_sizes(traffic(capacity))
    pcm = capacity.event_sizes(traffic(capacity, codec="pcm_s16le"))
    assert mulaw["audio_payload"] == 800 and pcm["audio_payload"] == 1600
    assert 800 <= pcm["audio_frame"] - mulaw["audio_frame"] <= 820  # + the codec name in the metadata
    assert mulaw["audio_frame"] > mulaw["audio_payload"]  # key, headers (metadata JSON), overhead
    assert mulaw["suggestion"] > mulaw["transcript_segment"] > 0


def test_model_scales_linearly_and_caps_retention_at_the_topic(capacity: ModuleType) -> None:
    t = traffic(capacity)
    one = capacity.model(t)
    two = capacity.model(dataclasses.replace(t, concurrent_calls=1000))
    rows1 = {r["topic"]: r for r in one["kafka"]}
    rows2 = {r["topic"]: r for r in two["kafka"]}
    assert set(rows1) == set(TOPICS)
    for topic in TOPICS:
        r1, r2 = rows1[topic]["peak_records_per_s"], rows2[topic]["peak_records_per_s"]
        assert r2 == pytest.approx(2 * r1, abs=0.2)
        assert rows2[topic]["peak_MB_per_s"] == pytest.approx(2 * rows1[topic]["peak_MB_per_s"], abs=0.002)
        assert rows1[topic]["partitions"] == TOPICS[topic].partitions
    assert rows1["call.audio"]["retention_days"] == 1  # the topic keeps audio one day only
    assert rows1["call.summaries"]["retention_days"] == 90
    # 500 calls × 2 channels × 10 frames/s
    assert rows1["call.audio"]["peak_records_per_s"] == 10_000
    short = capacity.model(dataclasses.replace(t, retention_days=30))
    assert short["postgres_GB_retention"] == pytest.approx(one["postgres_GB_retention"] / 3, rel=0.01)


def test_cli_writes_json(capacity: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "cap.json"
    assert capacity.main(["--concurrent", "50", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["traffic"]["concurrent_calls"] == 50 and data["kafka_disk_TB_total"] > 0
