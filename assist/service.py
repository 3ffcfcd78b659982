"""The assist service: a consumer group on ``call.events`` + ``call.transcripts`` that publishes
``Suggestion`` / ``KeywordsUpdated`` (``assist.suggestions``) and ``CallSummary`` (``call.summaries``).

Per call (keyed by call id, so one call's events reach one member in order) it keeps the masked
final segments of both channels, the caller segments waiting for a suggestion, the segments already
covered by a published suggestion, what is on screen, and the keywords shown.

- Only **final caller** segments that add evidence (content nouns) trigger; partials never do.
- **Debounce** on the audio clock: a final caller segment that ends within ``debounce_ms`` of the
  previous trigger waits that long, so a sentence the recogniser cut in two yields one suggestion
  with both segment ids. Segments of several calls due at the same moment are retrieved in one batch.
- **No repeats**: a suggestion whose passages equal one of the last ``repeat_window`` shown is not
  published again (its keywords still are, if they changed).
- **Takeover**: when partitions are assigned, the member re-reads the same partitions of
  ``call.events`` / ``call.transcripts`` (``rebuild_lookback_s`` back) *and* of ``assist.suggestions``
  / ``call.summaries``, so it knows every open call, the segments already covered and the summaries
  already written. Segments not yet covered are processed; covered ones never again. Suggestion and
  event ids are derived from the call id and the first trigger segment id, so even a re-publication
  would carry the same ``event_id`` and be dropped by consumers.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streaming import metrics
from streaming.codec import DecodeError, decode
from streaming.events import (
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    Event,
    KeywordsUpdated,
    Suggestion,
    TranscriptSegment,
)
from streaming.kafka import EventConsumer, EventProducer, Record
from streaming.privacy import mask_text
from streaming.probe import broker_answers
from streaming.settings import KafkaSettings
from streaming.topics import ASSIST_SUGGESTIONS, CALL_EVENTS, CALL_SUMMARIES, CALL_TRANSCRIPTS

from .assistant import Assistant, SuggestRequest, SuggestResult, district_of
from .settings import AssistSettings
from .summary import Summarizer, Turn

log = logging.getLogger("dasan.assist.service")
SERVICE = "assist"
# Work per tick of the consumer loop beyond the first suggestion batch: the loop must poll again well
# within max.poll.interval.ms (6 s in development) or the group rebalances and state is rebuilt.
TICK_BUDGET_S = 1.5


def stable_id(*parts: str, n: int = 32) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:n]


def suggestion_id_for(call_id: str, first_segment_id: str) -> str:
    return "sg-" + stable_id(call_id, first_segment_id, n=24)


@dataclass
class CallState:
    call_id: str
    partition: int | None = None
    counselor_id: str | None = None
    segments: dict[str, tuple[Channel, str, float, float]] = field(default_factory=dict)  # id → masked
    order: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    due_at: float = 0.0
    covered: set[str] = field(default_factory=set)
    shown: deque[frozenset[str]] = field(default_factory=lambda: deque(maxlen=8))
    keywords: list[str] = field(default_factory=list)
    last_trigger_end_s: float = -1e9
    ended: CallEnded | None = None
    ended_seen_at: float = 0.0
    summary_done: bool = False
    last_event_at: float = field(default_factory=time.monotonic)
    first_segment_at: dict[str, float] = field(default_factory=dict)
    mask_ms: dict[str, float] = field(default_factory=dict)
    queue_ms: dict[str, float] = field(default_factory=dict)

    def caller_texts(self, upto: str | None = None) -> list[str]:
        out = []
        for sid in self.order:
            ch, text, _s, _e = self.segments[sid]
            if ch == Channel.caller:
                out.append(text)
            if sid == upto:
                break
        return out

    def turns(self) -> list[Turn]:
        return [Turn(self.segments[s][0], self.segments[s][1]) for s in self.order]


class AssistService:
    def __init__(
        self,
        assistant: Assistant,
        settings: AssistSettings | None = None,
        kafka: KafkaSettings | None = None,
        *,
        instance: str = "assist",
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.assistant = assistant
        self.settings = settings or assistant.settings
        self.kafka = kafka or KafkaSettings()
        self.instance = instance
        self.summarizer = Summarizer(assistant)
        self.calls: dict[str, CallState] = {}
        self.finished: deque[str] = deque(maxlen=10_000)
        self._finished_set: set[str] = set()
        self._lock = threading.RLock()
        self._to_rebuild: set[int] = set()
        self.published_suggestions = 0
        self.published_summaries = 0
        self.producer = EventProducer(self.kafka)
        self.consumer = EventConsumer(
            [CALL_EVENTS, CALL_TRANSCRIPTS],
            self.settings.group_id,
            self.handle,
            self.kafka,
            dlq_producer=self.producer,
            on_assigned=self.on_assigned,
            on_revoked=self.on_revoked,
            **{"fetch_max_wait_ms": self.settings.fetch_max_wait_ms, **(consumer_overrides or {})},
        )

    # ------------------------------------------------------------------ group membership
    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        parts = {tp.partition for tp in revoked if tp.topic in (CALL_EVENTS, CALL_TRANSCRIPTS)}
        with self._lock:
            self._to_rebuild -= parts
            gone = [cid for cid, st in self.calls.items() if st.partition is None or st.partition in parts]
            for cid in gone:
                del self.calls[cid]
        metrics.ACTIVE_CALLS.labels(service=SERVICE).set(len(self.calls))
        log.info("calls handed over", extra={"calls": len(gone), "instance": self.instance})

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        # The rebuild reads Kafka for seconds: not inside the rebalance callback (it would block the
        # heartbeats); it runs first thing in the next tick, before any suggestion is drafted.
        parts = {tp.partition for tp in assigned if tp.topic in (CALL_EVENTS, CALL_TRANSCRIPTS)}
        with self._lock:
            self._to_rebuild |= parts

    def _rebuild_assigned(self) -> None:
        with self._lock:
            parts = sorted(self._to_rebuild)
            self._to_rebuild.clear()
        if not parts:
            return
        t0 = time.perf_counter()
        n = self.rebuild(parts)
        log.info(
            "state rebuilt for assigned partitions",
            extra={
                "instance": self.instance,
                "partitions": parts,
                "records": n,
                "open_calls": len(self.calls),
                "ms": round((time.perf_counter() - t0) * 1000, 1),
            },
        )

    def rebuild(self, partitions: list[int]) -> int:
        """Re-read the given partitions of the input and output topics and rebuild call state."""
        cfg = self.kafka.consumer_config(None)
        cfg.update(enable_auto_commit=False, consumer_timeout_ms=1000)
        reader = KafkaConsumer(**cfg)
        try:
            tps = []
            for topic in (CALL_EVENTS, CALL_TRANSCRIPTS, ASSIST_SUGGESTIONS, CALL_SUMMARIES):
                avail = reader.partitions_for_topic(topic) or set()
                tps += [TopicPartition(topic, p) for p in partitions if p in avail]
            if not tps:
                return 0
            reader.assign(tps)
            since_ms = int((time.time() - self.settings.rebuild_lookback_s) * 1000)
            ends = reader.end_offsets(tps)
            try:
                offsets = reader.offsets_for_times(dict.fromkeys(tps, since_ms))
            except Exception as exc:  # a broker without timestamp lookup: read all retained history
                log.warning(
                    "offsets_for_times failed, reading from the beginning", extra={"error": repr(exc)}
                )
                offsets = None
            for tp in tps:
                if offsets is None:
                    reader.seek_to_beginning(tp)
                    continue
                off = offsets.get(tp)
                reader.seek(tp, ends[tp] if off is None else off.offset)
            events: dict[str, list[tuple[int, Event]]] = {t: [] for t in (CALL_EVENTS, CALL_TRANSCRIPTS)}
            outputs: list[Event] = []
            n = 0
            # Read up to the end offsets taken above, no further: what arrives later is the live
            # consumer's to handle (it resumes from the committed offsets, before these ends, and
            # segments already applied are skipped). Waiting for an empty poll instead never ends
            # while calls are talking: under 30 live calls that took 45 s, past max.poll.interval,
            # and the rebalance that followed started the rebuild again. Some brokers (Tansu)
            # report the start of the last batch as the end; a fetch returns whole batches, so the
            # position still passes it once that batch is read.
            budget_s = max(5.0, self.kafka.poll_interval_ms / 1000 / 2)
            deadline = time.monotonic() + budget_s
            while not all(reader.position(tp) >= ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    log.warning(
                        "state rebuild stopped at its time budget",
                        extra={"instance": self.instance, "budget_s": budget_s, "records": n},
                    )
                    break
                batches = reader.poll(timeout_ms=300)
                for tp, recs in batches.items():
                    for rec in recs:
                        try:
                            ev = decode(rec.value, list(rec.headers or []), rec.key)
                        except DecodeError:
                            continue
                        n += 1
                        if tp.topic in events:
                            events[tp.topic].append((tp.partition, ev))
                        else:
                            outputs.append(ev)
        finally:
            reader.close()
        with self._lock:
            # lifecycle first, then transcripts in order, then what was already published
            for part, ev in events[CALL_EVENTS] + sorted(
                events[CALL_TRANSCRIPTS], key=lambda pe: pe[1].produced_at
            ):
                self._apply(ev, replay=True, partition=part)
            for ev in outputs:
                st = self.calls.get(ev.call_id)
                if st is None:
                    continue
                if isinstance(ev, Suggestion):
                    st.covered.update(ev.trigger_segment_ids)
                    st.shown.append(self._shown_key(ev.passages, ev.draft.abstained))
                    st.pending = [s for s in st.pending if s not in st.covered]
                elif isinstance(ev, KeywordsUpdated):
                    st.keywords = list(ev.keywords)
                elif isinstance(ev, CallSummary):
                    st.summary_done = True
            for cid in [c for c, st in self.calls.items() if st.ended and st.summary_done]:
                self._finish(cid)
            for st in self.calls.values():
                if st.pending:
                    st.due_at = 0.0
        metrics.ACTIVE_CALLS.labels(service=SERVICE).set(len(self.calls))
        return n

    # ------------------------------------------------------------------ event handling
    def handle(self, event: Event, record: Record) -> None:
        with self._lock:
            self._apply(event, replay=False, record=record, partition=record.partition)

    def _finish(self, call_id: str) -> None:
        self.calls.pop(call_id, None)
        if call_id not in self._finished_set:
            if len(self.finished) == self.finished.maxlen:
                self._finished_set.discard(self.finished[0])
            self.finished.append(call_id)
            self._finished_set.add(call_id)

    def _apply(
        self, event: Event, replay: bool, record: Record | None = None, partition: int | None = None
    ) -> None:
        cid = event.call_id
        if cid in self._finished_set:
            return
        st = self.calls.get(cid)
        if st is None:
            st = self.calls[cid] = CallState(cid, partition)
            metrics.ACTIVE_CALLS.labels(service=SERVICE).set(len(self.calls))
        st.last_event_at = time.monotonic()
        if isinstance(event, CallStarted):
            st.counselor_id = event.counselor_id
        elif isinstance(event, CallEnded):
            st.ended = event
            st.due_at = 0.0
            # call.events and call.transcripts are separate topics: the last transcripts may arrive
            # just after the end, so the summary waits a short grace period (not on replay)
            st.ended_seen_at = 0.0 if replay else time.monotonic()
        elif isinstance(event, TranscriptSegment):
            self._segment(st, event, replay, record)

    def _segment(self, st: CallState, seg: TranscriptSegment, replay: bool, record: Record | None) -> None:
        if not seg.is_final or seg.segment_id in st.segments:
            return
        t0 = time.perf_counter()
        masked = mask_text(seg.text)
        mask_ms = (time.perf_counter() - t0) * 1000
        st.segments[seg.segment_id] = (seg.channel, masked, seg.start_s, seg.end_s)
        st.order.append(seg.segment_id)
        if seg.channel != Channel.caller:
            return
        if (
            len(self.assistant.evidence_terms(masked)) < self.settings.min_evidence_terms
            or not masked.strip()
        ):
            return
        now = time.monotonic()
        st.first_segment_at.setdefault(seg.segment_id, now)
        st.mask_ms[seg.segment_id] = mask_ms
        if record is not None and not replay:
            st.queue_ms[seg.segment_id] = max(0.0, time.time() * 1000 - record.timestamp_ms)
        close = (seg.start_s - st.last_trigger_end_s) * 1000 < self.settings.debounce_ms
        if not st.pending:
            st.due_at = now + self.settings.debounce_ms / 1000 if (close and not replay) else 0.0
        st.pending.append(seg.segment_id)
        st.last_trigger_end_s = seg.end_s

    # ------------------------------------------------------------------ timers: suggestions, summaries
    def tick(self) -> None:
        """Publish what is due: suggestions of every call whose debounce ran out, then summaries."""
        self._rebuild_assigned()
        now = time.monotonic()
        with self._lock:
            # One batch per tick, oldest first: the consumer polls between batches, so a backlog never
            # holds the poll loop past max.poll.interval.ms (which would cost a rebalance and a rebuild).
            due = sorted(
                (st for st in self.calls.values() if st.pending and st.due_at <= now),
                key=lambda st: st.due_at,
            )[: self.settings.batch_max]
            grace = self.settings.summary_grace_ms / 1000
            ended = [
                st
                for st in self.calls.values()
                if st.ended and not st.pending and not st.summary_done and now - st.ended_seen_at >= grace
            ]
            stale = [
                c
                for c, st in self.calls.items()
                if now - st.last_event_at > self.settings.call_idle_timeout_s
            ]
            for c in stale:
                self._finish(c)
        t0 = time.monotonic()
        if due:
            self._suggest(due)
        # Summaries share the loop's time budget: when many calls hang up together the rest wait for
        # the next tick (a few hundred ms later) rather than hold the poll loop past its interval.
        # A summary may take "a few seconds", a suggestion 500 ms: while any caller final is waiting,
        # a tick writes one summary only (each is an encoder pass over the call's sentences).
        with self._lock:  # finals still waiting (debounce, or beyond this batch) after the batch
            suggestions_waiting = any(st.pending for st in self.calls.values())
        budget = 0.0 if suggestions_waiting else TICK_BUDGET_S
        for st in ended:
            self._summarize(st)
            if time.monotonic() - t0 > budget:
                break
        if ended or due:
            metrics.ACTIVE_CALLS.labels(service=SERVICE).set(len(self.calls))

    def _shown_key(self, passages: list[Any], abstained: bool) -> frozenset[str]:
        return frozenset() if abstained else frozenset(p.doc_id for p in passages[:3])

    def _suggest(self, states: list[CallState]) -> None:
        reqs = []
        for st in states:
            trig = list(st.pending)
            turns = st.caller_texts(upto=trig[-1])
            reqs.append(
                SuggestRequest(
                    st.call_id,
                    turns,
                    trig,
                    district_of(turns),
                    sum(st.mask_ms.pop(s, 0.0) for s in trig),
                    max((st.queue_ms.pop(s, 0.0) for s in trig), default=0.0),
                    started=time.perf_counter()
                    - (time.monotonic() - min(st.first_segment_at.get(s, time.monotonic()) for s in trig)),
                )
            )
        results = self.assistant.suggest_many(reqs)
        sends = []
        for st, res in zip(states, results, strict=True):
            sends.extend(self._events_for(st, res))
        for ev in sends:
            self.producer.send(ev)
        self.producer.flush()
        with self._lock:
            for st, res in zip(states, results, strict=True):
                trig = res.request.trigger_segment_ids
                st.covered.update(trig)
                st.pending = [s for s in st.pending if s not in trig]
                for s in trig:
                    st.first_segment_at.pop(s, None)
        for ev in sends:
            if isinstance(ev, Suggestion):
                self.published_suggestions += 1
                metrics.STAGE_LATENCY.labels(service=SERVICE, stage="suggestion_total").observe(
                    ev.latency.total_ms / 1000
                )
                for stage in ("masking", "keywords", "retrieval", "draft"):
                    metrics.STAGE_LATENCY.labels(service=SERVICE, stage=stage).observe(
                        getattr(ev.latency, f"{stage}_ms") / 1000
                    )
                log.info(
                    "suggestion published",
                    extra={
                        "call_id": ev.call_id,
                        "suggestion_id": ev.suggestion_id,
                        "segments": ev.trigger_segment_ids,
                        "abstained": ev.draft.abstained,
                        "latency_ms": ev.latency.total_ms,
                        "instance": self.instance,
                    },
                )

    def _events_for(self, st: CallState, res: SuggestResult) -> list[Event]:
        trig = res.request.trigger_segment_ids
        out: list[Event] = []
        if res.keywords and res.keywords != st.keywords:
            out.append(
                KeywordsUpdated(
                    event_id=stable_id(st.call_id, "kw", *trig),
                    call_id=st.call_id,
                    keywords=res.keywords[:12],
                    trigger_segment_ids=trig,
                )
            )
            st.keywords = list(res.keywords)
        key = self._shown_key(res.passages, res.draft.abstained)
        recent = list(st.shown)[-self.settings.repeat_window :] if self.settings.repeat_window else []
        if key in recent:
            log.info("suggestion not repeated", extra={"call_id": st.call_id, "segments": trig})
            return out
        sid = suggestion_id_for(st.call_id, trig[0])
        out.append(
            Suggestion(
                event_id=stable_id(st.call_id, "suggestion", trig[0]),
                call_id=st.call_id,
                suggestion_id=sid,
                trigger_segment_ids=trig,
                query=res.query[:4000],
                keywords=res.keywords[:12],
                passages=res.passages,
                draft=res.draft,
                latency=res.latency,
            )
        )
        st.shown.append(key)
        return out

    def _summarize(self, st: CallState) -> None:
        t0 = time.perf_counter()
        parts = self.summarizer.summarize(st.turns())
        ev = CallSummary(
            event_id=stable_id(st.call_id, "summary"),
            call_id=st.call_id,
            summary_id="sm-" + stable_id(st.call_id, "summary", n=24),
            category=parts.category,
            call_reason=parts.call_reason,
            key_facts=parts.key_facts,
            counselor_answers=parts.counselor_answers,
            actions=parts.actions,
            regulations_cited=parts.regulations_cited,
            entities=parts.entities,
            keywords=parts.keywords,
            generator=parts.generator,
            latency_ms=round((time.perf_counter() - t0) * 1000, 2),
        )
        self.producer.send(ev).get(timeout=30)
        self.published_summaries += 1
        with self._lock:
            st.summary_done = True
            self._finish(st.call_id)
        log.info("summary published", extra={"call_id": st.call_id, "category": parts.category})

    # ------------------------------------------------------------------ running
    def ready(self) -> tuple[bool, dict[str, object]]:
        polled = self.consumer.healthy()
        # kafka-python keeps polling (empty batches) while the broker is away: ask the broker itself
        broker = broker_answers(self.kafka)
        return polled and broker, {
            "instance": self.instance,
            "polled_recently": polled,
            "broker": "ok" if broker else "unreachable",
            "open_calls": len(self.calls),
            "suggestions": self.published_suggestions,
            "summaries": self.published_summaries,
        }

    def run(self) -> None:
        self.consumer.run(poll_timeout_ms=self.settings.poll_timeout_ms, idle=self._idle)

    def _idle(self) -> None:
        try:
            self.tick()
        except Exception:
            metrics.ERRORS.labels(service=SERVICE, kind="tick").inc()
            log.exception("assist tick failed", extra={"instance": self.instance})

    def stop(self) -> None:
        self.consumer.stop()

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()
