"""Kafka plumbing on kafka-python: a keyed event producer and a consumer-group member.

Processing guarantee: at-least-once. A consumer decodes each record, drops event ids it has
already handled (a bounded window; handlers are idempotent too, e.g. unique keys in the
database), hands the event to the handler, and commits the offsets of a poll batch only after
every record in it was handled or dead-lettered. A record that cannot be decoded, that carries an
event type its registry topic does not (reason ``wrong_topic``), or whose handler keeps failing,
goes to ``<topic>.dlq`` with the raw bytes, the error and the source offset in its headers; the
consumer keeps going. Nothing is dropped silently.

:class:`PartitionReader` reads a range of partitions outside any group (a state rebuild after a
takeover), in steps of a time budget, and stops at the end offsets it saw at the start;
:func:`read_partitions` does that in one go.

Shutdown: :func:`install_signal_handlers` turns SIGINT/SIGTERM into ``stop()``; ``close()``
commits what was processed and leaves the group so a peer takes the partitions at once.

Why one module of ~520 lines: the producer, the consumer and the range read share the codec, the
dead-letter path, the record type and the metrics; most of it is the consumer's commit discipline.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError

from . import metrics
from .codec import DecodeError, Headers, dead_letter_headers, decode, encode, type_of
from .events import Event
from .settings import KafkaSettings
from .topics import TOPICS, dlq_name, topic_for_event

log = logging.getLogger("dasan.streaming")


class EventProducer:
    """Produces events keyed by call id (so a call stays on one partition, in order)."""

    def __init__(self, settings: KafkaSettings | None = None, **overrides: Any) -> None:
        self.settings = settings or KafkaSettings()
        cfg = self.settings.producer_config()
        cfg.setdefault("max_block_ms", 10_000)
        cfg.update(overrides)
        self._producer = KafkaProducer(**cfg)

    def send(self, event: Event, topic: str | None = None) -> Any:
        """Queue one event; returns kafka-python's future. Raises OversizedMessage before sending."""
        topic = topic or topic_for_event(type_of(event))
        key, value, headers = encode(event, self.settings.max_message_bytes)
        fut = self._producer.send(topic, key=key, value=value, headers=headers)
        metrics.EVENTS_OUT.labels(topic=topic, type=type_of(event)).inc()
        return fut

    def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> Any:
        return self._producer.send(topic, key=key, value=value, headers=headers or [])

    def flush(self, timeout: float | None = 30.0) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        try:
            self._producer.flush(timeout=timeout)
        finally:
            self._producer.close(timeout=timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Dedupe:
    """Bounded memory of event ids already handled (the newest ``size`` ids), with the partition
    each came from, so the ids of revoked partitions can be forgotten (:meth:`forget`)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._seen: OrderedDict[str, Any] = OrderedDict()

    def seen(self, event_id: str, source: Any = None) -> bool:
        """True if already seen; otherwise remembers it (from ``source``) and returns False."""
        if self.size <= 0:
            return False
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            return True
        self._seen[event_id] = source
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return False

    def forget(self, sources: set[Any]) -> None:
        """Forget the ids remembered from ``sources``."""
        if sources and self._seen:
            self._seen = OrderedDict((k, v) for k, v in self._seen.items() if v not in sources)

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True)
class Record:
    """Where an event came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


Handler = Callable[[Event, Record], None]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base (kafka-python), which subscribe() requires
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            self.owner._on_revoked(set(revoked))
        except Exception:
            log.exception("on_partitions_revoked failed", extra={"group": self.owner.group_id})
            raise

    def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            self.owner._on_assigned(set(assigned))
        except Exception:
            log.exception("on_partitions_assigned failed", extra={"group": self.owner.group_id})
            raise


class EventConsumer:
    """One member of a consumer group: decode → dedupe → handle → commit; failures → DLQ.

    ``handler(event, record)`` is called for each new event in partition order. It should be
    idempotent: after a crash the records since the last commit are delivered again.
    ``on_assigned`` / ``on_revoked`` receive sets of ``TopicPartition`` (for per-call state that
    must be rebuilt or dropped when partitions move). ``before_commit()`` runs before every offset
    commit, e.g. to write a batch the handler buffered; if it raises, the offsets are not committed
    and the batch is delivered again.

    ``commit_limits()`` lets a handler that keeps work in memory across records (an ASR stream
    whose utterance is not yet final) hold back the committed offset of a partition: it returns
    ``{partition: first offset still needed}``, and the consumer commits no further than that, so a
    member that takes the partition over after a crash re-reads the unfinished part. Positions held
    back are committed later, at least once a second, as the limits move.
    """

    def __init__(
        self,
        topics: Iterable[str],
        group_id: str,
        handler: Handler,
        settings: KafkaSettings | None = None,
        *,
        dlq_producer: EventProducer | None = None,
        on_assigned: Callable[[set[TopicPartition]], object] | None = None,
        on_revoked: Callable[[set[TopicPartition]], object] | None = None,
        before_commit: Callable[[], None] | None = None,
        commit_limits: Callable[[], Mapping[TopicPartition, int]] | None = None,
        handler_attempts: int = 3,
        **overrides: Any,
    ) -> None:
        self.settings = settings or KafkaSettings()
        self.topics = list(topics)
        self.group_id = group_id
        self.handler = handler
        self.handler_attempts = max(1, handler_attempts)
        self._user_assigned = on_assigned
        self._user_revoked = on_revoked
        self._before_commit = before_commit
        self._commit_limits = commit_limits
        self._positions: dict[TopicPartition, int] = {}  # next offset to consume, per partition
        self._committed: dict[TopicPartition, int] = {}  # what this member committed, per partition
        self._first_offset: dict[TopicPartition, int] = {}  # first offset handled since assignment
        self._resume_at: dict[TopicPartition, int] = {}  # revoked partitions: the group's committed offset
        self._last_commit = 0.0
        self._lag_reported_at = 0.0
        self._own_producer = dlq_producer is None
        self.dlq = dlq_producer or EventProducer(self.settings)
        self.dedupe = Dedupe(self.settings.dedupe_window)
        self._stop = threading.Event()
        self.processed = 0
        self.dead_lettered = 0
        self.duplicates = 0
        self.commit_failures = 0  # offset commits the group refused (e.g. after a poll-interval overrun)
        self.unknown_fields = 0  # events whose unknown (newer, optional) fields were dropped
        self._unknown_logged: set[str] = set()
        self.last_poll_at: float | None = None
        self.last_error: str | None = None
        cfg = self.settings.consumer_config(group_id)
        cfg.update(overrides)
        self._consumer = KafkaConsumer(**cfg)
        self._consumer.subscribe(self.topics, listener=_Rebalance(self))

    # ------------------------------------------------------------------ group membership
    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Every batch is committed right after it is handled (up to the commit limits), and
        # revocation happens inside poll() between batches, so nothing is committed here.
        # (kafka-python 3 also forbids blocking commits from a rebalance callback.)
        log.info("partitions revoked", extra={"group": self.group_id, "partitions": len(revoked)})
        self._resume_at = {}
        for tp in revoked:
            position = self._positions.pop(tp, None)
            committed = self._committed.pop(tp, None)
            first = self._first_offset.pop(tp, None)
            # Where the group's committed offset stands: this member's last commit, or, if it made
            # none, where it started reading (the offset committed before it got the partition).
            at = committed if committed is not None else first
            if at is not None and at != position:
                self._resume_at[tp] = at
        # What a revoked partition delivers after it is assigned again (from the committed offset,
        # which commit_limits may hold back) is not a duplicate: the handler was told it lost the
        # partition and may have dropped its state for it (the ASR worker does). Remembering those
        # ids would silently swallow the re-read records: the audio of an open utterance was lost
        # at every rebalance that gave a worker its own partition back.
        self.dedupe.forget(revoked)
        if self._user_revoked:
            self._user_revoked(revoked)

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"group": self.group_id, "partitions": len(assigned)})
        # kafka-python keeps the fetch position of a partition that stays with this member across
        # a rebalance, though the handler was told it was revoked: resume such a partition at the
        # group's committed offset, as any other member would, so that what the commit limits
        # held back (or a failed commit left uncommitted) is delivered again, not skipped.
        for tp in assigned & self._resume_at.keys():
            self._consumer.seek(tp, self._resume_at[tp])
        self._resume_at = {}
        if self._user_assigned:
            self._user_assigned(assigned)

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def pause(self, partitions: Iterable[int]) -> set[TopicPartition]:
        """Stop fetching these partition numbers (of every subscribed topic assigned to this member)
        while the member keeps polling: their records wait in Kafka, their positions stay. A new
        assignment starts unpaused. The partitions paused."""
        wanted = set(partitions)
        tps = {tp for tp in self._consumer.assignment() if tp.partition in wanted}
        if tps:
            self._consumer.pause(*tps)
        return tps

    def resume(self, partitions: Iterable[int]) -> None:
        """Fetch these partition numbers again (those still assigned and paused)."""
        wanted = set(partitions)
        tps = [tp for tp in self._consumer.paused() if tp.partition in wanted]
        if tps:
            self._consumer.resume(*tps)

    @property
    def max_poll_interval_s(self) -> float:
        """The longest this member may go between two polls before the group drops it (seconds):
        the work a handler does between polls must fit well inside it."""
        return float(self._consumer.config["max_poll_interval_ms"]) / 1000

    # ------------------------------------------------------------------ processing
    def poll_once(self, timeout_ms: int = 500) -> int:
        """Poll one batch, handle it, commit it. Returns the number of records handled."""
        try:
            batches = self._consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            self.last_error = f"poll: {exc}"
            log.warning("poll failed, retrying: %r", exc, extra={"group": self.group_id})
            time.sleep(0.5)
            return 0
        self.last_poll_at = time.monotonic()
        n = 0
        for tp, records in batches.items():
            if records:
                self._first_offset.setdefault(tp, records[0].offset)
            for rec in records:
                self._handle_record(tp, rec)
                self._positions[tp] = rec.offset + 1
                n += 1
        if self.last_poll_at - self._lag_reported_at > 5.0:
            self._report_lag()
        if n or (
            self._commit_limits is not None
            and self._positions != self._committed
            and time.monotonic() - self._last_commit > 1.0
        ):
            self._commit()
        return n

    def _handle_record(self, tp: TopicPartition, rec: Any) -> None:
        headers: Headers = list(rec.headers or [])
        meta = Record(tp.topic, tp.partition, rec.offset, rec.timestamp)
        ignored: list[str] = []
        try:
            event = decode(rec.value, headers, rec.key, ignored=ignored)
        except DecodeError as exc:
            self._dead_letter(meta, rec.key, rec.value, headers, exc.reason, str(exc))
            return
        if ignored:
            self._note_unknown_fields(tp.topic, event, ignored)
        spec = TOPICS.get(tp.topic)
        if spec is not None and type_of(event) not in spec.event_types:
            # a valid event on a topic that does not carry its type: a producer bug, not input
            msg = f"{type_of(event)} does not belong on {tp.topic} (it carries {', '.join(spec.event_types)})"
            self._dead_letter(meta, rec.key, rec.value, headers, "wrong_topic", msg)
            return
        metrics.EVENTS_IN.labels(topic=tp.topic, type=type_of(event), group=self.group_id).inc()
        if self.dedupe.seen(event.event_id, tp):
            self.duplicates += 1
            metrics.DUPLICATES.labels(topic=tp.topic, group=self.group_id).inc()
            return
        last_exc: Exception | None = None
        for attempt in range(1, self.handler_attempts + 1):
            try:
                self.handler(event, meta)
                self.processed += 1
                return
            except Exception as exc:
                last_exc = exc
                log.warning(
                    "handler failed",
                    extra={
                        "call_id": event.call_id,
                        "attempt": attempt,
                        "error": repr(exc),
                        "group": self.group_id,
                    },
                )
                time.sleep(min(0.1 * 2**attempt, 2.0))
        self._dead_letter(meta, rec.key, rec.value, headers, "handler_error", repr(last_exc))

    def _note_unknown_fields(self, topic: str, event: Event, ignored: list[str]) -> None:
        """A newer producer's optional fields: dropped, counted, and logged once per field name."""
        self.unknown_fields += 1
        metrics.UNKNOWN_FIELDS.labels(topic=topic, type=type_of(event)).inc()
        new = [f for f in ignored if f not in self._unknown_logged]
        if new and len(self._unknown_logged) < 256:  # bounded: field names come from the wire
            self._unknown_logged.update(new)
            log.info(
                "ignored fields this version does not know (newer producer?)",
                extra={"topic": topic, "fields": [f[:80] for f in new[:10]], "call_id": event.call_id},
            )

    def _dead_letter(
        self, meta: Record, key: bytes | None, value: bytes | None, headers: Headers, reason: str, error: str
    ) -> None:
        self.dead_lettered += 1
        metrics.DEAD_LETTERS.labels(topic=meta.topic, reason=reason).inc()
        log.warning(
            "dead-lettered",
            extra={
                "topic": meta.topic,
                "partition": meta.partition,
                "offset": meta.offset,
                "reason": reason,
                "error": error[:300],
                "call_id": (key or b"").decode(errors="replace"),
            },
        )
        dl_headers = dead_letter_headers(
            reason=reason,
            error=error,
            topic=meta.topic,
            partition=meta.partition,
            offset=meta.offset,
            group=self.group_id,
            original=headers,
        )
        self.dlq.send_raw(dlq_name(meta.topic), key, value, dl_headers).get(timeout=30)

    def _commit(self) -> None:
        if self._before_commit is not None:
            self._before_commit()  # raising here leaves the batch uncommitted: it is redelivered
        self._last_commit = time.monotonic()
        try:
            if self._commit_limits is None:
                self._consumer.commit()
                self._committed = dict(self._positions)
                return
            limits = self._commit_limits()
            assigned = self._consumer.assignment()
            offsets = {
                tp: min(pos, limits.get(tp, pos)) for tp, pos in self._positions.items() if tp in assigned
            }
            todo = {tp: off for tp, off in offsets.items() if self._committed.get(tp) != off}
            if todo:
                self._consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in todo.items()})
                self._committed.update(todo)
        except KafkaError as exc:
            # The records will be redelivered and absorbed by idempotent handlers.
            self.last_error = f"commit: {exc}"
            self.commit_failures += 1
            metrics.COMMIT_FAILURES.labels(group=self.group_id).inc()
            log.warning("commit failed", extra={"group": self.group_id, "error": str(exc)})

    def run(self, poll_timeout_ms: int = 500, idle: Callable[[], None] | None = None) -> None:
        """Poll until :meth:`stop`; ``idle()`` runs after each poll (timers, housekeeping)."""
        try:
            while not self._stop.is_set():
                self.poll_once(poll_timeout_ms)
                if idle:
                    idle()
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def lag(self) -> int:
        """Records behind the end of the assigned partitions (for metrics and autoscaling)."""
        assigned = list(self._consumer.assignment())
        if not assigned:
            return 0
        ends = self._consumer.end_offsets(assigned)
        total = 0
        for tp in assigned:
            pos = self._consumer.position(tp)
            total += max(0, ends.get(tp, 0) - (pos or 0))
        return total

    def _report_lag(self) -> None:
        """Export the lag as ``dasan_consumer_lag{group}`` (every 5 s; for dashboards and autoscaling)."""
        self._lag_reported_at = time.monotonic()
        try:
            metrics.CONSUMER_LAG.labels(group=self.group_id).set(self.lag())
        except Exception as exc:  # best effort: kafka-python raises KeyError when a topic was recreated
            log.debug("lag unavailable: %r", exc, extra={"group": self.group_id})

    def healthy(self, max_silence_s: float = 30.0) -> bool:
        return self.last_poll_at is not None and time.monotonic() - self.last_poll_at < max_silence_s

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        try:
            self._commit()
        finally:
            self._consumer.close()
            if self._own_producer:
                self.dlq.close()


