"""Shared pieces of the pipeline benchmarks: bring up the stack as separate processes, log in to
the console, follow calls on its websocket, sample memory, and write the table + JSON + plot."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dasan.stack import Service, Startable, console_login, cookie_header, dasan_exe, local_env  # noqa: E402
from dasan.stack import Stack as LocalStack  # noqa: E402
from streaming.broker import LocalBroker  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


@dataclass
class Stack:
    """Broker + services as child processes, on free loopback ports (``dasan.stack``)."""

    workdir: Path
    database_url: str | None = (
        None  # None: SQLite in workdir; postgresql+psycopg://… for the production store
    )
    db_schema: str | None = None
    broker: LocalBroker | None = None
    local: LocalStack | None = None

    def start(self, names: list[str | Service]) -> None:
        """Start the broker, then the services: a kind of ``dasan.stack.SERVICES`` by name, or a
        ``Service`` (several of one kind: their own names and settings)."""
        # SIGTERM (pkill, a CI timeout) must run the caller's ``finally: stack.stop()`` too, or the
        # broker and services outlive the benchmark and skew whatever runs next.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker = LocalBroker(log_path=self.workdir / "broker.log").start()
        env = local_env(
            self.broker.bootstrap,
            self.workdir,
            self.database_url,
            **({"DASAN_CONSOLE_DB_SCHEMA": self.db_schema} if self.db_schema else {}),
            DASAN_LOG_LEVEL=os.environ.get("DASAN_BENCH_LOG_LEVEL", "WARNING"),
            # Production-like group liveness (production: 300 s). Development's 6 s only shortens
            # Tansu's group joins, and under a benchmark's load a loop that pauses past it would
            # measure rebalances, not the pipeline. Startup joins take this long once.
            DASAN_KAFKA_MAX_POLL_INTERVAL_MS=os.environ.get("DASAN_KAFKA_MAX_POLL_INTERVAL_MS", "20000"),
        )
        subprocess.check_call([dasan_exe(), "topics", "create"], env=env, stdout=subprocess.DEVNULL)
        self.local = LocalStack(env, self.workdir)
        self.local.start(*(Service.of(n) if isinstance(n, str) else n for n in names), on_status=_print_ready)

    @property
    def services(self) -> dict[str, Service]:
        return self.local.services if self.local else {}

    def port(self, name: str) -> int:
        return self.services[name].port

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None, "start the stack first"
        return self.broker.bootstrap

    @property
    def console_port(self) -> int:
        return self.port("console")

    def add_user(self, name: str, role: str, team: str | None = "1팀") -> str:
        assert self.local is not None, "start the stack first"
        return self.local.add_user(name, role, team=team)

    def stop(self) -> None:
        if self.local:
            self.local.stop()
        if self.broker:
            self.broker.stop()

    def assist_services(
        self, members: int = 1, split_summaries: bool = False, pin: bool = False
    ) -> list[str | Service]:
        """The assist processes of a run: ``members`` of the main consumer group (role ``all``, or
        ``cards`` when ``split_summaries`` adds one instance of role ``summaries`` in its own group).
        ``pin``: member ``i`` runs on CPU ``i`` alone with one encoder thread — a one-core machine of
        its own (the broker, the console and the callers share every CPU)."""
        if members == 1 and not split_summaries and not pin:
            return ["assist"]
        role = "cards" if split_summaries else "all"
        cpus = sorted(os.sched_getaffinity(0))
        out: list[str | Service] = []
        for i in range(members):
            svc = Service.of(
                "assist",
                name=f"assist-{i + 1}" if members > 1 else "assist",
                env={"DASAN_ASSIST_ROLE": role, **({"DASAN_KB_THREADS": "1"} if pin else {})},
            )
            if pin:
                svc.cpus = frozenset({cpus[i % len(cpus)]})
            out.append(svc)
        if split_summaries:
            out.append(Service.of("assist", name="assist-summaries", env={"DASAN_ASSIST_ROLE": "summaries"}))
        return out

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for name, svc in self.services.items():
            if svc.alive():
                with contextlib.suppress(psutil.Error):
                    out[name] = round(svc.rss(children=True) / 2**20, 1)
        return out


def _print_ready(svc: Startable, status: str, elapsed_s: float) -> None:
    if status == "ready":
        print(f"  {svc.name} ready after {elapsed_s:.0f} s", file=sys.stderr)


def login(base: str, username: str, password: str) -> str:
    """Log in to the console; the session's ``Cookie`` header (for the websockets)."""
    client = console_login(base, username, password)
    try:
        return cookie_header(client)
    finally:
        client.close()


