"""The recorder: consumer group ``console-recorder`` writing every topic to the store of record,
then fanning each newly stored event out to the websockets of that call. Shadow assists' output
(``assist.suggestions.shadow``) is kept apart (``shadow_suggestions``) and never fanned out."""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import Counter
from sqlalchemy.exc import InterfaceError, OperationalError

from streaming import metrics
from streaming.codec import dead_letter_headers, encode
from streaming.health import broker_reachable
from streaming.kafka import EventConsumer, Record
from streaming.settings import KafkaSettings
from streaming.topics import (
    ASSIST_SUGGESTIONS,
    ASSIST_SUGGESTIONS_SHADOW,
    CALL_EVENTS,
    CALL_SUMMARIES,
    CALL_TRANSCRIPTS,
    dlq_name,
)

from .hub import Hub
from .store import OwnerConflict, Store

log = logging.getLogger("dasan.console")

TOPICS = (CALL_EVENTS, CALL_TRANSCRIPTS, ASSIST_SUGGESTIONS, CALL_SUMMARIES, ASSIST_SUGGESTIONS_SHADOW)
RECORDED = Counter("dasan_console_recorded_total", "Events written to the store", ["type"])
SKIPPED = Counter("dasan_console_redelivered_total", "Events already in the store (redelivery)")
OWNER_CONFLICTS = Counter(
    "dasan_console_owner_conflicts_total",
    "call_started events refused because they would change the owner of a call already started",
)


class Recorder:
    """Runs an :class:`EventConsumer` in a background thread, reconnecting with back-off."""

    def __init__(
        self,
        store: Store,
        hub: Hub | None,
        kafka: KafkaSettings | None = None,
        group_id: str = "console-recorder",
        batch_max: int = 500,
        **consumer_overrides: Any,
    ) -> None:
        self.store = store
        self.hub = hub
        self.kafka = kafka or KafkaSettings()
        self.group_id = group_id
        self.overrides = consumer_overrides
        self.consumer: EventConsumer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.recorded = 0
        self.redelivered = 0
        self.last_error: str | None = None
        self.broker_ok = False
        self.batch_max = batch_max
        self._pending: list[tuple[Any, Record]] = []

    # ------------------------------------------------------------------ handler
    def handle(self, event: Any, record: Record | None = None) -> None:
        """Record one event now and publish it if it was new."""
        self._publish(self.store.record_many([event]), 1)

    def _publish(self, results: list[Any], offered: int) -> None:
        dup = offered - len(results)
        if dup:
            self.redelivered += dup
            SKIPPED.inc(dup)
        for r in results:
            self.recorded += 1
            RECORDED.labels(type=r.type).inc()
            if self.hub is not None:
                self.hub.publish(r.call_id, r.message())

    def _buffer(self, event: Any, record: Record) -> None:
        """Kafka path: events of a poll batch are written in one transaction (see :meth:`flush`)."""
        self._pending.append((event, record))
        if len(self._pending) >= self.batch_max:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events; runs before every offset commit, so nothing is committed unwritten.

        A database outage raises (offsets stay uncommitted, the batch comes again); an event the
        database refuses on its own is dead-lettered and the rest are written.
        """
        if not self._pending:
            return
        shadow = [e for e, rec in self._pending if rec.topic == ASSIST_SUGGESTIONS_SHADOW]
        batch = [(e, rec) for e, rec in self._pending if rec.topic != ASSIST_SUGGESTIONS_SHADOW]
        if shadow:
            self.store.record_shadow(shadow)  # a database error raises: nothing is committed
        try:
            self._publish(self.store.record_many([e for e, _ in batch]), len(batch))
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            log.warning("batch write failed, writing one by one: %r", exc, extra={"events": len(batch)})
            for event, rec in batch:
                try:
                    self.handle(event, rec)
                except (OperationalError, InterfaceError):
                    raise
                except Exception as one:
                    self._dead_letter(event, rec, one)
        self._pending = []

    def _dead_letter(self, event: Any, rec: Record, exc: Exception) -> None:
        if isinstance(exc, OwnerConflict):
            reason = "owner_conflict"
            OWNER_CONFLICTS.inc()
            # The call id and the names of the fields, never their values (no personal data).
            log.warning(
                "call_started refused: it would change the owner of a call already started",
                extra={"call_id": event.call_id, "fields": exc.fields, "event_id": event.event_id},
            )
        else:
            reason = "handler_error"
            metrics.ERRORS.labels(service="console", kind="record").inc()
            log.error("event refused by the store, dead-lettered: %r", exc, extra={"call_id": event.call_id})
        if self.consumer is None:
            raise exc
        metrics.DEAD_LETTERS.labels(topic=rec.topic, reason=reason).inc()
        key, value, headers = encode(event, self.kafka.max_message_bytes)
        dl = dead_letter_headers(
            reason=reason,
            error=repr(exc),
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            group=self.group_id,
            original=headers,
        )
        self.consumer.dlq.send_raw(dlq_name(rec.topic), key, value, dl).get(timeout=30)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="console-recorder", daemon=True)
        self._thread.start()
        threading.Thread(target=self._probe, name="console-broker-probe", daemon=True).start()

    def _probe(self) -> None:
        """Keep ``broker_ok`` current on a thread of its own: the consumer loop can sit in an offset
        commit for the whole request timeout (35 s) when the broker hangs, and its view would go stale."""
        while not self._stop.wait(2.0):
            self.broker_ok = broker_reachable(self.kafka)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            self.broker_ok = broker_reachable(self.kafka)
            if not self.broker_ok:
                # kafka-python blocks for long in its constructor without a broker: wait here instead,
                # where a stop is noticed at once.
                log.warning("broker unreachable, recorder waiting", extra={"backoff_s": backoff})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            try:
                self._pending = []
                self.consumer = EventConsumer(
                    TOPICS,
                    self.group_id,
                    self._buffer,
                    self.kafka,
                    before_commit=self.flush,
                    **self.overrides,
                )
                log.info("recorder started", extra={"group": self.group_id, "topics": list(TOPICS)})
                backoff = 0.5
                while not self._stop.is_set():
                    self.consumer.poll_once(300)
            except Exception as exc:
                self.last_error = repr(exc)
                metrics.ERRORS.labels(service="console", kind="recorder").inc()
                log.warning("recorder failed, retrying: %r", exc, extra={"backoff_s": backoff})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if self.consumer is not None:
                    try:
                        self.consumer.close()
                    except Exception as exc:
                        log.warning("recorder close failed: %r", exc)
                    self.consumer = None

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def healthy(self) -> bool:
        """Polling, and the broker answers (kafka-python polls quietly while the broker is away)."""
        return self.consumer is not None and self.broker_ok and self.consumer.healthy(max_silence_s=30)
