"""Switching knowledge-base versions in a running assist service, and its internal search API.

- :func:`announce`: ``dasan kb activate|rollback|import --activate`` publish the active version's key
  on the compacted ``kb.versions`` topic (one partition, record key ``active``).
- :class:`KbSwitch`: a daemon thread of each assist instance reads that topic from its start
  (outside any consumer group: every instance sees every announcement), loads an announced index
  *beside* the one in use and hands it over; :meth:`assist.service.AssistService.tick` swaps it in
  at the start of a tick, so a batch is never drafted half with one version and half with another.
- :func:`internal_routes`: ``/internal/search``, ``/internal/article`` and ``/internal/kb`` on the
  service's loopback health port, over the knowledge base in use (the console calls them).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from streaming import metrics
from streaming.settings import KafkaSettings

log = logging.getLogger("dasan.assist.kb")
ANNOUNCE_KEY = b"active"


def announce(kafka: KafkaSettings, topic: str, key: str, how: str, at: datetime | None = None) -> None:
    """Publish ``key`` as the active version (the latest record of the topic wins)."""
    from assist.knowledge.versions import announcement
    from streaming.kafka import EventProducer

    value = json.dumps(announcement(key, how, at or datetime.now(UTC))).encode()
    with EventProducer(kafka) as producer:
        producer.send_raw(topic, ANNOUNCE_KEY, value).get(timeout=30)


def load_version(path: Path, settings: Any, current: Any | None = None) -> Any:
    """An :class:`assist.assistant.Assistant` over the index folder ``path``, loaded with the settings
    it was built with; the encoder and analyser of ``current`` (an assistant) are reused when the
    vectors and the user dictionary match (a corpus amendment usually changes neither)."""
    from assist.knowledge import KnowledgeBase, KnowledgeSettings
    from assist.knowledge.store import dense_key, read_manifest

    from .assistant import Assistant

    manifest = read_manifest(path)
    built = {k: v for k, v in manifest.get("settings", {}).items() if k in KnowledgeSettings.model_fields}
    kb_settings = KnowledgeSettings().model_copy(update=built).resolved()
    encoder = None
    old = getattr(current, "kb", None)
    if old is not None and old.encoder is not None and manifest.get("dense_key") == dense_key(old.settings):
        encoder = old.encoder
    analyzer = old.analyzer if old is not None else None
    kb = KnowledgeBase.load(path, kb_settings, encoder=encoder, analyzer=analyzer)
    assistant = Assistant(kb, settings)
    assistant.warm_up()  # the first query pays for lazy set-up: here, on the loading thread, not in a tick
    return assistant


class KbSwitch:
    """Watches the announcements; loads the announced version; :meth:`take` hands it over once."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        load: Callable[[str], Any],
        current: str | None,
        poll_ms: int = 500,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.load = load
        self.wanted = current  # the version in use or being loaded
        self.poll_ms = poll_ms
        self._pending: tuple[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kb-switch", daemon=True)
        self.loading: str | None = None
        self.failed: str | None = None

    def start(self) -> KbSwitch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def take(self) -> tuple[str, Any] | None:
        """The loaded version not yet in use (key, assistant), once; None when there is none."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def _consumer(self) -> KafkaConsumer | None:
        cfg = self.kafka.consumer_config(None)
        cfg.update(enable_auto_commit=False)
        consumer = KafkaConsumer(**cfg)
        while not self._stop.is_set():
            if consumer.partitions_for_topic(self.topic):
                tps = [
                    TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic))
                ]
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
                return consumer
            self._stop.wait(2.0)  # the topic is not there yet (created by `dasan topics create`)
        consumer.close()
        return None

    def _run(self) -> None:
        from assist.knowledge.versions import parse_announcement

        try:
            consumer = self._consumer()
        except Exception:
            log.exception("cannot watch knowledge-base versions", extra={"topic": self.topic})
            return
        if consumer is None:
            return
        try:
            while not self._stop.is_set():
                latest = None
                for recs in consumer.poll(timeout_ms=self.poll_ms).values():
                    for rec in recs:
                        key = parse_announcement(rec.value)
                        if key is not None:
                            latest = key
                if latest is not None and latest != self.wanted:
                    self._switch_to(latest)
        except Exception:
            log.exception("knowledge-base version watch stopped", extra={"topic": self.topic})
        finally:
            consumer.close()

    def _switch_to(self, key: str) -> None:
        self.loading = key
        log.info("loading knowledge-base version", extra={"kb_version": key})
        try:
            loaded = self.load(key)
        except Exception as exc:
            self.failed = key
            metrics.ERRORS.labels(service="assist", kind="kb_version_load").inc()
            log.error(
                "knowledge-base version not loaded; keeping the one in use",
                extra={"kb_version": key, "error": repr(exc)},
            )
            return
        finally:
            self.loading = None
        self.wanted = key
        with self._lock:
            self._pending = (key, loaded)


# -- the internal API (loopback) ------------------------------------------------------------------
def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def internal_routes(current: Callable[[], Any | None], district_boost: float) -> dict[str, Any]:
    """The service's ``/internal/*`` routes over ``current()`` (the assistant in use, None while it
    loads). Queries are not logged here; the console masks them before it logs or audits."""
    from assist.knowledge.lookup import SearchQuery, counselor_search

    def search(query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        assistant = current()
        if assistant is None:
            return 503, {"error": "knowledge base loading"}
        try:
            q = SearchQuery(
                q=_one(query, "q") or "",
                law=_one(query, "law") or None,
                district=_one(query, "district") or None,
                topic=_one(query, "topic") or None,
                as_of=_one(query, "as_of") or None,
                k=_one(query, "k") or 8,
            )
        except ValidationError as exc:
            return 400, {"error": "bad query", "fields": [".".join(map(str, e["loc"])) for e in exc.errors()]}
        return 200, counselor_search(assistant.kb, q, district_boost).model_dump(mode="json")

    def article(query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        assistant = current()
        if assistant is None:
            return 503, {"error": "knowledge base loading"}
        rid = _one(query, "id")
        eff = _one(query, "effective_date")
        try:
            day = date.fromisoformat(eff) if eff else None
        except ValueError:
            return 400, {"error": "bad effective_date"}
        if not rid:
            return 400, {"error": "id required"}
        found = assistant.kb.article_version(rid, day)
        if found is None:
            return 404, {"error": "not found"}
        return 200, found.model_dump(mode="json")

    def kb_info(query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        assistant = current()
        if assistant is None:
            return 503, {"error": "knowledge base loading"}
        kb = assistant.kb
        return 200, {"index_key": kb.key, "records": len(kb.records), "dense": kb.dense is not None}

    return {"/internal/search": search, "/internal/article": article, "/internal/kb": kb_info}
