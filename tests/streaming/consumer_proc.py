"""A consumer-group member in its own process, for takeover tests (the test SIGKILLs it).

Writes every handled event into a SQLite sink with INSERT OR IGNORE on event_id (an idempotent
handler, as the console recorder is), and appends "assigned"/"handled" lines to a log file.
Usage: consumer_proc.py BOOTSTRAP TOPIC GROUP SINK_DB LOG_FILE NAME
"""

from __future__ import annotations

import sqlite3
import sys
import time

from streaming.kafka import EventConsumer, install_signal_handlers
from streaming.settings import KafkaSettings

bootstrap, topic, group, sink, logfile, name = sys.argv[1:7]
db = sqlite3.connect(sink, timeout=30, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute(
    "CREATE TABLE IF NOT EXISTS handled (event_id TEXT PRIMARY KEY, call_id TEXT, rev INT, consumer TEXT)"
)
db.execute("CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT, consumer TEXT)")
log = open(logfile, "a", buffering=1)  # noqa: SIM115


def handle(event, record) -> None:
    time.sleep(0.004)  # some work, so a kill lands mid-batch
    db.execute("INSERT INTO deliveries VALUES (?, ?)", (event.event_id, name))
    db.execute(
        "INSERT OR IGNORE INTO handled VALUES (?, ?, ?, ?)",
        (event.event_id, event.call_id, event.revision, name),
    )


c = EventConsumer(
    [topic],
    group,
    handle,
    KafkaSettings(bootstrap=bootstrap, max_poll_interval_ms=3000),
    on_assigned=lambda parts: log.write(f"assigned {name} {len(parts)}\n"),
    max_poll_records=20,
)
install_signal_handlers(c.stop)
log.write(f"started {name}\n")
c.run(poll_timeout_ms=200)
log.write(f"stopped {name}\n")
