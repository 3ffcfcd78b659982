"""The call simulator: plays calls into the system as a telephony platform would.

Two sources:

* **audio** (`dasan simulate audio FILE…`): WAV/FLAC files, mono or stereo (channel 0 = caller,
  channel 1 = counselor), streamed in real time (or faster) over the ASR gateway's WebSocket
  ingest protocol (``streaming.ingest``) as 20 ms frames of PCM16, μ-law or A-law at 8 or 16 kHz.
* **script** (`dasan simulate script calls.jsonl`): written calls (``../shared/eval-dev/calls.jsonl``
  format) injected at ``call.transcripts`` with realistic timing, as ASR would publish them:
  partial hypotheses that grow about once a second, then the final, then the other speaker.
  These calls carry ``source=scripted`` so the console labels them as not transcribed.

``--calls N --concurrency M`` repeats the input to N calls with at most M at once (load).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from streaming.events import CallEnded, CallStarted, Channel, EndReason, TranscriptSegment, TranscriptSource
from streaming.ingest import INGEST_PATH, IngestEnd, IngestStart, start_token
from streaming.kafka import EventProducer
from streaming.settings import KafkaSettings

log = logging.getLogger("dasan.simulator")

SCRIPTED_MODEL = "scripted (simulator)"
SYLLABLES_PER_S = 5.5  # conversational Korean
FRAME_MS = 20


# --------------------------------------------------------------------------- G.711 encoders
def _mulaw_encode(pcm: np.ndarray) -> bytes:
    """ITU-T G.711 μ-law, 16-bit linear → 8-bit codes (14-bit magnitude, bias 33, as the reference coder)."""
    seg_end = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    x = pcm.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + 0x21
    seg = np.searchsorted(seg_end, mag)
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8).tobytes()


def _alaw_encode(pcm: np.ndarray) -> bytes:
    """ITU-T G.711 A-law, 16-bit linear → 8-bit codes."""
    x = pcm.astype(np.int32) >> 3  # 13-bit
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.where(x >= 0, x, -x - 1)
    mag = np.minimum(mag, 0x0FFF)
    exponent = np.where(mag < 32, 0, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, mag >> 1, mag >> exponent) & 0x0F
    code = (sign | (exponent << 4) | mantissa) ^ 0x55
    return code.astype(np.uint8).tobytes()


def encode_audio(pcm: np.ndarray, codec: str) -> bytes:
    """Interleaved int16 samples → wire bytes of ``codec``."""
    if codec == "pcm_s16le":
        return pcm.astype("<i2").tobytes()
    if codec == "mulaw":
        return _mulaw_encode(pcm)
    if codec == "alaw":
        return _alaw_encode(pcm)
    raise ValueError(f"unknown codec {codec}")


def load_audio(path: Path, rate: int) -> np.ndarray:
    """A WAV/FLAC file → int16 array of shape (samples, channels) at ``rate``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != rate:
        g = math.gcd(sr, rate)
        data = resample_poly(data, rate // g, sr // g, axis=0)
    return (np.clip(data, -1, 1) * 32767).astype(np.int16)


# --------------------------------------------------------------------------- audio over WebSocket
@dataclass
class AudioCallResult:
    call_id: str
    audio_s: float
    frames: int
    wall_s: float
    utterance_end_wall: list[float] = field(default_factory=list)
    error: str | None = None


async def play_audio_call(
    gateway: str,
    path: Path,
    *,
    call_id: str | None = None,
    counselor_id: str = "counselor1",
    team: str | None = "1팀",
    codec: str = "pcm_s16le",
    rate: int = 8000,
    speed: float = 1.0,
    caller_number: str | None = None,
    lead_silence_s: float = 0.5,
    tail_silence_s: float = 1.5,
    ingest_secret: str | None = None,
) -> AudioCallResult:
    """Stream one file as one call. Mono files become the caller channel of a mono call.

    The start is signed as a site's PBX adapter signs it: with ``ingest_secret`` (default: the
    gateway's own setting, ``DASAN_ASR_INGEST_SECRET``). A ``speed`` above 1 outruns the wall clock:
    the gateway must allow it (``DASAN_ASR_MAX_AHEAD_S``), or it ends the call as ``too_fast``.
    """
    import websockets

    from asr.settings import AsrSettings

    asr_settings = AsrSettings()
    if ingest_secret is None:
        ingest_secret = asr_settings.ingest_secret.get_secret_value()

    pcm = load_audio(path, rate)
    channels = pcm.shape[1]
    if channels > 2:
        pcm = pcm[:, :2]
        channels = 2
    pad_lead = np.zeros((int(lead_silence_s * rate), channels), np.int16)
    pad_tail = np.zeros((int(tail_silence_s * rate), channels), np.int16)
    pcm = np.concatenate([pad_lead, pcm, pad_tail])
    call_id = call_id or f"sim-{uuid.uuid4().hex[:10]}"
    start = IngestStart(
        call_id=call_id,
        counselor_id=counselor_id,
        team=team,
        codec=codec,
        sample_rate=rate,
        channels=channels,
        caller_number=caller_number,
        token=start_token(ingest_secret, call_id, counselor_id, team, caller_number),
    )
    per_frame = rate * FRAME_MS // 1000
    frames = 0
    t0 = time.perf_counter()
    url = gateway.rstrip("/") + INGEST_PATH
    # wss:// verifies the gateway against DASAN_ASR_TLS_CAFILE (a site CA) or the system's store
    async with websockets.connect(url, max_size=2**20, ssl=asr_settings.client_ssl(url)) as ws:
        await ws.send(start.model_dump_json())
        reply = json.loads(await ws.recv())
        if reply.get("type") != "accepted":
            return AudioCallResult(call_id, 0, 0, 0, error=f"{reply.get('code')}: {reply.get('message')}")
        for i in range(0, len(pcm), per_frame):
            chunk = pcm[i : i + per_frame]
            await ws.send(encode_audio(chunk.reshape(-1), codec))
            frames += 1
            due = t0 + (i + len(chunk)) / rate / speed
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.send(IngestEnd().model_dump_json())
        try:
            closed = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        except (TimeoutError, websockets.ConnectionClosed):
            closed = {}
    return AudioCallResult(
        call_id,
        len(pcm) / rate,
        frames,
        time.perf_counter() - t0,
        error=None if closed.get("type") == "closed" else f"no close ack: {closed}",
    )


# --------------------------------------------------------------------------- scripted transcripts
def speech_seconds(text: str) -> float:
    syllables = sum(1 for ch in text if "가" <= ch <= "힣" or ch.isalnum())
    return max(0.8, syllables / SYLLABLES_PER_S)


def partial_prefixes(text: str, duration: float) -> list[tuple[float, str]]:
    """Growing prefixes about once a second (word boundaries), as a streaming recogniser shows them."""
    words = text.split()
    n = max(0, math.floor(duration) - 0)
    out = []
    for k in range(1, n + 1):
        upto = max(1, round(len(words) * k / (n + 1)))
        out.append((float(k), " ".join(words[:upto])))
    return out


@dataclass
class ScriptedCall:
    call_id: str
    turns: list[dict]
    topic: str = ""


def load_script(path: Path) -> list[ScriptedCall]:
    calls = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            calls.append(ScriptedCall(call_id=d["id"], turns=d["turns"], topic=d.get("topic", "")))
    return calls


async def play_scripted_call(
    producer: EventProducer,
    script: ScriptedCall,
    *,
    call_id: str,
    counselor_id: str = "counselor1",
    team: str | None = "1팀",
    speed: float = 1.0,
    gap_s: float = 0.8,
    on_final: Callable[[TranscriptSegment], None] | None = None,
    caller_key: str | None = None,
    caller_number_masked: str | None = None,
) -> int:
    """Inject one written call at ``call.transcripts`` with real-time pacing. Returns finals sent."""
    started = datetime.now(UTC)
    producer.send(
        CallStarted(
            call_id=call_id,
            counselor_id=counselor_id,
            team=team,
            started_at=started,
            source=TranscriptSource.scripted,
            caller_key=caller_key,
            caller_number_masked=caller_number_masked,
        )
    )
    t_call = 0.0
    t0 = time.perf_counter()
    finals = 0

    async def until(call_t: float) -> None:
        delay = t0 + call_t / speed - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    for i, turn in enumerate(script.turns):
        channel = Channel.counselor if turn["speaker"] == "counselor" else Channel.caller
        text = turn["text"].strip()
        dur = speech_seconds(text)
        seg_id = f"{call_id}-{channel.value}-{i:03d}"
        start_s = t_call
        for rev, (offset, prefix) in enumerate(partial_prefixes(text, dur)):
            await until(start_s + offset)
            producer.send(
                TranscriptSegment(
                    call_id=call_id,
                    segment_id=seg_id,
                    channel=channel,
                    start_s=start_s,
                    end_s=start_s + offset,
                    text=prefix,
                    is_final=False,
                    revision=rev,
                    asr_model=SCRIPTED_MODEL,
                    source=TranscriptSource.scripted,
                )
            )
        end_s = start_s + dur
        await until(end_s)
        audio_end = started + timedelta(seconds=end_s / speed)
        final = TranscriptSegment(
            call_id=call_id,
            segment_id=seg_id,
            channel=channel,
            start_s=start_s,
            end_s=end_s,
            text=text,
            is_final=True,
            revision=len(partial_prefixes(text, dur)),
            confidence=1.0,
            asr_model=SCRIPTED_MODEL,
            source=TranscriptSource.scripted,
            audio_end_at=audio_end,
        )
        producer.send(final)
        finals += 1
        if on_final:
            on_final(final)
        t_call = end_s + gap_s
    await until(t_call)
    producer.send(CallEnded(call_id=call_id, reason=EndReason.hangup, duration_s=t_call))
    producer.flush()
    return finals


async def run_scripted(
    settings: KafkaSettings,
    path: Path,
    *,
    calls: int | None,
    concurrency: int,
    speed: float,
    counselors: list[str],
    team: str | None,
    prefix: str = "script",
    on_final: Callable[[TranscriptSegment], None] | None = None,
) -> int:
    scripts = load_script(path)
    total = calls or len(scripts)
    sem = asyncio.Semaphore(max(1, concurrency))
    producer = EventProducer(settings)
    rng = random.Random(1)
    run = uuid.uuid4().hex[:6]

    async def one(i: int) -> int:
        async with sem:
            script = scripts[i % len(scripts)]
            await asyncio.sleep(rng.uniform(0, 1.0 / speed))  # calls do not all start on the same tick
            return await play_scripted_call(
                producer,
                script,
                call_id=f"{prefix}-{run}-{i:04d}-{script.call_id}",
                counselor_id=counselors[i % len(counselors)],
                team=team,
                speed=speed,
                on_final=on_final,
            )

    try:
        sent = await asyncio.gather(*(one(i) for i in range(total)))
    finally:
        producer.close()
    return sum(sent)
