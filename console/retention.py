"""The retention job and the erasure of one caller's (or one call's) data.

``run_retention`` deletes what each table keeps past its retention (the ``*_retention_days``
settings; defaults and their legal basis in docs/security.md). It runs every
``retention_interval_s`` inside the console process (a thread of its own, whether or not this
process records) and on demand as ``dasan privacy retention``. Several console replicas running it
at once is harmless: each delete is idempotent.

``erase`` removes everything the store holds about a caller (found by the caller key the ASR
gateway derives from the number, :func:`streaming.callers.caller_key`) or about one call, and
says what Kafka still holds and until when (the topics' retention in :mod:`streaming.topics`).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streaming.callers import DEV_CALLER_KEY_SECRET, caller_key, normalize_number
from streaming.topics import DAY_MS, all_topic_specs

from .models import Call
from .settings import ConsoleSettings
from .store import Actor, Store
from .vocabulary import AuditAction

log = logging.getLogger("dasan.console")

SYSTEM = Actor("retention-job", "system")


def longest_topic_retention() -> timedelta:
    """The longest any topic (dead-letter topics included) keeps an event."""
    return timedelta(milliseconds=max(t.retention_ms for t in all_topic_specs()))


def run_retention(store: Store, settings: ConsoleSettings) -> dict[str, int]:
    """One pass over every table; returns the rows deleted (or cleared) per table and column."""
    now = store.now()

    def before(days: float) -> datetime:
        return now - timedelta(days=days)

    out: dict[str, int] = {"segments.text_raw": store.purge_raw(before(settings.raw_retention_days))}
    for table, n in store.purge_transcripts(before(settings.transcript_retention_days)).items():
        out[table] = out.get(table, 0) + n
    out["feedback"] = out.get("feedback", 0) + store.purge_feedback(before(settings.feedback_retention_days))
    out["calls.caller_key"] = store.forget_caller_keys(before(settings.caller_key_retention_days))
    for table, n in store.purge_calls(before(settings.call_record_retention_days)).items():
        out[table] = out.get(table, 0) + n
    out["audit_log"] = store.purge_audit(before(settings.audit_retention_days))
    out["sessions"] = store.purge_sessions(settings.session_idle_s)
    out["erased_calls"] = store.purge_erased(now - longest_topic_retention() - timedelta(days=1))
    done = {k: v for k, v in out.items() if v}
    if done:
        log.info("retention: rows deleted past their retention", extra={"deleted": done})
        # Sessions expire all day long: not worth an audit row of their own.
        if set(done) - {"sessions"}:
            store.audit(SYSTEM, AuditAction.retention, detail=", ".join(f"{k}={v}" for k, v in done.items()))
    return out


class RetentionJob:
    """Runs :func:`run_retention` now and then every ``retention_interval_s`` on a thread of its own."""

    def __init__(self, store: Store, settings: ConsoleSettings) -> None:
        self.store = store
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.last: dict[str, int] | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="console-retention", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = run_retention(self.store, self.settings)
                self.last_error = None
            except Exception as exc:  # a database hiccup: try again next time
                self.last_error = repr(exc)
                log.warning("retention run failed: %r", exc)
            self.runs += 1
            self._stop.wait(self.settings.retention_interval_s)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


# --------------------------------------------------------------------------- erasure


@dataclass
class Erasure:
    """What an erasure found and removed."""

    erasure_id: str
    call_ids: list[str]
    removed: dict[str, int] = field(default_factory=dict)
    last_activity: datetime | None = None
    dry_run: bool = False

    def kafka_remains(self) -> list[dict[str, Any]]:
        """Each topic's retention and the date until which it may still hold these calls' events."""
        rows = []
        for spec in all_topic_specs():
            until = (
                self.last_activity + timedelta(milliseconds=spec.retention_ms) if self.last_activity else None
            )
            rows.append(
                {
                    "topic": spec.name,
                    "retention_days": round(spec.retention_ms / DAY_MS, 2),
                    "until": until.isoformat(timespec="minutes") if until else None,
                    "holds": spec.description,
                }
            )
        return rows


def _last_activity(calls: list[Call]) -> datetime | None:
    times = [t for c in calls for t in (c.ended_at, c.started_at, c.first_seen_at) if t is not None]
    return max(times) if times else None


def find_caller_calls(store: Store, settings: ConsoleSettings, number: str) -> list[Call]:
    """The calls of the caller with this number (by the key the gateway derives from it)."""
    if len(normalize_number(number)) < 7:
        raise ValueError("not a phone number (fewer than 7 digits)")
    secret = settings.caller_key_secret.get_secret_value()
    if settings.env == "production" and secret == DEV_CALLER_KEY_SECRET:
        # The gateway refuses this secret in production: keys made with it would match nothing.
        raise ValueError("DASAN_ASR_CALLER_KEY_SECRET is the development default: set the gateway's secret")
    key = caller_key(number, secret)
    return store.calls_of_caller(key) if key else []


def erase(store: Store, calls: list[Call], by: Actor, *, scope: str, dry_run: bool = False) -> Erasure:
    """Erase ``calls`` (or only count what would go, with ``dry_run``); audited either way."""
    erasure = Erasure(uuid.uuid4().hex[:12], [c.call_id for c in calls], dry_run=dry_run)
    erasure.last_activity = _last_activity(calls)
    if calls:
        erasure.removed = store.erase_calls(erasure.call_ids, erasure.erasure_id, dry_run=dry_run)
    store.audit(
        by,
        AuditAction.erase,
        target=scope,
        detail=f"erasure={erasure.erasure_id} calls={len(calls)} dry_run={dry_run} "
        + " ".join(f"{k}={v}" for k, v in erasure.removed.items() if v),
    )
    log.info(
        "erasure" + (" (dry run)" if dry_run else ""),
        extra={"erasure": erasure.erasure_id, "calls": len(calls), "scope": scope},
    )
    return erasure