def read_budget_s(settings: KafkaSettings) -> float:
    """How long a consumer may spend re-reading partitions inside its poll loop (a state rebuild on
    assignment): half its ``max.poll.interval``, so the read and the batch after it end before the
    group counts the member as stuck. A budget past the interval (it had a 5 s floor, above the 3 s
    interval the end-to-end tests run with) livelocks a loaded machine: the read overruns, the member
    is dropped, rejoins, is assigned the partitions again and starts the same read (seen in the e2e
    replay test with the CPU shared by an index build)."""
    return settings.poll_interval_ms / 1000 / 2


class PartitionReader:
    """Reads ``partitions`` of ``topics`` (those that exist) outside any consumer group, up to the end
    offsets taken when it opens, in steps: :meth:`read` reads for a time budget and says whether it
    reached the ends; a later call goes on where it stopped. A state rebuild larger than one tick's
    budget so goes on over several ticks instead of being cut (a cut read lost the questions of a
    taken-over call: its transcripts were committed by the member that died and never re-read).

    From ``since_ms`` (a record timestamp; a partition with nothing that recent gives nothing), from
    ``start_offsets`` (a partition not named there: from its beginning) or from the beginning. Records
    that do not decode are skipped (the live consumer dead-letters them). ``events``: what was read
    so far, each partition in order."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Iterable[str],
        partitions: Iterable[int],
        *,
        since_ms: int | None = None,
        start_offsets: Mapping[TopicPartition, int] | None = None,
    ) -> None:
        self.since_ms = since_ms
        self.events: list[tuple[Record, Event]] = []
        cfg = settings.consumer_config(None)
        cfg.update(enable_auto_commit=False, consumer_timeout_ms=1000)
        self._reader = KafkaConsumer(**cfg)
        self._closed = False
        try:
            wanted = sorted(set(partitions))
            self._tps: list[TopicPartition] = []
            for topic in topics:
                avail = self._reader.partitions_for_topic(topic) or set()
                self._tps += [TopicPartition(topic, p) for p in wanted if p in avail]
            self._ends: dict[TopicPartition, int] = {}
            self._fixed: dict[TopicPartition, int] = {}  # the end each partition is read to
            self._before: set[TopicPartition] = set()
            if self._tps:
                self._open(start_offsets)
        except BaseException:
            self.close()
            raise

    def _open(self, start_offsets: Mapping[TopicPartition, int] | None) -> None:
        reader, tps = self._reader, self._tps
        reader.assign(tps)
        self._ends = reader.end_offsets(tps)
        offsets = None
        if self.since_ms is not None:
            try:
                offsets = reader.offsets_for_times(dict.fromkeys(tps, self.since_ms))
            except Exception as exc:  # a broker without timestamp lookup: read all retained history
                log.warning(
                    "offsets_for_times failed, reading from the beginning", extra={"error": repr(exc)}
                )
        # Tansu answers a timestamp lookup with an earlier offset (seen: the partition's first, for
        # any time), so records older than ``since_ms`` are skipped here up to the first one at or
        # after it; from there on everything is kept, as Kafka's own lookup would
        for tp in tps:
            if offsets is not None:
                off = offsets.get(tp)
                reader.seek(tp, self._ends[tp] if off is None else off.offset)
                self._before.add(tp)
            elif start_offsets is not None and tp in start_offsets:
                reader.seek(tp, start_offsets[tp])
            else:
                reader.seek_to_beginning(tp)

    @property
    def topics(self) -> list[str]:
        """The topics read (those of ``topics`` that exist)."""
        return sorted({tp.topic for tp in self._tps})

    @property
    def done(self) -> bool:
        """Every partition is read up to its end: the end offset it had when the reader opened, or the
        high watermark of its first fetch response where that is further."""
        # Read up to those ends, no further: what arrives later is the live consumer's to handle.
        # Waiting for an empty poll instead never ends while producers are writing: the assist state
        # rebuild did that, under 30 live calls it took 45 s, past max.poll.interval, and the
        # rebalance that followed started the rebuild again. The listed end alone is not enough:
        # Tansu answers one past the first offset of the last batch (8 records in batches of 5 and 3:
        # 6), and a poll hands out at most max.poll.records, so the position passed that end with the
        # rest of the batch still unread (a test reading 3 a poll got 3 of 12 records).
        for tp in self._tps:
            end = self._fixed.get(tp)
            if end is None:
                high = self._reader.highwater(tp)
                if high is None:  # no fetch response for it yet
                    return False
                end = self._fixed[tp] = max(high, self._ends[tp])
            if self._reader.position(tp) < end:
                return False
        return True

    def read(self, budget_s: float) -> bool:
        """Read for about ``budget_s`` (at least one poll, so each step makes progress); whether every
        partition reached its end."""
        deadline = time.monotonic() + budget_s
        polled = False
        while not self.done:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if polled and left_ms <= 0:
                return False
            polled = True
            for tp, recs in self._reader.poll(timeout_ms=max(10, min(300, left_ms))).items():
                for rec in recs:
                    if tp in self._before:
                        if self.since_ms is not None and rec.timestamp < self.since_ms:
                            continue
                        self._before.discard(tp)
                    try:
                        ev = decode(rec.value, list(rec.headers or []), rec.key)
                    except DecodeError:
                        continue
                    self.events.append((Record(tp.topic, tp.partition, rec.offset, rec.timestamp), ev))
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()


def read_partitions(
    settings: KafkaSettings,
    topics: Iterable[str],
    partitions: Iterable[int],
    *,
    since_ms: int | None = None,
    start_offsets: Mapping[TopicPartition, int] | None = None,
    budget_s: float | None = None,
) -> list[tuple[Record, Event]]:
    """Decoded events of ``partitions`` of ``topics`` in one go (:class:`PartitionReader`).
    ``budget_s`` (default: :func:`read_budget_s`) bounds the read; past it, what was read is returned
    with a warning."""
    budget = budget_s if budget_s is not None else read_budget_s(settings)
    reader = PartitionReader(settings, topics, partitions, since_ms=since_ms, start_offsets=start_offsets)
    try:
        if not reader.read(budget):
            log.warning(
                "partition read stopped at its time budget",
                extra={
                    "topics": reader.topics,
                    "budget_s": budget,
                    "records": len(reader.events),
                },
            )
        return reader.events
    finally:
        reader.close()


def install_signal_handlers(stop: Callable[[], None]) -> None:
    """SIGINT/SIGTERM → ``stop()`` (main thread only), so services commit and leave the group."""

    def _handler(signum: int, _frame: Any) -> None:
        log.info("signal received, stopping", extra={"signal": signum})
        stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)