class Screens:
    """Log-ins for the screens that follow calls. The console lets one user hold at most
    ``DASAN_CONSOLE_WS_MAX_PER_USER`` (default 8) websockets at once and refuses the rest, as a
    centre's floor never needs more: each counselor watches their own calls. A benchmark that
    followed hundreds of calls as one user measured those refusals (and the followers' retries), not
    the pipeline; here every ``per_user`` call slots share one QA user, well under the limit even
    when a slot's next call starts while the last one's follower waits for its summary."""

    def __init__(self, stack: Stack, slots: int, prefix: str = "bench-qa", per_user: int = 3) -> None:
        self.per_user = per_user
        base = f"http://127.0.0.1:{stack.console_port}"
        self.cookies = []
        for k in range((max(1, slots) + per_user - 1) // per_user):
            name = f"{prefix}-{k:02d}"
            self.cookies.append(login(base, name, stack.add_user(name, "qa", None)))

    def cookie(self, slot: int) -> str:
        """The log-in of call slot ``slot``."""
        return self.cookies[(slot // self.per_user) % len(self.cookies)]


async def keep_calling(start_after_s: float, until: float, play: Callable[[int], Awaitable[None]]) -> int:
    """One call slot of a steady load: after ``start_after_s``, ``play(k)`` call after call
    (k = 0, 1, …), each as soon as the previous one hung up, until the wall clock passes ``until``.
    Returns how many calls it played."""
    await asyncio.sleep(start_after_s)
    k = 0
    while time.time() < until:
        await play(k)
        k += 1
    return k


def cpu_seconds(pids: dict[str, int], alone: frozenset[str] = frozenset()) -> dict[str, float]:
    """User + system CPU seconds each process (with its children, except for the names in
    ``alone``) has used so far."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            procs = [proc] if name in alone else [proc, *proc.children(recursive=True)]
            total = 0.0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
            out[name] = total
        except psutil.Error:
            continue
    return out


class CpuMeter:
    """CPU seconds per service over a stretch of a benchmark, and per call-minute of that stretch
    (the unit a capacity plan needs: cores = call-minutes per minute × CPU-s per call-minute / 60).
    ``bench`` is the benchmark process itself (the simulated callers and the screen followers)."""

    def __init__(self, stack: Stack) -> None:
        self.pids = {name: svc.pid for name, svc in stack.services.items() if svc.alive()}
        if stack.broker is not None and stack.broker.pid is not None:
            self.pids["broker"] = stack.broker.pid
        self.pids["bench"] = os.getpid()  # its children are the services: counted alone
        self.start = cpu_seconds(self.pids, frozenset({"bench"}))
        self.t0 = time.monotonic()

    def stop(self, call_minutes: float) -> dict[str, dict[str, float | None]]:
        end = cpu_seconds(self.pids, frozenset({"bench"}))
        wall = time.monotonic() - self.t0
        out: dict[str, dict[str, float | None]] = {}
        for name, t in end.items():
            used = t - self.start.get(name, 0.0)
            out[name] = {
                "cpu_s": round(used, 1),
                "cores": round(used / wall, 2) if wall > 0 else None,
                "cpu_s_per_call_minute": round(used / call_minutes, 2) if call_minutes > 0 else None,
            }
        return out


class FlameGraphs:
    """py-spy flame graphs (SVG) of some services over a stretch of a benchmark; a sampling
    profiler from outside the process, so the services run unchanged. Needs ``py-spy`` (dev extra)
    and the right to ptrace (root, or kernel.yama.ptrace_scope 0)."""

    def __init__(
        self, stack: Stack, names: list[str], prefix: str, duration_s: float, rate: int = 50
    ) -> None:
        import shutil

        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.paths: dict[str, Path] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        for name in names:
            svc = stack.services.get(name)
            if svc is None or not svc.alive():
                continue
            path = RESULTS / f"{prefix}-{name}.svg"
            RESULTS.mkdir(parents=True, exist_ok=True)
            cmd = [
                exe,
                "record",
                "--pid",
                str(svc.pid),
                "--duration",
                str(int(duration_s)),
                "--rate",
                str(rate),
            ]
            cmd += ["--output", str(path), "--format", "flamegraph", "--nonblocking"]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.paths[name] = path

    def wait(self, timeout_s: float = 60.0) -> dict[str, str]:
        for p in self.procs:
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.terminate()
        return {name: str(path.relative_to(REPO)) for name, path in self.paths.items() if path.exists()}


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
