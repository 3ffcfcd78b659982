"""Commands of the streaming package: ``dasan broker``, ``dasan topics`` and ``dasan mask``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def register(sub: Any, groups: dict[str, Any]) -> None:
    p = sub.add_parser(
        "broker",
        help="Run the local Kafka-compatible broker (Tansu) for development",
        description="Start Tansu on a loopback port, create the topics, and keep running until Ctrl-C. "
        "Data lives in memory: a restart starts empty. Production uses Apache Kafka (see infra/).",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=19092, help="port (default 19092, DASAN_KAFKA_BOOTSTRAP's default)"
    )
    p.add_argument("--no-topics", action="store_true", help="do not create the topics")
    p.set_defaults(func=_broker)

    t = sub.add_parser("topics", help="Create or list the Kafka topics from the topic registry")
    ts = t.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    c = ts.add_parser("create", help="Create missing topics (idempotent, through the Kafka admin API)")
    c.add_argument("--partitions", type=int, help="override the registry's partition counts")
    c.add_argument("--replication-factor", type=int, help="override the replication factor (3 in production)")
    c.set_defaults(func=_topics_create)
    ls = ts.add_parser("list", help="Show the registry and what the broker has")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_topics_list)

    m = sub.add_parser(
        "mask",
        help="Mask personal data in text read from standard input (lines, or JSON lines of a call)",
        description="Line mode (default): each line is masked on its own. --jsonl: each line is "
        '{"call_id": …, "channel": "caller"|"counselor", "text": …} (optional "at": seconds of call '
        'time, "segment_id", "is_final"); the same object comes out with "text" masked, and numbers '
        "said across a call's segments are masked with memory per call and channel. A line that is "
        "not such an object is reported on standard error with its number and the exit code is 2.",
    )
    m.add_argument("--jsonl", action="store_true", help="JSON lines with call_id, channel and text")
    m.add_argument(
        "--names",
        choices=["model", "rules"],
        default=None,
        help="Names: kiwipiepy + rules, or rules only (default: DASAN_PRIVACY_NAMES, else model)",
    )
    m.set_defaults(func=_mask)


def _broker(args: argparse.Namespace) -> int:
    from .admin import create_topics
    from .broker import LocalBroker
    from .kafka import install_signal_handlers
    from .logs import setup_logging
    from .settings import KafkaSettings

    setup_logging("broker")
    broker = LocalBroker(host=args.host, port=args.port)
    print(f"starting Tansu on {broker.bootstrap} …", file=sys.stderr)
    broker.start()
    if not args.no_topics:
        result = create_topics(KafkaSettings(bootstrap=broker.bootstrap))
        print(
            f"topics: {sum(v == 'created' for v in result.values())} created, "
            f"{sum(v == 'exists' for v in result.values())} already there",
            file=sys.stderr,
        )
    print(f"broker ready: DASAN_KAFKA_BOOTSTRAP={broker.bootstrap}  (Ctrl-C stops it)", file=sys.stderr)
    stopping = []
    install_signal_handlers(lambda: stopping.append(True))
    try:
        while not stopping and broker.running():
            time.sleep(0.3)
    finally:
        broker.stop()
    return 0 if stopping else 1


def _topics_create(args: argparse.Namespace) -> int:
    from .admin import create_topics

    result = create_topics(partitions=args.partitions, replication_factor=args.replication_factor)
    for name, state in result.items():
        print(f"{state:8s} {name}")
    return 0


def _topics_list(args: argparse.Namespace) -> int:
    from .admin import describe_topics
    from .topics import all_topic_specs

    have = describe_topics()
    rows = [
        {
            "topic": s.name,
            "partitions": s.partitions,
            "retention_h": s.retention_ms // 3_600_000,
            "on_broker": have.get(s.name),
            "description": s.description,
        }
        for s in all_topic_specs()
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for r in rows:
            print(
                f"{r['topic']:26s} p={r['partitions']:<3} retention={r['retention_h']:>5}h "
                f"broker={r['on_broker'] or '-':<4} {r['description']}"
            )
    return 0


def _mask(args: argparse.Namespace) -> int:
    from .privacy import ConversationMasker, mask_text

    if not args.jsonl:
        for line in sys.stdin:
            end = "\n" if line.endswith("\n") else ""
            sys.stdout.write(mask_text(line.rstrip("\n"), names=args.names) + end)
        sys.stdout.flush()
        return 0
    masker = ConversationMasker(names=args.names)
    failed = 0
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            call_id, channel, text = item["call_id"], item["channel"], item["text"]
            if not (isinstance(call_id, str) and isinstance(channel, str) and isinstance(text, str)):
                raise ValueError("call_id, channel and text must be strings")
            at = item.get("at")
            item["text"] = masker.mask(
                call_id,
                channel,
                text,
                at=float(at) if at is not None else None,
                key=str(item["segment_id"]) if item.get("segment_id") is not None else None,
                remember=item.get("is_final", True) is not False,
            )
        except (ValueError, KeyError, TypeError) as exc:
            failed += 1
            # the line itself may hold personal data: only its number and the reason are reported
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0][:120]
            print(f"dasan mask: line {n}: {type(exc).__name__}: {reason}", file=sys.stderr)
            continue
        sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 2 if failed else 0
