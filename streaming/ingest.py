"""The audio ingest protocol: what a telephony media fork (or the simulator) says to the ASR gateway.

One WebSocket per call at ``ws://<gateway>/v1/ingest``:

1. client → ``IngestStart`` (JSON text message)
2. gateway → ``IngestAccepted`` or ``IngestError`` (then close)
3. client → binary frames of audio. Two-channel audio is interleaved per sample
   (caller first, counselor second), exactly as a stereo WAV stores it. Each binary message
   must hold a whole number of sample frames and at most ``max_frame_ms`` of audio.
4. client → ``IngestEnd`` (JSON text message); gateway → ``IngestClosed`` and closes.

Any protocol violation gets an ``IngestError`` with a code, then a close with WebSocket code
1003 (unsupported data) or 1008 (policy). A call that goes silent for the idle timeout is
ended with ``CallEnded(reason=idle_timeout)``. A gateway at capacity answers ``IngestError``
with code ``busy`` (close 1013, try again later) so the media fork can route elsewhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .events import CALL_ID_PATTERN, Channel, Codec

INGEST_PATH = "/v1/ingest"


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestStart(_Msg):
    type: Literal["start"] = "start"
    call_id: str = Field(pattern=CALL_ID_PATTERN)
    counselor_id: str = Field(min_length=1, max_length=64)
    team: str | None = None
    queue: str | None = None
    category: str | None = None
    caller_number: str | None = Field(
        default=None, max_length=32, description="Raw; the gateway masks and hashes it"
    )
    codec: Codec = Codec.pcm_s16le
    sample_rate: Literal[8000, 16000] = 8000
    channels: Literal[1, 2] = 2
    channel_map: list[Channel] = Field(
        default_factory=lambda: [Channel.caller, Channel.counselor],
        description="Which speaker each interleaved channel is; mono uses the first entry",
    )


class IngestEnd(_Msg):
    type: Literal["end"] = "end"
    reason: Literal["hangup", "error"] = "hangup"


class IngestAccepted(_Msg):
    type: Literal["accepted"] = "accepted"
    call_id: str
    max_frame_ms: int


class IngestError(_Msg):
    type: Literal["error"] = "error"
    code: Literal[
        "bad_start",
        "bad_frame",
        "unknown_codec",
        "oversized",
        "out_of_order",
        "busy",
        "idle_timeout",
        "internal",
    ]
    message: str


class IngestClosed(_Msg):
    type: Literal["closed"] = "closed"
    call_id: str
    frames: int
    audio_s: float
