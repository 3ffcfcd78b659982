"""The services as separate processes on this machine: the one place that knows how to run them.

``dasan demo``, the pipeline benchmarks (``benchmarks/pipeline_common.py``) and the end-to-end tests
(``tests/e2e``) start the same services the way production does: each its own process
(``dasan console run``, ``dasan assist run``, ``dasan asr gateway``, ``dasan asr worker``),
configured only through environment variables, talking only through Kafka, logging to a file.
This module holds the table of those services, a :class:`Service` (its process, port and log),
:class:`Stack` (services started together and stopped in reverse order) and :func:`wait_ready`.

Readiness is waited for without a fixed deadline. A starting service says on ``/readyz`` what it is
doing (``streaming.health``): the assist service reports its phase and its index build's progress.
:func:`wait_ready` keeps waiting while that report changes, and fails, with the service's log tail,
when the process exits or its report stands still for longer than a stall limit. The first start
of the assist service on a new corpus builds an index: minutes on one CPU, much longer on another
(docs/knowledge.md); a fixed deadline right for one machine is wrong for the next.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from streaming.broker import free_port

STALL_S = 300.0
"""How long a starting service may go without any change in what it reports (at least: see
:func:`wait_ready`). Covers the longest start-up step that reports no progress of its own (loading
the Whisper and embedding models, a consumer group join: seconds to a minute) and the first
embedding batch of an index build (31 s at 64 tokens, 150 s at 256 tokens on a 2-core AVX2 CPU with
the bf16 backend, the slowest case measured: issue 12)."""


@dataclass(frozen=True)
class ServiceKind:
    """How one service is started: its ``dasan`` command and the setting that moves its HTTP port."""

    args: tuple[str, ...]
    port_env: str
    default_port: int  # the setting's default (``dasan demo`` serves there)


SERVICES: dict[str, ServiceKind] = {
    "console": ServiceKind(("console", "run"), "DASAN_CONSOLE_PORT", 8000),
    "assist": ServiceKind(("assist", "run"), "DASAN_ASSIST_HEALTH_PORT", 8082),
    "asr-gateway": ServiceKind(("asr", "gateway"), "DASAN_ASR_GATEWAY_PORT", 8081),
    "asr-worker": ServiceKind(("asr", "worker"), "DASAN_ASR_WORKER_PORT", 8083),
}


def dasan_exe() -> str:
    """The ``dasan`` entry point of this interpreter's environment (the one on PATH otherwise)."""
    exe = Path(sys.executable).with_name("dasan")
    return str(exe) if exe.exists() else shutil.which("dasan") or "dasan"


def local_env(bootstrap: str, workdir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment plus what every locally started service needs: the broker, the
    console's database (by default a new SQLite file in ``workdir``), unbuffered logs, and fresh
    random console secrets where none are set (a new database each run: nothing to keep)."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DASAN_KAFKA_BOOTSTRAP": bootstrap,
        "DASAN_CONSOLE_DATABASE_URL": database_url or f"sqlite:///{workdir / 'console.db'}",
        **extra,
    }
    for name in ("DASAN_CONSOLE_SESSION_SECRET", "DASAN_CONSOLE_CALLER_KEY_SECRET"):
        env.setdefault(name, secrets.token_urlsafe(32))
    return env


