"""The ingest protocol's pure side (no sockets, no Kafka): the start message, the caller number,
and a call's binary frames split into one :class:`~streaming.events.AudioFrame` per channel.

The WebSocket and Kafka side is :mod:`asr.gateway`; the messages themselves are
:mod:`streaming.ingest`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
from pydantic import ValidationError

from streaming.events import AudioFrame, Channel, Codec
from streaming.ingest import IngestStart

from .audio import bytes_per_sample

# --------------------------------------------------------------------------- protocol


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_start(raw: str) -> IngestStart:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError("bad_start", f"start message is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("bad_start", "start message is not a JSON object")
    if data.get("type") != "start":
        raise ProtocolError("out_of_order", f"expected a start message first, got type {data.get('type')!r}")
    codec = data.get("codec", Codec.pcm_s16le.value)
    if not isinstance(codec, str):  # a list or object here is not hashable: refuse it, do not raise
        raise ProtocolError("bad_start", f"codec must be a string, got {type(codec).__name__}")
    if codec not in {c.value for c in Codec}:
        raise ProtocolError("unknown_codec", f"codec {codec!r} is not one of {[c.value for c in Codec]}")
    try:
        start = IngestStart.model_validate(data)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:4])
        raise ProtocolError("bad_start", errs) from exc
    if len(start.channel_map) < start.channels:
        raise ProtocolError(
            "bad_start", f"channel_map names {len(start.channel_map)} of {start.channels} channels"
        )
    if len(set(start.channel_map[: start.channels])) != start.channels:
        raise ProtocolError("bad_start", "channel_map repeats a channel")
    return start


@dataclass
class CallSession:
    """State of one ingesting call."""

    start: IngestStart
    max_frame_ms: int
    started_mono: float = field(default_factory=time.monotonic)
    frames: int = 0
    samples: int = 0  # per channel
    seq: int = 0

    @property
    def channels(self) -> list[Channel]:
        return list(self.start.channel_map[: self.start.channels])

    @property
    def frame_bytes(self) -> int:
        return bytes_per_sample(self.start.codec) * self.start.channels

    @property
    def audio_s(self) -> float:
        return self.samples / self.start.sample_rate

    def split(self, data: bytes) -> list[AudioFrame]:
        """One binary message → one AudioFrame per channel. Raises ProtocolError."""
        if not data:
            raise ProtocolError("bad_frame", "empty binary frame")
        fb = self.frame_bytes
        if len(data) % fb:
            raise ProtocolError(
                "bad_frame",
                f"{len(data)} bytes is not a whole number of {self.start.channels}-channel "
                f"{self.start.codec.value} sample frames ({fb} bytes each)",
            )
        n = len(data) // fb
        ms = n * 1000 / self.start.sample_rate
        if ms > self.max_frame_ms:
            raise ProtocolError(
                "oversized", f"frame holds {ms:.0f} ms of audio; the limit is {self.max_frame_ms} ms"
            )
        bps = bytes_per_sample(self.start.codec)
        capture_ts = self.samples / self.start.sample_rate
        out = []
        for i, ch in enumerate(self.channels):
            payload = (
                data if self.start.channels == 1 else deinterleave_bytes(data, self.start.channels, i, bps)
            )
            out.append(
                AudioFrame(
                    call_id=self.start.call_id,
                    channel=ch,
                    seq=self.seq,
                    codec=self.start.codec,
                    sample_rate=self.start.sample_rate,
                    capture_ts=capture_ts,
                    audio=payload,
                )
            )
        self.seq += 1
        self.frames += 1
        self.samples += n
        return out


def deinterleave_bytes(data: bytes, channels: int, index: int, bytes_per_sample: int) -> bytes:
    """The bytes of channel ``index`` from interleaved sample frames (codec unchanged)."""
    dtype = "<i2" if bytes_per_sample == 2 else np.uint8
    return np.frombuffer(data, dtype=dtype)[index::channels].tobytes()
