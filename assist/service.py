"""The assist service: a consumer group on ``call.events`` + ``call.transcripts`` that publishes
``Suggestion`` / ``KeywordsUpdated`` (``assist.suggestions``) and ``CallSummary`` (``call.summaries``).

This module is the Kafka side only: the consumer and producer, rebalance callbacks, metrics, logs and
the readiness data. What each call needs and when (triggers, debounce, no repeats, summary timing,
idle calls, per-call failures, takeover state) is :class:`assist.tracker.CallTracker`'s, which reads
no clock and touches no broker.

- **Takeover**: when partitions are assigned, the member re-reads the same partitions of
  ``call.events`` / ``call.transcripts`` (``rebuild_lookback_s`` back) *and* of ``assist.suggestions``
  / ``call.summaries`` (:class:`streaming.kafka.PartitionReader`, a tick's budget at a time, those
  partitions' live records paused meanwhile), and the tracker rebuilds every open call from them,
  a tick's budget at a time: segments not yet covered are processed, covered ones never again.
- **Failure isolation**: a batch whose retrieval raises is retried call by call; a call that keeps
  raising is retried on its own and dropped after ``max_failures`` (an error log with its call id, a
  metric); the other calls are published.
- **Knowledge-base versions**: with a :class:`assist.kb_switch.KbSwitch`, a newly activated version
  (loaded beside the one in use by the switch's thread) replaces the assistant at the start of a
  tick, never within one: no batch mixes versions, no segment is dropped, no restart.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition

from streaming import metrics
from streaming.events import Event, Suggestion, TranscriptSegment
from streaming.kafka import EventConsumer, EventProducer, PartitionReader, Record, read_budget_s
from streaming.probe import broker_answers
from streaming.settings import KafkaSettings
from streaming.topics import (
    ASSIST_SUGGESTIONS,
    ASSIST_SUGGESTIONS_SHADOW,
    CALL_EVENTS,
    CALL_SUMMARIES,
    CALL_TRANSCRIPTS,
)

from .assistant import Assistant, SuggestRequest, SuggestResult, shed_late
from .call_state import Due, SummaryRequest, SummaryResult
from .pacing import BatchPacer
from .settings import AssistSettings
from .summary import Summarizer
from .tracker import CallTracker, namespaced

log = logging.getLogger("dasan.assist.service")
SERVICE = "assist"
INPUTS = (CALL_EVENTS, CALL_TRANSCRIPTS)
OUTPUTS = (ASSIST_SUGGESTIONS, CALL_SUMMARIES)


WARM_BATCH = 8  # texts an idle tick embeds ahead (one small encoder batch)
WARM_PENDING_MAX = 256  # texts waiting for a warm-up; the oldest are dropped past this (only a cost)


def topics_of(settings: AssistSettings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(what an instance consumes, what it publishes) in its role. The summaries role also reads the
    cards published (its summaries cite only cards shown); a shadow publishes only to its topic."""
    if settings.shadow:
        outputs: tuple[str, ...] = (ASSIST_SUGGESTIONS_SHADOW,)
        cards_topic = ASSIST_SUGGESTIONS_SHADOW
    else:
        outputs = tuple(
            t for t, on in ((ASSIST_SUGGESTIONS, settings.cards), (CALL_SUMMARIES, settings.summaries)) if on
        )
        cards_topic = ASSIST_SUGGESTIONS
    inputs = INPUTS if settings.cards else (*INPUTS, cards_topic)
    return inputs, outputs


def _where(exc: BaseException) -> str:
    """Where an exception was raised (file:line), for a log that must not carry its message (the
    message of a failed suggestion may quote the caller's words)."""
    tb = traceback.extract_tb(exc.__traceback__)
    return f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"


@dataclass
class _Reading:
    """The history read of taken-over partitions, in progress over ticks."""

    reader: PartitionReader
    partitions: list[int]


