"""Produce → consume latency and throughput of transcript-sized events through Kafka.

For each load (10, 100, 500 simulated concurrent calls) every call emits transcript events at
a telephone-call rate (default 2 events/s: a partial about once a second on each channel,
finals in between), keyed by call id, through the same EventProducer/EventConsumer the services
use. Latency is producer ``send()`` → handler in the consumer group (both on this machine, so
the clocks agree). A final "saturation" run sends as fast as possible to find the ceiling.

    python benchmarks/kafka_hop.py                 # local Tansu broker on a free loopback port
    DASAN_KAFKA_BOOTSTRAP=host:9092 python benchmarks/kafka_hop.py --external

Prints a table and writes benchmarks/results/kafka_hop.json.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from kafka.admin import NewTopic
from machine_info import machine
from tqdm import tqdm

from streaming.admin import admin_client
from streaming.broker import LocalBroker
from streaming.events import Channel, TranscriptSegment
from streaming.kafka import EventConsumer, EventProducer
from streaming.settings import KafkaSettings

RESULTS = Path(__file__).parent / "results"
TEXT = "네 저희 집 앞에 차가 계속 불법으로 주차되어 있어서요 신고를 하고 싶은데 어떻게 해야 되나요"


def run_load(settings: KafkaSettings, calls: int, rate: float, duration: float, partitions: int) -> dict:
    topic = f"bench.hop.{uuid.uuid4().hex[:8]}"
    admin = admin_client(settings)
    admin.create_topics([NewTopic(topic, partitions, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    admin.close()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    received = threading.Event()
    lock = threading.Lock()
    expected = [0]

    def handle(event, record) -> None:
        now = time.perf_counter()
        with lock:
            t0 = sent_at.pop(event.event_id, None)
            if t0 is not None:
                latencies.append(now - t0)
            if len(latencies) >= expected[0] > 0:
                received.set()

    consumer = EventConsumer([topic], f"bench-{topic}", handle, settings, max_poll_records=2000)
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            consumer.poll_once(100)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    # Wait for the group join before the clock starts.
    t_join = time.monotonic()
    while not consumer.assignment() and time.monotonic() - t_join < 60:
        time.sleep(0.05)
    producer = EventProducer(settings)
    call_ids = [f"bench-{i:04d}" for i in range(calls)]
    interval = 1.0 / rate
    # Each call starts at a random phase within its interval.
    rng = np.random.default_rng(7)
    next_at = {cid: float(rng.uniform(0, interval)) for cid in call_ids}
    seq = dict.fromkeys(call_ids, 0)
    total = int(calls * rate * duration)
    start = time.perf_counter()
    sent = 0
    bar = tqdm(total=total, desc=f"{calls:>4} calls", unit="ev", leave=False)
    while sent < total:
        now = time.perf_counter() - start
        due = [cid for cid, t in next_at.items() if t <= now]
        if not due:
            time.sleep(min(0.002, max(0.0, min(next_at.values()) - now)))
            continue
        for cid in due:
            i = seq[cid]
            ev = TranscriptSegment(
                call_id=cid,
                segment_id=f"{cid}-{i // 3}",
                channel=Channel.caller,
                start_s=i * interval,
                end_s=i * interval + 1.2,
                text=TEXT,
                is_final=i % 3 == 2,
                revision=i % 3,
                confidence=0.8,
                asr_model="bench",
            )
            with lock:
                sent_at[ev.event_id] = time.perf_counter()
            producer.send(ev, topic=topic)
            seq[cid] += 1
            next_at[cid] += interval
            sent += 1
            bar.update(1)
            if sent >= total:
                break
    producer.flush()
    send_elapsed = time.perf_counter() - start
    with lock:
        expected[0] = total
        if len(latencies) >= total:
            received.set()
    received.wait(timeout=60)
    elapsed = time.perf_counter() - start
    bar.close()
    stop.set()
    thread.join(5)
    consumer.close()
    producer.close()
    lat = np.array(latencies) * 1000
    return {
        "calls": calls,
        "events_per_call_per_s": rate,
        "events": total,
        "delivered": len(latencies),
        "offered_rate_eps": round(total / send_elapsed, 1),
        "delivered_rate_eps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "p95_ms": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        "max_ms": round(float(lat.max()), 2) if len(lat) else None,
        "event_bytes": len(ev.model_dump_json()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[10, 100, 500])
    ap.add_argument("--rate", type=float, default=2.0, help="events per call per second")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of traffic per load")
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--saturation-events", type=int, default=20000)
    ap.add_argument(
        "--external", action="store_true", help="use DASAN_KAFKA_BOOTSTRAP instead of a local broker"
    )
    args = ap.parse_args()

    broker = None
    if args.external:
        settings = KafkaSettings()
    else:
        broker = LocalBroker().start()
        settings = KafkaSettings(bootstrap=broker.bootstrap, max_poll_interval_ms=3000)
    rows = []
    try:
        for calls in args.calls:
            rows.append(run_load(settings, calls, args.rate, args.duration, args.partitions))
        # Saturation: as fast as the producer can go (rate high enough to never wait).
        sat_calls = 500
        sat_rate = 1e6
        sat_duration = args.saturation_events / (sat_calls * sat_rate)
        sat = run_load(settings, sat_calls, sat_rate, sat_duration, args.partitions)
        sat["calls"] = "saturation"
        rows.append(sat)
    finally:
        if broker:
            broker.stop()
    print(
        f"\nKafka hop (produce → consume), broker: {'external' if args.external else 'local Tansu'}; "
        f"{machine()}"
    )
    print(
        f"{'calls':>10} {'events':>7} {'offered/s':>10} {'delivered/s':>11} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}"
    )
    for r in rows:
        print(
            f"{r['calls']!s:>10} {r['events']:>7} {r['offered_rate_eps']:>10} {r['delivered_rate_eps']:>11} "
            f"{r['p50_ms']!s:>8} {r['p95_ms']!s:>8} {r['p99_ms']!s:>8} {r['max_ms']!s:>8}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "kafka_hop",
        "machine": machine(),
        "broker": "external" if args.external else "tansu-0.6.0",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
    }
    (RESULTS / "kafka_hop.json").write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(f"saved {RESULTS / 'kafka_hop.json'}")


if __name__ == "__main__":
    main()
