"""What the bad-input tests share: the stack they run against and a tail of every topic."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from kafka import KafkaConsumer, TopicPartition

from asr.settings import AsrSettings
from dasan.stack import Stack, console_login, cookie_header
from streaming.codec import DecodeError, decode
from streaming.ingest import INGEST_PATH, start_token
from streaming.topics import (
    ASSIST_SUGGESTIONS,
    ASSIST_SUGGESTIONS_SHADOW,
    CALL_AUDIO,
    CALL_EVENTS,
    CALL_SUMMARIES,
    CALL_TRANSCRIPTS,
)
from tests.util import wait_for

PASSWORD = "bad-input-password-0123"
COUNSELOR = "kim"
IDLE_TIMEOUT_S = 2.0
WS_QUEUE_MAX = 8

# Which service's consumer group reads which topic (see the package docstring).
CONSUMERS: dict[str, tuple[str, ...]] = {
    CALL_EVENTS: ("asr-worker", "assist", "console"),
    CALL_AUDIO: ("asr-worker",),
    CALL_TRANSCRIPTS: ("assist", "console"),
    ASSIST_SUGGESTIONS: ("console",),
    CALL_SUMMARIES: ("console",),
    ASSIST_SUGGESTIONS_SHADOW: ("console",),  # the recorder keeps shadow cards apart (a shadow assist writes)
}


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Tail:
    """Reads topics from (at most) their current end in a background thread and keeps every record."""

    def __init__(self, kafka: Any, topics: list[str]) -> None:
        cfg = kafka.consumer_config(None)
        cfg.update(enable_auto_commit=False, fetch_max_wait_ms=50)
        self.consumer = KafkaConsumer(**cfg)
        tps = [
            TopicPartition(t, p) for t in topics for p in sorted(self.consumer.partitions_for_topic(t) or ())
        ]
        assert tps, f"no partitions for {topics}"
        self.consumer.assign(tps)
        # Tansu's end offsets are a lower bound (see docs/STATUS.md): at worst a little history is read.
        for tp, end in self.consumer.end_offsets(tps).items():
            self.consumer.seek(tp, end)
        self.records: list[Rec] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = self.consumer.poll(timeout_ms=200)
            with self._lock:
                for tp, recs in batches.items():
                    for r in recs:
                        self.records.append(
                            Rec(tp.topic, tp.partition, r.offset, r.key, r.value, list(r.headers or []))
                        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()

    def select(self, topic: str, key: str | None = None) -> list[Rec]:
        with self._lock:
            return [r for r in self.records if r.topic == topic and (key is None or r.key == key.encode())]

    def events(self, topic: str, call_id: str) -> list[Any]:
        out = []
        for r in self.select(topic, call_id):
            with contextlib.suppress(DecodeError):
                out.append(decode(r.value, r.headers, r.key))
        return out


@dataclass
class BadInputStack:
    """The four services (each with its own consumer group), the tail, and the console log-in."""

    local: Stack
    groups: dict[str, str]
    kafka: Any
    tail: Tail
    suffix: str
    cookies: dict[str, str] = field(default_factory=dict)
    # services whose /metrics is served on an internal port (the console's web port needs a log-in)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def url(self, name: str, path: str = "") -> str:
        return self.local[name].url(path)

    def port(self, name: str) -> int:
        return self.local[name].port

    @property
    def ingest_url(self) -> str:
        return f"ws://127.0.0.1:{self.port('asr-gateway')}{INGEST_PATH}"

    def rss(self, name: str) -> int:
        return self.local[name].rss()

    def log_tail(self, name: str, n: int = 3000) -> str:
        return self.local[name].log_tail(n)

    def assert_alive_and_ready(self, *names: str) -> None:
        for name in names or tuple(self.local.services):
            svc = self.local[name]
            assert svc.alive(), f"{name} died:\n{svc.log_tail()}"
            code, body = svc.readiness(timeout_s=5)
            assert code == 200, f"{name} not ready: {code} {body}\n{svc.log_tail()}"

    def metric(self, name: str, metric: str, **labels: str) -> float:
        """Sum of a Prometheus metric of one service (samples whose labels include ``labels``)."""
        port = self.metrics_ports.get(name, self.port(name))
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        r.raise_for_status()  # a refused read must fail the test, never read as zero
        text = r.text
        total = 0.0
        for line in text.splitlines():
            m = re.match(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$", line)
            if not m or m.group(1) != metric:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def console_cookie(self, username: str = COUNSELOR) -> str:
        if username not in self.cookies:
            client = console_login(self.url("console"), username, PASSWORD)
            self.cookies[username] = cookie_header(client)
            client.close()
        return self.cookies[username]

    def wait_recorded(self, call_id: str) -> None:
        """Until the console has the call (its recorder consumed the CallStarted)."""
        wait_for(
            lambda: self.api(f"/api/calls/{call_id}").status_code == 200, 60, f"{call_id} in the console"
        )

    def api(self, path: str, username: str = COUNSELOR) -> httpx.Response:
        return httpx.get(
            self.url("console", path), headers={"Cookie": self.console_cookie(username)}, timeout=10
        )


def start_msg(call_id: str, **kw: Any) -> str:
    """The gateway's start message of a call of the test counselor, signed with the ingest secret the
    stack's gateway reads (the same environment)."""
    msg: dict[str, Any] = {"type": "start", "call_id": call_id, "counselor_id": COUNSELOR, "team": "A", **kw}
    if "token" not in msg:
        secret = AsrSettings().ingest_secret.get_secret_value()
        msg["token"] = start_token(
            secret, call_id, msg["counselor_id"], msg.get("team"), msg.get("caller_number")
        )
    return json.dumps(msg)
