"""Shared pieces of the pipeline benchmarks: bring up the stack as separate processes, log in to
the console, follow calls on its websocket, sample memory, and write the table + JSON + plot."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dasan.demo import Service  # noqa: E402
from streaming.broker import LocalBroker, free_port  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


@dataclass
class Stack:
    """Broker + services as child processes, on free loopback ports."""

    workdir: Path
    services: dict[str, Service] = field(default_factory=dict)
    broker: LocalBroker | None = None
    env: dict[str, str] = field(default_factory=dict)
    console_port: int = 0
    database_url: str | None = (
        None  # None: SQLite in workdir; postgresql+psycopg://… for the production store
    )
    db_schema: str | None = None

    def start(self, names: list[str]) -> None:
        # SIGTERM (pkill, a CI timeout) must run the caller's ``finally: stack.stop()`` too, or the
        # broker and services outlive the benchmark and skew whatever runs next.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker = LocalBroker(log_path=self.workdir / "broker.log").start()
        self.console_port = free_port()
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DASAN_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "DASAN_CONSOLE_DATABASE_URL": self.database_url or f"sqlite:///{self.workdir / 'console.db'}",
            **({"DASAN_CONSOLE_DB_SCHEMA": self.db_schema} if self.db_schema else {}),
            "DASAN_CONSOLE_PORT": str(self.console_port),
            "DASAN_CONSOLE_SESSION_SECRET": secrets.token_urlsafe(32),
            "DASAN_CONSOLE_CALLER_KEY_SECRET": secrets.token_urlsafe(32),
            "DASAN_LOG_LEVEL": os.environ.get("DASAN_BENCH_LOG_LEVEL", "WARNING"),
            # Production-like group liveness (production: 300 s). Development's 6 s only shortens
            # Tansu's group joins, and under a benchmark's load a loop that pauses past it would
            # measure rebalances, not the pipeline. Startup joins take this long once.
            "DASAN_KAFKA_MAX_POLL_INTERVAL_MS": os.environ.get("DASAN_KAFKA_MAX_POLL_INTERVAL_MS", "20000"),
        }
        subprocess.check_call([_dasan(), "topics", "create"], env=self.env, stdout=subprocess.DEVNULL)
        table = {
            "console": (["console", "run"], "DASAN_CONSOLE_PORT", self.console_port),
            "assist": (["assist", "run"], "DASAN_ASSIST_HEALTH_PORT", free_port()),
            "asr-gateway": (["asr", "gateway"], "DASAN_ASR_GATEWAY_PORT", free_port()),
            "asr-worker": (["asr", "worker"], "DASAN_ASR_WORKER_PORT", free_port()),
        }
        for name in names:
            args, port_env, port = table[name]
            svc = Service(name, args, f"http://127.0.0.1:{port}/readyz", env={port_env: str(port)})
            svc.port = port  # type: ignore[attr-defined]
            svc.start(self.env, self.workdir)
            self.services[name] = svc
        t0 = time.monotonic()
        pending = set(names)
        while pending:
            for name in list(pending):
                svc = self.services[name]
                if not svc.alive():
                    raise SystemExit(f"{name} died while starting: {svc.log_path}")
                if svc.ready():
                    pending.discard(name)
                    print(f"  {name} ready after {time.monotonic() - t0:.0f} s", file=sys.stderr)
            if time.monotonic() - t0 > 600:
                raise SystemExit(f"not ready: {pending}")
            time.sleep(0.5)

    def port(self, name: str) -> int:
        return self.services[name].port  # type: ignore[attr-defined,no-any-return]

    def add_user(self, name: str, role: str, team: str | None = "1팀") -> str:
        password = secrets.token_urlsafe(10)
        cmd = [_dasan(), "users", "add", name, "--role", role, "--password", password]
        if team:
            cmd += ["--team", team]
        subprocess.check_call(cmd, env=self.env, stdout=subprocess.DEVNULL)
        return password

    def stop(self) -> None:
        for svc in reversed(list(self.services.values())):
            svc.stop()
        if self.broker:
            self.broker.stop()

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for name, svc in self.services.items():
            if svc.proc is not None and svc.alive():
                try:
                    proc = psutil.Process(svc.proc.pid)
                    rss = proc.memory_info().rss + sum(
                        c.memory_info().rss for c in proc.children(recursive=True)
                    )
                    out[name] = round(rss / 2**20, 1)
                except psutil.Error:
                    pass
        return out


def _dasan() -> str:
    exe = Path(sys.executable).with_name("dasan")
    return str(exe) if exe.exists() else "dasan"


def login(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=10)
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, "no CSRF token on the log-in page"
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
    if r.status_code != 303:
        raise RuntimeError(f"log-in failed: {r.status_code}")
    return client


class MemorySampler(threading.Thread):
    def __init__(self, stack: Stack, every_s: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.stack, self.every_s = stack, every_s
        self.samples: list[dict[str, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            self.samples.append({"t": time.time(), **self.stack.rss_mb()})

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self.join(5)
        peak: dict[str, float] = {}
        for s in self.samples:
            for k, v in s.items():
                if k != "t":
                    peak[k] = max(peak.get(k, 0.0), v)
        return peak


async def follow_call(
    ws_base: str,
    cookie: str,
    call_id: str,
    on_event: Callable[[dict, float], None],
    stop: asyncio.Event,
    origin: str,
) -> None:
    """Follow one call on the console websocket (resuming after drops) until ``stop``."""
    import websockets

    last = 0
    while not stop.is_set():
        try:
            async with websockets.connect(
                f"{ws_base}/ws/calls/{call_id}?after={last}",
                additional_headers={"Cookie": cookie, "Origin": origin},
                max_size=2**22,
            ) as ws:
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except TimeoutError:
                        continue
                    now = time.time()
                    msg = json.loads(raw)
                    for item in msg.get("items", []):
                        last = max(last, item.get("seq", last))
                        on_event(item.get("event", item), now)
        except (OSError, websockets.WebSocketException):
            await asyncio.sleep(0.2)


def ts(v: object) -> float:
    """An ISO timestamp (as the websocket sends it) or a datetime → epoch seconds."""
    from datetime import datetime

    if isinstance(v, str):
        return datetime.fromisoformat(v).timestamp()
    assert isinstance(v, datetime)
    return v.timestamp()


class KafkaTap:
    """Reads topics from *now* in a group of its own, on a background thread, calling ``on_event``."""

    def __init__(self, bootstrap: str, topics: list[str], group: str, on_event: Callable) -> None:
        from streaming.kafka import EventConsumer
        from streaming.settings import KafkaSettings

        settings = KafkaSettings(bootstrap=bootstrap, max_poll_interval_ms=3000)
        self.consumer = EventConsumer(topics, group, on_event, settings, auto_offset_reset="latest")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.consumer.poll_once(100)
        self.consumer.close()

    def start(self, timeout_s: float = 30) -> KafkaTap:
        self._thread.start()
        t0 = time.monotonic()
        while not self.consumer.assignment() and time.monotonic() - t0 < timeout_s:
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class ScreenLog:
    """What the counselor's websocket delivered, and when (wall clock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    suggestion: dict[str, float] = field(default_factory=dict)  # trigger segment id → shown at
    summary: dict[str, float] = field(default_factory=dict)  # call id → summary shown at
    ended: dict[str, float] = field(default_factory=dict)  # call id → hang-up (CallEnded.ended_at)

    def handler(self, call_id: str) -> Callable[[dict, float], None]:
        def handle(ev: dict, now: float) -> None:
            kind = ev.get("type")
            with self.lock:
                if kind == "suggestion":
                    for sid in ev.get("trigger_segment_ids", []):
                        self.suggestion.setdefault(sid, now)
                elif kind == "summary":  # console/projection.py payload_of: what a browser receives
                    self.summary.setdefault(call_id, now)
                elif kind == "call_ended":
                    self.ended.setdefault(call_id, ts(ev["ended_at"]))

        return handle


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return path
