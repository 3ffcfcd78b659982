"""The audio ingest protocol: what a telephony media fork (or the simulator) says to the ASR gateway.

One WebSocket per call at ``ws://<gateway>/v1/ingest``:

1. client → ``IngestStart`` (JSON text message) carrying a start ``token``: HMAC-SHA256 of the
   call's identity (call id, counselor, team, caller number) and an expiry, under the site's ingest
   secret (:func:`sign_start`). The gateway verifies it (:func:`verify_start`) before anything else
   happens; a missing, malformed, expired or wrong token gets ``IngestError`` code ``unauthorized``.
2. gateway → ``IngestAccepted`` or ``IngestError`` (then close)
3. client → binary frames of audio. Two-channel audio is interleaved per sample
   (caller first, counselor second), exactly as a stereo WAV stores it. Each binary message
   must hold a whole number of sample frames and at most ``max_frame_ms`` of audio.
4. client → ``IngestEnd`` (JSON text message); gateway → ``IngestClosed`` and closes.

Any protocol violation gets an ``IngestError`` with a code, then a close with WebSocket code
1003 (unsupported data) or 1008 (policy). A call that goes silent for the idle timeout is
ended with ``CallEnded(reason=idle_timeout)``. A gateway at capacity answers ``IngestError``
with code ``busy`` (close 1013, try again later) so the media fork can route elsewhere. Audio
must arrive at about real time: a call whose audio runs more than the gateway's ``max_ahead_s``
ahead of the wall clock since its start is ended (code ``too_fast``), and a call longer than
``max_call_s`` is ended (code ``max_duration``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
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
    token: str | None = Field(
        default=None,
        max_length=200,
        description="Start token (sign_start) over call_id, counselor_id, team and caller_number",
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
        "unauthorized",
        "too_fast",
        "max_duration",
    ]
    message: str


class IngestClosed(_Msg):
    type: Literal["closed"] = "closed"
    call_id: str
    frames: int
    audio_s: float


# --------------------------------------------------------------------------- start token

TOKEN_VERSION = "v1"
_TOKEN_DOMAIN = "dasan-ingest-start-v1"  # the signature covers what the token is for


class StartTokenError(Exception):
    """A start token that does not authorise this start. ``reason`` is a metric label:
    missing | malformed | bad_signature | expired | too_far_ahead."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _signed_bytes(
    call_id: str, counselor_id: str, team: str | None, caller_number: str | None, exp: int
) -> bytes:
    # A JSON array: every field delimited and escaped, None distinct from "" — no two different
    # starts encode to the same bytes.
    return json.dumps(
        [_TOKEN_DOMAIN, call_id, counselor_id, team, caller_number, exp],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def _mac(secret: str, payload: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_start(
    secret: str,
    call_id: str,
    counselor_id: str,
    team: str | None,
    caller_number: str | None,
    expires_at: datetime,
) -> str:
    """The start token ``v1.<unix expiry>.<urlsafe base64 HMAC-SHA256>`` (what the PBX adapter sends)."""
    if not secret:
        raise ValueError("an empty ingest secret signs nothing")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    exp = int(expires_at.timestamp())
    mac = _mac(secret, _signed_bytes(call_id, counselor_id, team, caller_number, exp))
    return f"{TOKEN_VERSION}.{exp}.{mac}"


def start_token(
    secret: str,
    call_id: str,
    counselor_id: str,
    team: str | None,
    caller_number: str | None,
    ttl_s: float = 60.0,
    now: datetime | None = None,
) -> str:
    """:func:`sign_start` for a call starting now, valid for ``ttl_s`` seconds."""
    expires_at = (now or datetime.now(UTC)) + timedelta(seconds=ttl_s)
    return sign_start(secret, call_id, counselor_id, team, caller_number, expires_at)


def verify_start(
    secrets: str | Sequence[str],
    token: str | None,
    call_id: str,
    counselor_id: str,
    team: str | None,
    caller_number: str | None,
    *,
    max_ttl_s: float,
    now: datetime | None = None,
) -> datetime:
    """Check ``token`` against the start's fields; its expiry, or :class:`StartTokenError`.

    ``secrets``: the current site secret, optionally followed by the previous one (rotation). A token
    must not have expired at ``now`` and must not expire more than ``max_ttl_s`` after it.
    """
    if not token:
        raise StartTokenError("missing", "the start message has no token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION or not parts[1].isascii() or not parts[1].isdigit():
        raise StartTokenError("malformed", "the start token is not v1.<expiry>.<signature>")
    if len(parts[1]) > 12 or not parts[2].isascii() or len(parts[2]) != 43:
        raise StartTokenError("malformed", "the start token is not v1.<expiry>.<signature>")
    exp = int(parts[1])
    payload = _signed_bytes(call_id, counselor_id, team, caller_number, exp)
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    # Every key is tried (no early exit): the time taken does not tell which one matched.
    ok = False
    for key in keys:
        if key:
            ok |= hmac.compare_digest(_mac(key, payload).encode("ascii"), parts[2].encode("ascii"))
    if not ok:
        raise StartTokenError(
            "bad_signature", "the start token was not signed for this call with the site secret"
        )
    now_ts = (now or datetime.now(UTC)).timestamp()
    if exp <= now_ts:
        raise StartTokenError("expired", "the start token has expired")
    if exp - now_ts > max_ttl_s:
        raise StartTokenError("too_far_ahead", f"the start token expires more than {max_ttl_s:g} s ahead")
    return datetime.fromtimestamp(exp, UTC)