@dataclass
class Service:
    """One service process: ``dasan <args>`` with ``env`` over the stack's environment."""

    name: str
    args: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # the CPUs the process may run on (None: any): a benchmark's stand-in for a machine of its own
    cpus: frozenset[int] | None = None

    @classmethod
    def of(
        cls,
        kind: str,
        *,
        name: str | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> Service:
        """A service of the table, on ``port`` (a free one by default), named ``name`` (the kind)."""
        spec = SERVICES[kind]
        port = free_port() if port is None else port
        return cls(name or kind, [*spec.args, *args], port, {spec.port_env: str(port), **(env or {})})

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, base_env: dict[str, str], log_dir: Path) -> Service:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.name}.log"
        prefix: list[str] = []
        if self.cpus is not None:
            taskset = shutil.which("taskset")
            if taskset is None:
                raise RuntimeError(
                    f"{self.name}: pinning to CPUs {sorted(self.cpus)} needs taskset (util-linux)"
                )
            prefix = [taskset, "-c", ",".join(str(c) for c in sorted(self.cpus))]
        with open(self.log_path, "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [*prefix, dasan_exe(), *self.args],
                env={**base_env, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def readiness(self, timeout_s: float = 3.0) -> tuple[int, dict[str, Any]]:
        """(status code, body) of ``/readyz``; (0, {}) while nothing answers."""
        try:
            r = httpx.get(self.url("/readyz"), timeout=timeout_s)
        except httpx.HTTPError:
            return 0, {}
        try:
            body = r.json()
        except ValueError:
            body = {}
        return r.status_code, body if isinstance(body, dict) else {}

    def ready(self) -> bool:
        return self.readiness()[0] == 200

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (the service shuts down cleanly), SIGKILL after ``timeout``."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no goodbye (as a crash or an OOM kill)."""
        assert self.proc is not None, f"{self.name} was never started"
        self.proc.kill()
        self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def rss(self, children: bool = False) -> int:
        """Resident memory of the process (and of its children) in bytes."""
        import psutil

        assert self.proc is not None, f"{self.name} was never started"
        proc = psutil.Process(self.proc.pid)
        procs = [proc, *(proc.children(recursive=True) if children else [])]
        return sum(p.memory_info().rss for p in procs)


class NotReady(RuntimeError):
    """A service exited while starting, or stopped showing progress (the message has its log tail)."""


class Startable(Protocol):
    name: str

    def alive(self) -> bool: ...
    def readiness(self) -> tuple[int, dict[str, Any]]: ...
    def log_tail(self, chars: int = 4000) -> str: ...


@dataclass
class Progress:
    """When a starting service last changed what it reports, and how long it may now go without.

    The limit is ``stall_s`` or three times the longest gap between two changes seen so far,
    whichever is longer: a machine that takes 90 s per embedding batch may take 270 s for the next.
    """

    stall_s: float
    last_change: float
    seen: object = None
    longest_gap: float = 0.0

    def update(self, now: float, report: object) -> None:
        if report != self.seen:
            self.longest_gap = max(self.longest_gap, now - self.last_change)
            self.seen, self.last_change = report, now

    def limit(self) -> float:
        return max(self.stall_s, 3 * self.longest_gap)

    def stalled(self, now: float) -> bool:
        return now - self.last_change > self.limit()


def describe(code: int, body: dict[str, Any]) -> str:
    """What a /readyz answer says, in a few words (``loading the knowledge base: Batches 12/27``)."""
    if code == 200:
        return "ready"
    if code == 0:
        return "starting (not answering yet)"
    what = str(body.get("phase") or "not ready")
    if body.get("step") is not None:
        total = body.get("total")
        what += f": {body['step']} {body.get('done')}" + (f"/{total}" if total else "")
    elif body.get("broker") in (False, "unreachable"):
        what += ", broker unreachable"
    return what


def wait_ready(
    services: Sequence[Startable],
    *,
    stall_s: float = STALL_S,
    interval_s: float = 0.5,
    on_status: Callable[[Startable, str, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until every service answers ``/readyz`` with 200, for as long as they make progress.

    Progress is any change of what a service reports: answering at all, its start-up ``phase``, the
    ``step`` and ``done`` count of that phase (a probe unanswered after the first answer is not a
    change). Raises :class:`NotReady` with the service's log tail
    when its process exits, or when its report has not changed for :meth:`Progress.limit` seconds.
    ``on_status(service, description, seconds since the wait began)`` is called whenever a
    service's description changes (the demo prints it).
    """
    t0 = clock()
    pending = {s.name: s for s in services}
    progress = {name: Progress(stall_s, t0) for name in pending}
    shown: dict[str, str] = {}
    while pending:
        for name, svc in list(pending.items()):
            if not svc.alive():
                raise NotReady(f"{name} exited while starting; the end of its log:\n{svc.log_tail()}")
            code, body = svc.readiness()
            now = clock()
            p = progress[name]
            # A probe that goes unanswered once the service has answered (a start-up step holding
            # the interpreter past the probe's timeout) says nothing new: keep the last report.
            if code or p.seen is None:
                text = describe(code, body)
                if on_status is not None and shown.get(name) != text:
                    on_status(svc, text, now - t0)
                shown[name] = text
                if code == 200:
                    del pending[name]
                    continue
                p.update(now, (code, body.get("phase"), body.get("step"), body.get("done")))
            if p.stalled(now):
                raise NotReady(
                    f"{name} not ready, and no progress for {now - p.last_change:.0f} s "
                    f"(it says: {shown[name]}); the end of its log:\n{svc.log_tail()}"
                )
        if pending:
            sleep(interval_s)


@dataclass
class Stack:
    """Services started together in one environment (``env``), logging to ``log_dir``."""

    env: dict[str, str]
    log_dir: Path
    services: dict[str, Service] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    def start(
        self,
        *services: Service,
        stall_s: float = STALL_S,
        on_status: Callable[[Startable, str, float], None] | None = None,
    ) -> list[Service]:
        """Start the services, then wait until all are ready (:func:`wait_ready`)."""
        for svc in services:
            self.services[svc.name] = svc.start(self.env, self.log_dir)
        wait_ready(services, stall_s=stall_s, on_status=on_status)
        return list(services)

    def stop(self) -> None:
        """Stop every service, newest first."""
        for svc in reversed(list(self.services.values())):
            svc.stop()

    def add_user(self, name: str, role: str, *, team: str | None = None, password: str | None = None) -> str:
        return add_user(self.env, name, role, team=team, password=password)


def add_user(
    env: dict[str, str], name: str, role: str, *, team: str | None = None, password: str | None = None
) -> str:
    """A console user, created with ``dasan users add`` (as an administrator would) in the database
    ``env`` names; returns the password (random by default)."""
    password = password or secrets.token_urlsafe(12)
    # the password on standard input: a command line is visible to every local user (ps)
    cmd = [dasan_exe(), "users", "add", name, "--role", role, "--password-stdin"]
    if team:
        cmd += ["--team", team]
    subprocess.run(
        cmd, env=env, check=True, input=password + "\n", text=True, stdout=subprocess.DEVNULL, timeout=120
    )
    return password


def console_login(base_url: str, username: str, password: str) -> httpx.Client:
    """A client logged in to the console the way the log-in form does (session cookie and CSRF)."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=10)
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    if token is None:
        raise RuntimeError(f"no CSRF token on the log-in page of {base_url}")
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
    if r.status_code != 303:
        raise RuntimeError(f"log-in of {username} failed: {r.status_code} {r.text[:200]}")
    return client


def cookie_header(client: httpx.Client) -> str:
    """The client's cookies as a ``Cookie`` header (for a websocket on the same session)."""
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())
