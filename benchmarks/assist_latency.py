"""Suggestion latency on Kafka with many concurrent calls (grounded generator).

Starts a local Tansu broker (or uses ``--bootstrap``), runs the assist service in this process on
the real knowledge base, and plays ``--calls`` concurrent scripted calls: each caller says a
question from ``../shared/eval-dev/utterances.jsonl`` every 3–7 s of audio time (with a counselor
turn in between), for ``--duration`` seconds. A separate consumer reads ``assist.suggestions``.

Measured per suggestion:
- end to end: the trigger segment handed to the producer → the suggestion read back from Kafka;
- the service's own breakdown carried in the event (masking, keywords, retrieval, draft, total,
  and queue: transcript on Kafka → picked up).
Prints a table and writes JSON to ``benchmarks/results/assist_latency.json``.

    .venv/bin/python benchmarks/assist_latency.py --calls 50 --duration 60 [--index var/kb/<key>]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine_info import machine  # noqa: E402


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return round(xs[k], 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="Seconds of traffic")
    ap.add_argument("--gap", type=float, nargs=2, default=(3.0, 7.0), help="Seconds between caller turns")
    ap.add_argument("--bootstrap", default=None, help="Use this broker instead of starting Tansu")
    ap.add_argument(
        "--index", type=Path, default=None, help="Built index folder (default: the configured one)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "assist_latency.json")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--counselor",
        choices=("calls", "fixed"),
        default="calls",
        help="The counselor's turn between caller turns: a counselor line of eval-dev's scripted calls drawn "
        "at random (default; new text at most turns, as in a real call), or always '네, 확인해 보겠습니다.' "
        "(the benchmark before session 16)",
    )
    ap.add_argument(
        "--unpaced",
        action="store_true",
        help="Every batch up to batch_max whatever it costs, as before session 29 (an A/B of the pacing "
        "in docs/assist.md 'Batches paced to the poll interval')",
    )
    args = ap.parse_args()

    from kafka import KafkaConsumer, TopicPartition

    from assist.assistant import Assistant
    from assist.pacing import BatchPacer
    from assist.service import AssistService
    from assist.settings import AssistSettings
    from streaming.admin import create_topics
    from streaming.codec import decode
    from streaming.events import CallEnded, CallStarted, Channel, Suggestion, TranscriptSegment
    from streaming.kafka import EventProducer
    from streaming.settings import KafkaSettings
    from streaming.topics import ASSIST_SUGGESTIONS

    broker = None
    if args.bootstrap is None:
        from streaming.broker import LocalBroker

        broker = LocalBroker()
        broker.start()
        bootstrap = broker.bootstrap
    else:
        bootstrap = args.bootstrap
    kafka = KafkaSettings(bootstrap=bootstrap, max_poll_interval_ms=3000)
    create_topics(kafka)
    utterances = [
        json.loads(line)["utterance"]
        for line in (REPO.parent / "shared" / "eval-dev" / "utterances.jsonl").read_text().splitlines()
        if line.strip()
    ]
    counselor_lines = ["네, 확인해 보겠습니다."]
    if args.counselor == "calls":
        counselor_lines = [
            t["text"]
            for line in (REPO.parent / "shared" / "eval-dev" / "calls.jsonl").read_text().splitlines()
            if line.strip()
            for t in json.loads(line)["turns"]
            if t["speaker"] == "counselor"
        ]
    t0 = time.perf_counter()
    settings = AssistSettings(group_id=f"assist-bench-{uuid.uuid4().hex[:6]}", generator="grounded")
    assistant = Assistant.open(settings, index=args.index)
    load_s = time.perf_counter() - t0
    # warm-up: the first query pays one-off costs (thread pools, caches)
    for u in utterances[:3]:
        assistant.suggest_text(u)
    service = AssistService(assistant, settings, kafka, instance="bench")
    if args.unpaced:  # a pacer for which any batch fits: batch_max always, as before session 29
        service.pacer = BatchPacer(1e9, 1.0, settings.batch_max, first=settings.batch_max)
    # what a poll-interval overrun looks like from inside: kafka-python's warning, a refused commit,
    # partitions taken away (the service then rebuilds its calls)
    import logging

    class _Overruns(logging.Handler):
        n = 0  # the poll loop held longer than max.poll.interval: the member left the group
        sessions = 0  # no heartbeat got through for session.timeout (a starved heartbeat thread)

        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            self.n += "poll timeout has expired" in msg
            self.sessions += "session expired" in msg

    overruns = _Overruns(logging.WARNING)
    logging.getLogger("kafka").addHandler(overruns)
    svc_thread = threading.Thread(target=service.run, name="assist", daemon=True)
    svc_thread.start()

    sent: dict[str, float] = {}
    received: dict[str, tuple[float, Suggestion]] = {}
    stop = threading.Event()

    def reader() -> None:
        cfg = kafka.consumer_config(None)
        cfg.update(enable_auto_commit=False)
        c = KafkaConsumer(**cfg)
        tps = [
            TopicPartition(ASSIST_SUGGESTIONS, p) for p in sorted(c.partitions_for_topic(ASSIST_SUGGESTIONS))
        ]
        c.assign(tps)
        c.seek_to_end(*tps)
        while not stop.is_set():
            for recs in c.poll(timeout_ms=100).values():
                now = time.time()
                for rec in recs:
                    ev = decode(rec.value, list(rec.headers or []), rec.key)
                    if isinstance(ev, Suggestion):
                        received[ev.trigger_segment_ids[0]] = (now, ev)
        c.close()

    rd = threading.Thread(target=reader, daemon=True)
    rd.start()
    # wait until the service owns its partitions and the reader is positioned
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (service.consumer.assignment() and not service.rebuild_pending):
        time.sleep(0.2)
    time.sleep(1.0)

    rng = random.Random(args.seed)
    rng_counselor = random.Random(args.seed + 1)  # apart, so the callers' questions are the same either way
    producer = EventProducer(kafka, linger_ms=0)
    run_id = uuid.uuid4().hex[:6]
    calls = [f"bench-{run_id}-{i:03d}" for i in range(args.calls)]
    next_at = {c: time.monotonic() + rng.uniform(0, args.gap[1]) for c in calls}
    audio_t = dict.fromkeys(calls, 0.0)
    turn_no = dict.fromkeys(calls, 0)
    for c in calls:
        producer.send(CallStarted(call_id=c, counselor_id="bench"))
    producer.flush()
    end = time.monotonic() + args.duration
    lock = threading.Lock()
    while time.monotonic() < end:
        now = time.monotonic()
        due = [c for c in calls if next_at[c] <= now]
        for c in due:
            n = turn_no[c]
            turn_no[c] += 1
            sid = f"{c}-s{n}"
            text = utterances[rng.randrange(len(utterances))]
            start = audio_t[c]
            seg = TranscriptSegment(
                call_id=c,
                segment_id=sid,
                channel=Channel.caller,
                start_s=start,
                end_s=start + 2.5,
                text=text,
                is_final=True,
                asr_model="scripted",
                source="scripted",
            )
            with lock:
                sent[sid] = time.time()
            producer.send(seg)
            producer.send(
                TranscriptSegment(
                    call_id=c,
                    segment_id=f"{c}-c{n}",
                    channel=Channel.counselor,
                    start_s=start + 2.7,
                    end_s=start + 4.0,
                    text=counselor_lines[rng_counselor.randrange(len(counselor_lines))],
                    is_final=True,
                    asr_model="scripted",
                    source="scripted",
                )
            )
            gap = rng.uniform(*args.gap)
            audio_t[c] = start + gap
            next_at[c] = now + gap
        if due:
            producer.flush()
        time.sleep(0.01)
    for c in calls:
        producer.send(CallEnded(call_id=c))
    producer.flush()
    time.sleep(8.0)
    stop.set()
    rd.join(timeout=5)
    service.stop()
    svc_thread.join(timeout=20)
    producer.close()
    if broker is not None:
        broker.stop()

    e2e: list[float] = []
    total: list[float] = []
    stages: dict[str, list[float]] = {k: [] for k in ("masking", "keywords", "retrieval", "draft", "queue")}
    abstained = shed = 0
    for sid, t_sent in sent.items():
        got = received.get(sid)
        if got is None:
            continue
        t_recv, ev = got
        e2e.append((t_recv - t_sent) * 1000)
        total.append(ev.latency.total_ms)
        abstained += 1 if ev.draft.abstained else 0
        shed += 1 if ev.shed else 0
        for k in stages:
            stages[k].append(getattr(ev.latency, f"{k}_ms"))
    result = {
        "machine": machine(),
        "config": {
            "calls": args.calls,
            "duration_s": args.duration,
            "gap_s": list(args.gap),
            "generator": "grounded",
            "kb": assistant.kb.info(),
            "kb_load_s": round(load_s, 1),
            # load shedding: a late suggestion retrieved from the caller's words only (docs/assist.md)
            "shed_context_after_ms": settings.shed_context_after_ms,
            "context_views": settings.context_views,
            "context_vectors": getattr(assistant.reranker, "context_vectors", None),
            "counselor_lines": args.counselor,
            "paced": not args.unpaced,
            "batch_time_share": settings.batch_time_share,
        },
        "segments_sent": len(sent),
        "suggestions_received": len(e2e),
        "abstained": abstained,
        "shed": shed,
        "throughput_per_s": round(len(sent) / args.duration, 2),
        "end_to_end_ms": {
            "p50": pct(e2e, 50),
            "p95": pct(e2e, 95),
            "p99": pct(e2e, 99),
            "max": pct(e2e, 100),
        },
        "service_total_ms": {"p50": pct(total, 50), "p95": pct(total, 95)},
        "stages_ms": {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in stages.items()},
        "mean_e2e_ms": round(statistics.mean(e2e), 1) if e2e else None,
        # the consumer group's health: any of these means the poll loop overran max.poll.interval
        "group": {
            "max_poll_interval_s": service.consumer.max_poll_interval_s,
            "poll_timeouts": overruns.n,
            "heartbeat_sessions_expired": overruns.sessions,
            "commit_failures": service.consumer.commit_failures,
            "partitions_revoked": service.handovers,
            "batch_limit_at_end": service.pacer.limit(),
            "per_request_ms": round((service.pacer.per_request_s or 0) * 1000, 1),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    print(
        f"assist latency — {args.calls} concurrent calls, {args.duration:.0f} s, grounded, kb dense={result['config']['kb']['dense']}"
    )
    print(
        f"segments sent {len(sent)} ({result['throughput_per_s']}/s), suggestions received {len(e2e)}, abstained {abstained}, shed {shed}"
    )
    print(f"{'measure':<28}{'p50 ms':>10}{'p95 ms':>10}")
    print(
        f"{'end to end (Kafka→Kafka)':<28}{result['end_to_end_ms']['p50']!s:>10}{result['end_to_end_ms']['p95']!s:>10}"
    )
    print(
        f"{'service total':<28}{result['service_total_ms']['p50']!s:>10}{result['service_total_ms']['p95']!s:>10}"
    )
    for k, v in result["stages_ms"].items():
        print(f"{'  ' + k:<28}{v['p50']!s:>10}{v['p95']!s:>10}")
    g = result["group"]
    print(
        f"consumer group: {g['poll_timeouts']} poll-interval overruns, {g['heartbeat_sessions_expired']} "
        f"heartbeat sessions expired, {g['commit_failures']} failed commits, "
        f"{g['partitions_revoked']} hand-overs (interval {g['max_poll_interval_s']} s); batch limit at the "
        f"end {g['batch_limit_at_end']} ({g['per_request_ms']} ms a request)"
    )
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
