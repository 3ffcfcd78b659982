"""The ASR worker: ``call.events`` + ``call.audio`` (consumer group) → ``call.transcripts``.

Threads: the Kafka consumer thread decodes frames (G.711/PCM → float, resample to 16 kHz) and
hands them to the per-stream policies — cheap, so ``max_poll_interval`` is never at risk; the
decoder thread (:class:`~asr.scheduler.DecodeScheduler`) batches the due windows of every stream
through the one loaded model and publishes the segments; a small uvicorn thread serves
``/healthz``, ``/readyz`` and ``/metrics``.

Takeover: a call's events are keyed by call id, so they stay on one partition and one worker.
When partitions move, the new owner resumes from the committed offsets; per-call state is
rebuilt from what arrives: a stream whose ``CallStarted`` it never saw starts at the first
frame's ``capture_ts``, and segment ids are derived from call-relative times, so a segment
re-emitted after a redelivery keeps its id (consumers dedupe on it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kafka import TopicPartition

from streaming import metrics
from streaming.events import AudioFrame, CallEnded, CallStarted, Channel, Event, TranscriptSegment
from streaming.health import broker_reachable
from streaming.kafka import EventConsumer, EventProducer, Record
from streaming.settings import KafkaSettings
from streaming.topics import CALL_AUDIO, CALL_EVENTS

from .audio import StreamResampler, decode_pcm16, to_float32
from .policy import SegmentUpdate, StreamingPolicy
from .scheduler import Decode, DecodeScheduler
from .settings import AsrSettings

log = logging.getLogger("dasan.asr.worker")

SERVICE = "asr-worker"


@dataclass
class StreamState:
    call_id: str
    channel: Channel
    key: str
    next_seq: int
    resampler: StreamResampler
    partition: int
    wall_anchor: datetime  # wall-clock time of call-relative t=0
    last_audio: float = field(default_factory=time.monotonic)
    gaps: int = 0
    audio_end_s: float = 0.0  # call-relative end of the audio received so far
    # (call-relative end, Kafka offset) of received frames not yet known to be settled
    frames: deque[tuple[float, int]] = field(default_factory=deque)


@dataclass
class CallInfo:
    started_at: datetime | None = None
    ended: bool = False
    duration_s: float | None = None  # audio length the gateway reported in CallEnded
    ended_mono: float = 0.0
    finished: set[str] = field(default_factory=set)  # channels whose stream is finished
    partition: int | None = None
    end_offset: int | None = None  # offset of the CallEnded record on call.events


class AsrWorker:
    def __init__(
        self,
        settings: AsrSettings,
        kafka: KafkaSettings,
        decode: Decode,
        model_name: str,
        *,
        group_id: str | None = None,
        producer: EventProducer | None = None,
    ) -> None:
        self.s = settings
        self.kafka = kafka
        self.model_name = model_name
        self.producer = producer or EventProducer(kafka)
        self._own_producer = producer is None
        self.calls: dict[str, CallInfo] = {}
        self.streams: dict[str, StreamState] = {}
        self._lock = threading.RLock()
        self.scheduler = DecodeScheduler(
            decode,
            batch_size=settings.batch_size,
            batch_window_ms=settings.batch_window_ms,
            on_update=self._publish,
            on_stream_done=self._stream_done,
        )
        self.consumer = EventConsumer(
            [CALL_EVENTS, CALL_AUDIO],
            group_id or settings.group_id,
            self.handle,
            kafka,
            dlq_producer=self.producer,
            on_revoked=self._on_revoked,
            commit_limits=self.commit_limits,
        )
        self.published = 0
        self.ready = False

    # ------------------------------------------------------------------ events in
    def handle(self, event: Event, rec: Record) -> None:
        if isinstance(event, AudioFrame):
            self._on_frame(event, rec)
        elif isinstance(event, CallStarted):
            with self._lock:
                info = self.calls.setdefault(event.call_id, CallInfo())
                info.started_at = event.started_at
                info.partition = rec.partition
        elif isinstance(event, CallEnded):
            self._on_end(event, rec)

    def _on_frame(self, f: AudioFrame, rec: Record) -> None:
        key = f"{f.call_id}:{f.channel.value}"
        extra = {"call_id": f.call_id, "channel": f.channel.value}
        with self._lock:
            info = self.calls.setdefault(f.call_id, CallInfo(partition=rec.partition))
            if f.channel.value in info.finished:
                return  # this channel is transcribed to its end (a redelivery): nothing to do
            st = self.streams.get(key)
            pol = self.scheduler.get(key)
            if st is not None and (pol is None or pol.ended):
                # Finished after an idle gap (no CallEnded) and audio came back: start afresh.
                self.scheduler.drop(key)
                st = None
            if st is None:
                if self.scheduler.active() >= self.s.max_streams:
                    metrics.ERRORS.labels(service=SERVICE, kind="over_capacity").inc()
                    log.warning("over capacity: stream admitted anyway", extra=extra)
                anchor = f.produced_at - timedelta(seconds=f.capture_ts + f.duration_s)
                if info.started_at is not None and f.seq == 0:
                    anchor = max(anchor, info.started_at)
                st = StreamState(
                    call_id=f.call_id,
                    channel=f.channel,
                    key=key,
                    next_seq=f.seq,
                    resampler=StreamResampler(f.sample_rate),
                    partition=rec.partition,
                    wall_anchor=anchor,
                )
                if f.seq != 0:
                    log.info(
                        "joining call mid-stream", extra={**extra, "seq": f.seq, "capture_ts": f.capture_ts}
                    )
                self.streams[key] = st
                self.scheduler.add(
                    key,
                    StreamingPolicy(
                        self.s,
                        key,
                        start_offset_s=f.capture_ts,
                        segment_prefix=segment_prefix(f.call_id, f.channel),
                    ),
                )
                metrics.ACTIVE_CALLS.labels(service=SERVICE).set(len(self.streams))
            if f.seq < st.next_seq:
                return  # duplicate of a frame already consumed
            if f.seq > st.next_seq:
                st.gaps += 1
                log.warning("audio frames missing", extra={**extra, "expected": st.next_seq, "got": f.seq})
            st.next_seq = f.seq + 1
            st.last_audio = time.monotonic()
            # Keep the wall-clock anchor current: the frame left the gateway when its audio ended.
            st.wall_anchor = f.produced_at - timedelta(seconds=f.capture_ts + f.duration_s)
            st.audio_end_s = max(st.audio_end_s, f.capture_ts + f.duration_s)
            st.frames.append((f.capture_ts + f.duration_s, rec.offset))
            pcm = to_float32(decode_pcm16(f.audio, f.codec))
            self.scheduler.insert(key, st.resampler.process(pcm))
            if info.ended and info.duration_s is not None and st.audio_end_s >= info.duration_s - 1e-3:
                self._finish_stream(info, st)

    def _finish_stream(self, info: CallInfo, st: StreamState) -> None:
        tail = st.resampler.flush()
        if len(tail) and self.scheduler.get(st.key) is not None:
            self.scheduler.insert(st.key, tail)
        info.finished.add(st.channel.value)
        self.scheduler.finish(st.key)

    def _on_end(self, event: CallEnded, rec: Record | None = None) -> None:
        """call.events and call.audio are separate topics: the end may overtake the last frames.
        A stream is finished once its audio reaches the reported duration (or after a grace period)."""
        with self._lock:
            info = self.calls.setdefault(event.call_id, CallInfo())
            info.ended = True
            info.duration_s = event.duration_s
            info.ended_mono = time.monotonic()
            if rec is not None:
                info.end_offset = rec.offset
            for st in list(self.streams.values()):
                if st.call_id == event.call_id and (
                    event.duration_s is None or st.audio_end_s >= event.duration_s - 1e-3
                ):
                    self._finish_stream(info, st)
        log.info("call ended", extra={"call_id": event.call_id, "reason": event.reason.value})

    def _stream_done(self, key: str) -> None:
        with self._lock:
            self.streams.pop(key, None)
            metrics.ACTIVE_CALLS.labels(service=SERVICE).set(len(self.streams))

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        parts = {tp.partition for tp in revoked}
        with self._lock:
            for key, st in list(self.streams.items()):
                if st.partition in parts:
                    log.info("partition moved away: dropping stream state", extra={"call_id": st.call_id})
                    self.scheduler.drop(key)
                    self.streams.pop(key, None)
            for cid in [c for c, i in self.calls.items() if i.partition in parts]:
                self.calls.pop(cid, None)

    def commit_limits(self) -> dict[TopicPartition, int]:
        """Offsets the consumer must not commit past: the first frame of every stream whose audio
        is not settled (utterance open or final not yet published) and the ``CallEnded`` of a call
        still being transcribed. A worker that takes the call over re-reads from there, so a crash
        loses at most the decode work, never audio. Runs on the consumer thread before each commit.
        """
        limits: dict[TopicPartition, int] = {}

        def cap(tp: TopicPartition, offset: int) -> None:
            limits[tp] = min(limits.get(tp, offset), offset)

        with self._lock:
            for st in self.streams.values():
                since = self.scheduler.unsettled_from_s(st.key)
                if since is None:
                    st.frames.clear()
                    continue
                while st.frames and st.frames[0][0] <= since:
                    st.frames.popleft()
                if st.frames:
                    cap(TopicPartition(CALL_AUDIO, st.partition), st.frames[0][1])
                info = self.calls.get(st.call_id)
                if info is not None and info.end_offset is not None and info.partition is not None:
                    cap(TopicPartition(CALL_EVENTS, info.partition), info.end_offset)
        return limits

    def housekeeping(self) -> None:
        """Finish streams that stopped receiving audio without a CallEnded; forget old calls."""
        now = time.monotonic()
        with self._lock:
            for st in list(self.streams.values()):
                info = self.calls.get(st.call_id)
                pol = self.scheduler.get(st.key)
                if pol is None or pol.ended:
                    continue
                if info is not None and info.ended and now - info.ended_mono > self.s.end_grace_s:
                    log.warning("call ended but audio incomplete: finishing", extra={"call_id": st.call_id})
                    self._finish_stream(info, st)
                elif now - st.last_audio > self.s.stream_idle_s:
                    log.warning("stream idle: finishing it", extra={"call_id": st.call_id})
                    self.scheduler.finish(st.key)
                    st.last_audio = now
            if len(self.calls) > 10_000:
                for cid in [c for c, i in self.calls.items() if i.ended][:5_000]:
                    self.calls.pop(cid, None)

    # ------------------------------------------------------------------ transcripts out
    def _publish(self, key: str, upd: SegmentUpdate) -> None:
        st = self.streams.get(key)
        call_id, channel = key.rsplit(":", 1)
        anchor = st.wall_anchor if st else None
        seg = TranscriptSegment(
            call_id=call_id,
            segment_id=upd.segment_id,
            channel=Channel(channel),
            start_s=upd.start_s,
            end_s=upd.end_s,
            text=upd.text,
            is_final=upd.is_final,
            revision=upd.revision,
            confidence=upd.confidence,
            asr_model=self.model_name,
            audio_end_at=anchor + timedelta(seconds=upd.end_s) if anchor else None,
        )
        if not upd.is_final and not self.s.publish_partials:
            return
        self.producer.send(seg)
        self.published += 1
        if upd.is_final:
            self.producer.flush(10)
            log.info(
                "final segment", extra={"call_id": call_id, "segment_id": upd.segment_id, "end_s": upd.end_s}
            )

    # ------------------------------------------------------------------ lifecycle
    def run(self, stop: threading.Event | None = None) -> None:
        self.scheduler.start()
        self.ready = True
        last_house = time.monotonic()

        def idle() -> None:
            nonlocal last_house
            if stop is not None and stop.is_set():
                self.consumer.stop()
            if time.monotonic() - last_house > 1.0:
                last_house = time.monotonic()
                self.housekeeping()

        try:
            self.consumer.run(poll_timeout_ms=200, idle=idle)
        finally:
            self.ready = False
            self.scheduler.drain()
            self.scheduler.stop()
            if self._own_producer:
                self.producer.close()

    def stop(self) -> None:
        self.consumer.stop()

    def status(self) -> dict[str, Any]:
        st = self.scheduler.stats
        return {
            "ready": self.ready and self.consumer.healthy() and broker_reachable(self.kafka),
            "streams": len(self.streams),
            "max_streams": self.s.max_streams,
            "busy": len(self.streams) >= self.s.max_streams,
            "published": self.published,
            "batches": st.batches,
            "windows": st.windows,
            "max_batch": st.max_batch,
            "decode_errors": st.errors,
        }


def segment_prefix(call_id: str, channel: Channel) -> str:
    """``<call id>:<channel>``, shortened with a hash when a segment id would pass 80 characters."""
    prefix = f"{call_id}:{channel.value}"
    if len(prefix) > 72:
        prefix = f"{call_id[:40]}~{hashlib.sha1(call_id.encode()).hexdigest()[:12]}:{channel.value}"
    return prefix


def create_health_app(worker: AsrWorker) -> Any:
    from fastapi import FastAPI

    from streaming.health import health_router

    def readiness() -> tuple[bool, dict[str, Any]]:
        body = worker.status()
        return body["ready"] and not body["busy"], body

    app = FastAPI(title="Dasan ASR worker")
    app.include_router(health_router(readiness))
    return app
