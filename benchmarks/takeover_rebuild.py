"""A takeover of many open calls, end to end: does the assist instance that takes them over stay in
its consumer group while it rebuilds them? (#18; docs/assist.md "A takeover replayed a tick's
budget at a time".)

Starts a local Tansu broker, writes the history of ``--calls`` open calls (eval-dev's scripted
calls, every turn a final segment, ids made unique; no card published yet: the member that had them
died before serving any, the replay's worst case), then starts one assist instance
(``dasan assist run``, a subprocess, ``--repo``'s code: the checkout before a change, or this one)
with the benchmark's 3 s ``max.poll.interval`` and watches it for ``--watch`` seconds:

- from its log: how often it finished a rebuild ("state rebuilt for assigned partitions": more than
  once means it was dropped and rebuilt again), the partitions it lost ("calls handed over" with
  calls), kafka-python's "poll timeout" warnings and refused commits;
- from ``assist.suggestions``: how many of the calls got their card within the window, and when.

    .venv/bin/python benchmarks/takeover_rebuild.py --calls 150 --repo ../before --out results/a.json
    .venv/bin/python benchmarks/takeover_rebuild.py --calls 150 --out results/b.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from machine_info import machine, write_result  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def history(run: str, n_calls: int) -> list[Any]:
    """CallStarted and every turn as a final segment of ``n_calls`` calls."""
    from rebuild_steps import call_events, eval_dev_calls

    calls = eval_dev_calls()
    out: list[Any] = []
    for k in range(n_calls):
        out += call_events(calls[k % len(calls)], f"tk-{run}-{k:03d}", f"counselor{k % 7}")
    return out


def log_counts(text: str) -> dict[str, int]:
    lines = text.splitlines()
    handed = 0
    for ln in lines:
        if "calls handed over" in ln:
            try:
                handed += 1 if json.loads(ln).get("calls", 0) else 0
            except ValueError:
                handed += 1
    return {
        "rebuilds_finished": sum("state rebuilt for assigned partitions" in ln for ln in lines),
        "rebuild_steps": sum("rebuilding taken-over calls" in ln for ln in lines),
        "hand_overs_with_calls": handed,
        "poll_timeouts": sum("poll timeout" in ln.lower() for ln in lines),
        "refused_commits": sum("commit failed" in ln.lower() or "commitfailed" in ln.lower() for ln in lines),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=150)
    ap.add_argument("--repo", default=None, help="the checkout whose assist runs (default: this one)")
    ap.add_argument("--watch", type=float, default=150.0, help="seconds to watch the instance")
    ap.add_argument("--interval-ms", type=int, default=3000, help="max.poll.interval of the instance")
    ap.add_argument("--out", default=str(HERE / "results" / "takeover_rebuild.json"))
    args = ap.parse_args()

    from streaming.admin import create_topics
    from streaming.broker import LocalBroker
    from streaming.kafka import EventProducer
    from streaming.settings import KafkaSettings
    from streaming.topics import ASSIST_SUGGESTIONS

    repo = Path(args.repo).resolve() if args.repo else REPO
    run = uuid.uuid4().hex[:8]
    broker = LocalBroker()
    broker.start()
    proc: subprocess.Popen[bytes] | None = None
    log_path = Path(tempfile.mkdtemp()) / "assist.log"
    try:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, max_poll_interval_ms=args.interval_ms)
        create_topics(kafka)
        events = history(run, args.calls)
        producer = EventProducer(kafka)
        for ev in events:
            producer.send(ev)
        producer.flush()
        producer.close()
        ids = {ev.call_id for ev in events}
        env = {
            **os.environ,
            "PYTHONPATH": str(repo),
            # this checkout's index and models, whichever checkout's code runs
            "DASAN_VAR_DIR": os.environ.get("DASAN_VAR_DIR", str(REPO / "var")),
            "DASAN_MODEL_DIR": os.environ.get("DASAN_MODEL_DIR", str(REPO / ".models")),
            "DASAN_KAFKA_BOOTSTRAP": broker.bootstrap,
            "DASAN_KAFKA_MAX_POLL_INTERVAL_MS": str(args.interval_ms),
            "DASAN_ASSIST_GROUP_ID": f"assist-takeover-{run}",
            "DASAN_ASSIST_HEALTH_PORT": str(free_port()),
            "DASAN_ASSIST_REBUILD_LOOKBACK_S": "3600",
            "DASAN_LOG_LEVEL": "INFO",
        }
        cmd = [sys.executable, "-c", "from dasan.cli import main; main()", "assist", "run", "--instance", "B"]
        t0 = time.monotonic()
        with log_path.open("ab") as fh:
            proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=fh, cwd=str(repo))
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            ASSIST_SUGGESTIONS,
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=1000,
            group_id=None,
        )
        carded: dict[str, float] = {}
        first_rebuild_s: float | None = None
        while time.monotonic() - t0 < args.watch and len(carded) < len(ids):
            for msg in consumer:
                try:
                    body = json.loads(msg.value)
                except ValueError:
                    continue
                cid = body.get("call_id")
                if body.get("type") == "suggestion" and cid in ids and cid not in carded:
                    carded[cid] = time.monotonic() - t0
            rebuilt = log_path.exists() and "state rebuilt for assigned partitions" in log_path.read_text(
                errors="replace"
            )
            if first_rebuild_s is None and rebuilt:
                first_rebuild_s = time.monotonic() - t0
            if proc.poll() is not None:
                break
            print(f"\r{time.monotonic() - t0:5.0f} s  carded {len(carded)}/{len(ids)}", end="", flush=True)
        print()
        consumer.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()
    text = log_path.read_text(errors="replace")
    times = sorted(carded.values())
    result = {
        "benchmark": "takeover_rebuild",
        "repo": str(repo),
        "calls": args.calls,
        "interval_ms": args.interval_ms,
        "watch_s": args.watch,
        "state_rebuilt_first_at_s": None if first_rebuild_s is None else round(first_rebuild_s, 1),
        "calls_carded": len(carded),
        "carded_share": round(len(carded) / max(1, args.calls), 3),
        "last_card_at_s": round(times[-1], 1) if times else None,
        **log_counts(text),
        "exit": proc.returncode if proc is not None else None,
        "log": str(log_path),  # the instance's log, kept where it ran (one hand-over is its shutdown)
        "machine": machine(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, ensure_ascii=False))
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