class AssistService:
    SHADOW_TOPIC = ASSIST_SUGGESTIONS_SHADOW
    """Where a shadow (``DASAN_ASSIST_SHADOW``) writes all its output."""

    def __init__(
        self,
        assistant: Assistant,
        settings: AssistSettings | None = None,
        kafka: KafkaSettings | None = None,
        *,
        instance: str = "assist",
        consumer_overrides: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        timer: Callable[[], float] = time.perf_counter,
        kb_switch: Any | None = None,
    ) -> None:
        self.assistant = assistant
        self.kb_switch = kb_switch
        self.settings = settings or assistant.settings
        self.kafka = kafka or KafkaSettings()
        self.instance = instance
        self.clock = clock
        self.timer = timer  # what a tick's work takes (the pacer's budget is the poll loop's real time)
        self.summarizer = Summarizer(assistant)
        self.variant = self.settings.variant
        # a shadow writes all its output to the shadow topic, and rebuilds from its own output there
        self.shadow_topic = self.SHADOW_TOPIC if self.settings.shadow else None
        self.role = self.settings.role
        self.inputs, self.outputs = topics_of(self.settings)
        # evidence through self.assistant, so a knowledge-base switch reaches the tracker too
        self.tracker = CallTracker(
            self.settings,
            lambda text: self.assistant.evidence_terms(text),
            timer=timer,  # the replay of taken-over calls is paced on the loop's real time too
            provenance=assistant.provenance.model_copy(update={"variant": self.variant}),
        )
        self._lock = threading.RLock()  # the tracker is read by the health server's thread
        self._to_rebuild: set[int] = set()
        self._reading: _Reading | None = None  # the history read of taken-over partitions, in progress
        # final segments' masked texts whose query vectors an idle tick embeds ahead of the caller's
        # next question (composed context vectors: :meth:`Assistant.warm_context`)
        self._warm: deque[str] = deque(maxlen=WARM_PENDING_MAX)
        self.published_suggestions = 0
        self.published_summaries = 0
        self.handovers = 0  # rebalances that took partitions from this instance
        self.producer = EventProducer(self.kafka)
        self.consumer = EventConsumer(
            self.inputs,
            self.settings.consumer_group,
            self.handle,
            self.kafka,
            dlq_producer=self.producer,
            on_assigned=self.on_assigned,
            on_revoked=self.on_revoked,
            **{"fetch_max_wait_ms": self.settings.fetch_max_wait_ms, **(consumer_overrides or {})},
        )
        # a tick's batch sized by what a request costs here, to fit its share of the poll interval
        self.pacer = BatchPacer(
            self.consumer.max_poll_interval_s, self.settings.batch_time_share, self.settings.batch_max
        )
        self._paced_logged = False

    @property
    def calls(self) -> dict[str, Any]:
        return self.tracker.calls

    @property
    def rebuild_pending(self) -> bool:
        """Partitions were assigned and their state is not rebuilt yet (not read, or not all replayed)."""
        with self._lock:
            return bool(self._to_rebuild) or self._reading is not None or self.tracker.replaying > 0

    def _gauge(self) -> None:
        metrics.ACTIVE_CALLS.labels(service=SERVICE).set(len(self.tracker.calls))

    # ------------------------------------------------------------------ group membership
    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        parts = {tp.partition for tp in revoked if tp.topic in self.inputs}
        with self._lock:
            self._to_rebuild -= parts
            reading = self._reading
            if reading is not None and parts & set(reading.partitions):
                # a history read in progress covered a revoked partition: it starts again for the
                # partitions this member keeps (those come back paused from the next tick's start)
                self._reading = None
                self._to_rebuild |= set(reading.partitions) - parts
            gone = self.tracker.forget_partitions(parts)
            self.handovers += 1 if parts else 0
        if reading is not None and self._reading is None:
            reading.reader.close()
        self._gauge()
        log.info("calls handed over", extra={"calls": len(gone), "instance": self.instance})

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        # The rebuild reads Kafka for seconds: not inside the rebalance callback (it would block the
        # heartbeats); it runs first thing in the next tick, before any suggestion is drafted.
        parts = {tp.partition for tp in assigned if tp.topic in self.inputs}
        with self._lock:
            self._to_rebuild |= parts
        # their live records wait in Kafka until the history is read and handed to the tracker
        self.consumer.pause(parts)

    def _rebuild_assigned(self) -> bool:
        """Rebuild the calls of newly assigned partitions: read their history, a tick's budget at a
        time, then replay the calls, a tick's budget at a time (the pacer's budget: a tick of it never
        holds the poll loop past the interval); whether there was any such work."""
        with self._lock:
            parts = sorted(self._to_rebuild)
            self._to_rebuild.clear()
            replaying = self.tracker.replaying
        if not parts and self._reading is None and not replaying:
            return False
        t0 = self.timer()
        if parts:
            self.start_rebuild(parts)
        reading = self._reading
        if reading is not None:
            done = self.rebuild_step()
            if not done:
                log.info(
                    "reading the history of taken-over partitions",
                    extra={
                        "instance": self.instance,
                        "partitions": reading.partitions,
                        "records": len(reading.reader.events),
                        "ms": round((self.timer() - t0) * 1000, 1),
                    },
                )
                return True
        else:
            with self._lock:
                self.tracker.continue_rebuild(self.clock(), self.pacer.budget_s)
            self._gauge()
        with self._lock:
            left = self.tracker.replaying
        metrics.REBUILD_BACKLOG.labels(service=SERVICE).set(left)
        log.info(
            "state rebuilt for assigned partitions" if not left else "rebuilding taken-over calls",
            extra={
                "instance": self.instance,
                "partitions": reading.partitions if reading is not None else None,
                "records": len(reading.reader.events) if reading is not None else None,
                "calls_replayed": replaying - left if reading is None else None,
                "calls_waiting": left,
                "open_calls": len(self.tracker.calls),
                "ms": round((self.timer() - t0) * 1000, 1),
            },
        )
        return True

    def start_rebuild(self, partitions: list[int]) -> None:
        """Open the history read of ``partitions`` (with those of a read in progress: it starts again)
        of the input and output topics, ``rebuild_lookback_s`` back; their live records wait (paused)."""
        with self._lock:
            previous, self._reading = self._reading, None
        if previous is not None:
            partitions = sorted({*partitions, *previous.partitions})
            previous.reader.close()
        since_ms = int((time.time() - self.settings.rebuild_lookback_s) * 1000)
        topics = tuple(dict.fromkeys((*self.inputs, *self.outputs)))
        self.consumer.pause(partitions)
        reader = PartitionReader(self.kafka, topics, partitions, since_ms=since_ms)
        with self._lock:
            self._reading = _Reading(reader, list(partitions))

    def rebuild_step(self, budget_s: float | None = None) -> bool:
        """Read the open history read on for ``budget_s`` (default: the pacer's budget); once it reached
        the ends it saw, the tracker gets the events (their calls replayed with what is left of the
        budget, the rest on later ticks) and the partitions' live records flow again. Whether the read
        is done.

        Nothing read is dropped at the budget: a read cut there (as it was until session 32) lost the
        questions of a taken-over call whose transcripts the dead member had already committed, seen
        in CI with a whole test session's history on the topics."""
        reading = self._reading
        if reading is None:
            return True
        budget = self.pacer.budget_s if budget_s is None else budget_s
        t0 = time.monotonic()
        if not reading.reader.read(budget):
            return False
        with self._lock:  # (a revoke closes the read only from the group's poll, never inside this step)
            self._reading = None
        reading.reader.close()
        mine = [(rec, ev) for rec, ev in reading.reader.events if rec.topic in INPUTS or self._own(ev)]
        left = budget - (time.monotonic() - t0)
        with self._lock:
            self.tracker.rebuild(
                ((rec.partition, ev) for rec, ev in mine), self.clock(), budget_s=max(0.0, left)
            )
        self.consumer.resume(reading.partitions)
        self._gauge()
        return True

    def rebuild(self, partitions: list[int]) -> int:
        """Read the history of ``partitions`` and rebuild every call in it, in one go (no budget); how
        many records were read."""
        self.start_rebuild(partitions)
        reading = self._reading
        assert reading is not None
        while not reading.reader.read(read_budget_s(self.kafka)):
            pass
        self.rebuild_step()
        with self._lock:
            self.tracker.continue_rebuild(self.clock(), None)
        return len(reading.reader.events)

    def _own(self, ev: Event) -> bool:
        """An output event this variant published (other shadows share the shadow topic)."""
        prov = getattr(ev, "provenance", None)
        variant = prov.variant if prov is not None else "production"
        return variant == self.variant or (self.shadow_topic is None and prov is None)

    def _send(self, ev: Event) -> Any:
        if self.shadow_topic is None:
            return self.producer.send(ev)
        # ids of its own: production's are derived from the same call and segment ids
        return self.producer.send(namespaced(ev, self.variant, "sh-"), self.shadow_topic)

    # ------------------------------------------------------------------ event handling
    def handle(self, event: Event, record: Record) -> None:
        if record.topic not in INPUTS and not self._own(event):
            return  # the summaries role of a shadow: another shadow's card on the shared topic
        queue_ms = max(0.0, time.time() * 1000 - record.timestamp_ms)
        with self._lock:
            known = len(self.tracker.calls)
            self.tracker.apply(event, self.clock(), partition=record.partition, queue_ms=queue_ms)
            if isinstance(event, TranscriptSegment) and event.is_final and self.assistant.warms_context:
                st = self.tracker.calls.get(event.call_id)
                seg = st.segments.get(event.segment_id) if st is not None else None
                if seg is not None and seg[1].strip():
                    self._warm.append(seg[1])
        if len(self.tracker.calls) != known:
            self._gauge()

    # ------------------------------------------------------------------ timers: suggestions, summaries
    @property
    def kb_version(self) -> str:
        """The key of the knowledge-base index in use."""
        return str(self.assistant.kb.key)

    def switch_kb(self) -> str | None:
        """Put a newly loaded knowledge-base version in use (between ticks only); its key, or None."""
        pending = self.kb_switch.take() if self.kb_switch is not None else None
        if pending is None:
            return None
        key, assistant = pending
        old = self.kb_version
        with self._lock:
            self.assistant = assistant
            self.summarizer = Summarizer(assistant)
            # every card from now on names the version that made it
            self.tracker.provenance = assistant.provenance.model_copy(update={"variant": self.variant})
        log.info(
            "knowledge-base version switched",
            extra={"kb_version": key, "previous": old, "instance": self.instance},
        )
        return key

    def tick(self) -> None:
        """Publish what is due: suggestions of every call whose debounce ran out, then summaries."""
        self.switch_kb()
        if self._rebuild_assigned():
            # the rebuild (a read of up to half the poll interval, then replaying every open call)
            # had this tick: the loop polls before any batch. A batch right after it overran the
            # interval on a slow core, and the member was dropped again at each rejoin (session 29)
            return
        with self._lock:
            plan = self.tracker.due(self.clock(), limit=self.pacer.limit())
        t0 = self.timer()
        if plan.suggest or plan.alone:
            self._suggest(plan)
            self._paced(len(plan.suggest) + len(plan.alone), self.timer() - t0)
        # summaries while the tick's budget lasts, counted from its start (at least one is written)
        budget = min(plan.summary_budget_s, self.pacer.budget_s)
        for req in plan.summarize:
            self._summarize(req)
            if budget <= 0 or self.timer() - t0 > budget:
                break
        if plan:
            self._gauge()
        elif self._warm:
            self._warm_context()

    def _paced(self, n: int, seconds: float) -> None:
        """Tell the pacer what a batch cost; say so once when it first holds a batch below
        ``batch_max`` (a slow core: the operator sees why cards come in smaller batches)."""
        self.pacer.observe(n, seconds)
        limit = self.pacer.limit()
        metrics.BATCH_LIMIT.labels(service=SERVICE).set(limit)
        if limit < self.settings.batch_max and not self._paced_logged:
            self._paced_logged = True
            log.info(
                "suggestion batches paced below batch_max to fit the poll interval",
                extra={
                    "limit": limit,
                    "batch_max": self.settings.batch_max,
                    "per_request_ms": round((self.pacer.per_request_s or 0) * 1000),
                    "budget_ms": round(self.pacer.budget_s * 1000),
                    "instance": self.instance,
                },
            )

    def _warm_context(self) -> None:
        """On a tick with nothing due: embed the newest final segments' texts, so the caller's next
        question finds its context turns' vectors in the query cache and only its own words wait
        for the encoder (``rerank_context_vectors`` composed; #18)."""
        texts = [self._warm.popleft() for _ in range(min(WARM_BATCH, len(self._warm)))]
        try:
            self.assistant.warm_context(texts)
        except Exception:  # a warm-up is an optimisation: the suggestion embeds what is missing
            metrics.ERRORS.labels(service=SERVICE, kind="warm").inc()
            log.exception("context warm-up failed", extra={"instance": self.instance})

    def _run(self, requests: list[SuggestRequest]) -> tuple[list[SuggestResult], list[tuple[Any, Exception]]]:
        """Suggestions for one batch; if the batch raises, each request again on its own, so one call
        that keeps failing does not hold back the others."""
        try:
            return self.assistant.suggest_many(requests), []
        except Exception as exc:
            if len(requests) == 1:
                return [], [(requests[0], exc)]
        ok: list[SuggestResult] = []
        bad: list[tuple[Any, Exception]] = []
        for req in requests:
            try:
                ok.extend(self.assistant.suggest_many([req]))
            except Exception as exc:
                bad.append((req, exc))
        return ok, bad

    def _shed(self, requests: list[SuggestRequest]) -> None:
        """Load shedding: a request that has already waited past ``shed_context_after_ms`` is
        retrieved from the caller's words only (one query text, not three), so a backlog drains
        instead of growing; its card says so (``Suggestion.shed``)."""
        if self.assistant.reranker is None:
            return  # without the second stage a card already asks one text: nothing to shed
        now = time.perf_counter()
        for req in shed_late(requests, self.settings.shed_context_after_ms, now):
            metrics.SHED.labels(service=SERVICE).inc()
            log.info(
                "suggestion shed to the caller's words",
                extra={"call_id": req.call_id, "waited_ms": round(req.waited_ms(now))},
            )

    def _suggest(self, plan: Due) -> None:
        self._shed(plan.suggest + plan.alone)
        results, failures = self._run(plan.suggest) if plan.suggest else ([], [])
        for req in plan.alone:
            ok, bad = self._run([req])
            results += ok
            failures += bad
        sends: list[tuple[SuggestResult, list[Event]]] = []
        for res in results:
            try:
                sends.append((res, self.tracker.events_for(res)))
            except Exception as exc:  # e.g. a result that breaks the event contract
                failures.append((res.request, exc))
        for _res, events in sends:
            for ev in events:
                self._send(ev)
        self.producer.flush()
        with self._lock:
            for res, events in sends:
                self.tracker.record(res, events)
            for req, error in failures:
                self._failed(req, error)
        for _res, events in sends:
            for ev in events:
                if isinstance(ev, Suggestion):
                    self._published(ev)

    def _failed(self, request: SuggestRequest | SummaryRequest, exc: Exception) -> None:
        kind = "summary" if isinstance(request, SummaryRequest) else "suggestion"
        dropped = self.tracker.failed(request, self.clock())
        metrics.ERRORS.labels(service=SERVICE, kind=f"{kind}_dropped" if dropped else kind).inc()
        log.error(
            "dropped after repeated failures" if dropped else "failed, to be retried on its own",
            extra={
                "what": kind,
                "failures": self.settings.max_failures if dropped else None,
                "call_id": request.call_id,
                "segments": getattr(request, "trigger_segment_ids", None),
                "error": type(exc).__name__,
                "where": _where(exc),
                "instance": self.instance,
            },
        )

    def _published(self, ev: Suggestion) -> None:
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

    def _summarize(self, req: SummaryRequest) -> None:
        t0 = time.perf_counter()
        try:
            parts = self.summarizer.summarize(req.turns, req.cards)
            result = SummaryResult(req, parts, (time.perf_counter() - t0) * 1000)
            events = self.tracker.events_for(result)
        except Exception as exc:
            with self._lock:
                self._failed(req, exc)
            return
        for ev in events:
            self._send(ev).get(timeout=30)
        self.published_summaries += 1
        with self._lock:
            self.tracker.record(result, events)
        log.info("summary published", extra={"call_id": req.call_id, "category": parts.category})

    # ------------------------------------------------------------------ running
    def ready(self) -> tuple[bool, dict[str, object]]:
        polled = self.consumer.healthy()
        # kafka-python keeps polling (empty batches) while the broker is away: ask the broker itself
        broker = broker_answers(self.kafka)
        return polled and broker, {
            "instance": self.instance,
            "variant": self.variant,
            "role": self.role,
            "polled_recently": polled,
            "broker": "ok" if broker else "unreachable",
            "open_calls": len(self.tracker.calls),
            "calls_waiting_for_rebuild": self.tracker.replaying,  # taken over, history not replayed yet
            "partitions_being_read": len(self._reading.partitions) if self._reading is not None else 0,
            "suggestions": self.published_suggestions,
            "summaries": self.published_summaries,
            "kb_version": self.kb_version,
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
