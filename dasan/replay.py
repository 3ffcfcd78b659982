"""``dasan replay``: past calls through a candidate configuration, compared card by card with what
counselors were shown and what they thought of it.

- **Calls**: a time range (``--last 1h``) or call ids (``--call``), read from the Kafka log
  (``call.events`` + ``call.transcripts``, outside any consumer group) within retention; a call the
  log no longer holds is read from the console's store (masked final segments).
- **Live cards**: the production suggestions of those calls (``assist.suggestions``; the store's
  copies for calls from the store), and the counselor's feedback on each (the store's feedback
  rows: last 👍/👎 and copies).
- **Candidate**: the assist settings of this process with ``--set DASAN_KB_…=… --set
  DASAN_ASSIST_…=…`` on top (any variable ``dasan config`` lists for the knowledge base or assist),
  run through the same tracker and assistant as the service (:mod:`assist.replay`), at full speed,
  isolated: nothing is published unless ``--output-topic`` names a topic of its own (never a
  production topic), and then with ids of the replay's own. ``--from-shadow NAME`` takes the
  candidate cards from a shadow assist's output instead of running one.
- **Report**: JSON and a self-contained HTML page (``var/replay/<run id>/``); the totals are printed.

Why one module of ~610 lines: it is one command's wiring (the calls from Kafka or the store, the
candidate's settings, the report); the replay itself (tracker, alignment, comparison) is
:mod:`assist.replay`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streaming.events import (
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    Event,
    Suggestion,
    TranscriptSegment,
    TranscriptSource,
)
from streaming.privacy import mask_text
from streaming.topics import (
    ASSIST_SUGGESTIONS,
    ASSIST_SUGGESTIONS_SHADOW,
    CALL_EVENTS,
    CALL_SUMMARIES,
    CALL_TRANSCRIPTS,
    TOPICS,
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
STORE_MODEL = "console-store"


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '1h', '7d' → a timedelta."""
    m = _DURATION.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30m, 1h, 7d)")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


# --------------------------------------------------------------------------- candidate settings


def settable() -> dict[str, tuple[type, str]]:
    """{ENV_VAR: (settings class, field)} of every knowledge-base and assist setting."""
    from assist.knowledge import KnowledgeSettings
    from assist.settings import AssistSettings

    from .config import env_names

    out: dict[str, tuple[type, str]] = {}
    for cls in (KnowledgeSettings, AssistSettings):
        prefix = cls.model_config.get("env_prefix", "")
        for env in env_names(cls):
            out[env] = (cls, env[len(prefix) :].lower())
    return out


@contextlib.contextmanager
def _environ(over: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in over}
    os.environ.update(over)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def candidate_settings(sets: Sequence[str]) -> tuple[Any, Any, dict[str, str]]:
    """(AssistSettings, KnowledgeSettings, the overrides) of this environment with ``NAME=VALUE`` on top;
    the values are read exactly as the services read their environment."""
    from assist.knowledge import KnowledgeSettings
    from assist.settings import AssistSettings

    known = settable()
    over: dict[str, str] = {}
    for item in sets:
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in known:
            close = [k for k in known if k.startswith(name[:10])][:5]
            raise SystemExit(
                f"--set {item!r}: not a knowledge-base or assist setting"
                + (f" (did you mean {', '.join(close)}?)" if close else " (see `dasan config`)")
            )
        over[name] = value
    with _environ(over):
        return AssistSettings(), KnowledgeSettings(), over


# --------------------------------------------------------------------------- what is replayed


@dataclass
class Calls:
    """The calls to replay: their input events, live cards and summaries, and where they came from."""

    events: dict[str, list[Event]] = field(default_factory=dict)
    live: dict[str, list[Suggestion | dict[str, Any]]] = field(default_factory=dict)
    live_summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    shadow: dict[str, list[Suggestion]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    counselor: dict[str, str] = field(default_factory=dict)
    started: dict[str, datetime] = field(default_factory=dict)

    def caller_texts(self, call_id: str) -> dict[str, str]:
        """Masked final caller text per segment id (what the report shows as the trigger)."""
        out = {}
        for ev in self.events.get(call_id, []):
            if isinstance(ev, TranscriptSegment) and ev.is_final and ev.channel == Channel.caller:
                out[ev.segment_id] = ev.text if ev.asr_model == STORE_MODEL else mask_text(ev.text)
        return out


def _is_production(ev: Suggestion | CallSummary) -> bool:
    return ev.provenance is None or ev.provenance.variant == "production"


def _partitions_of(kafka: Any, topics: Sequence[str], call_ids: set[str] | None) -> list[int]:
    """The partitions to read: where the named calls are (a call's events are keyed by its id, so
    the producer's murmur2 partitioner put them on the same partition of every topic with the same
    partition count), or every partition."""
    from kafka import KafkaConsumer
    from kafka.partitioner.default import murmur2

    cfg = kafka.consumer_config(None)
    cfg.update(enable_auto_commit=False)
    probe = KafkaConsumer(**cfg)
    try:
        counts = {t: len(probe.partitions_for_topic(t) or ()) for t in topics}
    finally:
        probe.close()
    every = list(range(max(counts.values(), default=0)))
    if call_ids is None or len(set(counts.values())) != 1:
        return every
    n = next(iter(counts.values()))
    return sorted({(murmur2(c.encode()) & 0x7FFFFFFF) % n for c in call_ids})


def from_kafka(
    kafka: Any,
    since: datetime,
    call_ids: set[str] | None,
    shadow: str | None = None,
    budget_s: float = 120.0,
) -> Calls:
    """Calls with a final transcript segment since ``since`` (or the named ones) from the Kafka log."""
    from streaming.kafka import read_partitions

    topics = [CALL_EVENTS, CALL_TRANSCRIPTS, ASSIST_SUGGESTIONS, CALL_SUMMARIES]
    if shadow:
        topics.append(ASSIST_SUGGESTIONS_SHADOW)
    parts = _partitions_of(kafka, topics, call_ids)
    read = read_partitions(kafka, topics, parts, since_ms=int(since.timestamp() * 1000), budget_s=budget_s)
    out = Calls()
    seen: set[str] = set()
    wanted = {
        ev.call_id
        for _rec, ev in read
        if isinstance(ev, TranscriptSegment) and ev.is_final and (call_ids is None or ev.call_id in call_ids)
    }
    for rec, ev in read:
        cid = ev.call_id
        if cid not in wanted or ev.event_id in seen:
            continue
        seen.add(ev.event_id)
        if rec.topic in (CALL_EVENTS, CALL_TRANSCRIPTS):
            out.events.setdefault(cid, []).append(ev)
            out.origin[cid] = "kafka"
            if isinstance(ev, CallStarted):
                out.counselor[cid] = ev.counselor_id
                out.started[cid] = ev.started_at
        elif rec.topic == ASSIST_SUGGESTIONS_SHADOW:
            if isinstance(ev, Suggestion) and ev.provenance and ev.provenance.variant == f"shadow:{shadow}":
                out.shadow.setdefault(cid, []).append(ev)
        elif isinstance(ev, Suggestion) and _is_production(ev):
            out.live.setdefault(cid, []).append(ev)
        elif isinstance(ev, CallSummary) and _is_production(ev):
            from console.projection import summary_content

            out.live_summary[cid] = summary_content(ev)
    for cid in wanted:
        out.live.setdefault(cid, [])
        if shadow:
            out.shadow.setdefault(cid, [])
    return out


def open_store() -> Any | None:
    """The console's store (read only: no migration), or None when its database is not there."""
    from console.db import make_engine
    from console.settings import ConsoleSettings
    from console.store import Store

    settings = ConsoleSettings()
    url = settings.database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path != ":memory:" and not Path(path).is_file():
            return None
    return Store(make_engine(settings), settings.timezone)


def from_store(store: Any, since: datetime | None, call_ids: set[str] | None) -> Calls:
    """Calls from the console's store: masked final segments (the log has expired), live cards and
    summaries as the console recorded them."""
    from sqlalchemy import select

    from console.models import Call, Segment, SuggestionRow

    out = Calls()
    with store.sessions() as db:
        q = select(Call)
        if call_ids is not None:
            q = q.where(Call.call_id.in_(sorted(call_ids)))
        if since is not None:
            q = q.where(Call.started_at >= since)
        calls = list(db.scalars(q))
        for call in calls:
            cid = call.call_id
            started = call.started_at or call.first_seen_at
            evs: list[Event] = [
                CallStarted(
                    call_id=cid,
                    counselor_id=call.counselor_id or "unknown",
                    started_at=started,
                    produced_at=started,
                    source=TranscriptSource(call.source) if call.source in ("asr", "scripted") else "asr",
                )
            ]
            segs = db.scalars(
                select(Segment).where(Segment.call_id == cid, Segment.is_final).order_by(Segment.seq)
            )
            for s in segs:
                evs.append(
                    TranscriptSegment(
                        call_id=cid,
                        segment_id=s.segment_id,
                        channel=Channel(s.channel),
                        start_s=s.start_s,
                        end_s=max(s.end_s, s.start_s),
                        text=s.text_masked,
                        is_final=True,
                        revision=s.revision,
                        asr_model=STORE_MODEL,
                        produced_at=s.at,
                    )
                )
            if call.ended_at is not None:
                evs.append(CallEnded(call_id=cid, ended_at=call.ended_at, produced_at=call.ended_at))
            if len(evs) < 2:
                continue
            out.events[cid] = evs
            out.origin[cid] = "store"
            out.counselor[cid] = call.counselor_id or ""
            out.started[cid] = started
            rows = db.scalars(
                select(SuggestionRow).where(SuggestionRow.call_id == cid).order_by(SuggestionRow.seq)
            )
            out.live[cid] = [dict(r.payload) for r in rows]
    for cid in out.events:
        summ = store.summary_for_call(cid)
        if summ is not None:
            out.live_summary[cid] = dict(summ.original)
    return out


def feedback_rows(store: Any, call_ids: Sequence[str]) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from console.models import Feedback

    with store.sessions() as db:
        rows = db.scalars(select(Feedback).where(Feedback.call_id.in_(list(call_ids))).order_by(Feedback.at))
        return [
            {"suggestion_id": f.suggestion_id, "kind": f.kind, "value": f.value, "reason": f.reason}
            for f in rows
        ]


def reviewed_summaries(store: Any, call_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{call id: status, edited, content} of the summaries the console holds (content is masked)."""
    out = {}
    for cid in call_ids:
        s = store.summary_for_call(cid)
        if s is not None:
            out[cid] = {"status": s.status, "edited": bool(s.edited), "content": dict(s.content)}
    return out


# --------------------------------------------------------------------------- the report


def build_report(
    calls: Calls,
    runs: Mapping[str, Any],
    feedback: list[dict[str, Any]],
    reviewed: Mapping[str, dict[str, Any]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    from assist.replay import Card, align, compare_summaries, judgements, pair_dict, summary_view, totals

    fb = judgements(feedback)
    per_call: list[dict[str, Any]] = []
    all_pairs = []
    summary_cmp = []
    for cid in sorted(
        calls.events, key=lambda c: (calls.started.get(c) or datetime.min.replace(tzinfo=UTC), c)
    ):
        run = runs.get(cid)
        live = [Card.of(s) for s in calls.live.get(cid, [])]
        if "shadow" in meta:
            cand = [Card.of(s) for s in calls.shadow.get(cid, [])]
        else:
            cand = [Card.of(s) for s in (run.suggestions if run else [])]
        order = run.segment_order if run else []
        if not order:
            order = [e.segment_id for e in calls.events[cid] if isinstance(e, TranscriptSegment)]
        pairs = align(live, cand, fb, order)
        all_pairs += pairs
        texts = calls.caller_texts(cid)
        rows = []
        for p in pairs:
            d = pair_dict(p)
            card = p.live or p.candidate
            d["trigger_text"] = " ".join(texts.get(s, "") for s in (card.trigger_segment_ids if card else []))
            rows.append(d)
        rev = reviewed.get(cid)
        reference = (rev or {}).get("content") if rev and rev["status"] == "approved" else None
        cand_summary = run.summary if run else None
        cmp = compare_summaries(reference or calls.live_summary.get(cid), cand_summary)
        if cand_summary is not None and (reference or calls.live_summary.get(cid)):
            summary_cmp.append(cmp)
        per_call.append(
            {
                "call_id": cid,
                "origin": calls.origin.get(cid),
                "counselor_id": calls.counselor.get(cid),
                "started_at": calls.started[cid].isoformat() if cid in calls.started else None,
                "totals": totals(pairs),
                "pairs": rows,
                "errors": run.errors if run else 0,
                "summary": {
                    "live": summary_view(calls.live_summary.get(cid)),
                    "reviewed": (
                        {
                            "status": rev["status"],
                            "edited": rev["edited"],
                            **(summary_view(rev["content"]) or {}),
                        }
                        if rev
                        else None
                    ),
                    "candidate": summary_view(cand_summary.model_dump(mode="json")) if cand_summary else None,
                    **cmp,
                },
            }
        )
    tot = totals(all_pairs)
    tot["calls"] = len(per_call)
    tot["summaries_compared"] = len(summary_cmp)
    tot["summary_category_agreement"] = (
        round(sum(bool(c["category_same"]) for c in summary_cmp) / len(summary_cmp), 4)
        if summary_cmp
        else None
    )
    tot["summary_regulations_jaccard"] = (
        round(sum(c["regulations_jaccard"] for c in summary_cmp) / len(summary_cmp), 4)
        if summary_cmp
        else None
    )
    live_prov = {
        json.dumps(c["live"]["provenance"], sort_keys=True)
        for call in per_call
        for c in call["pairs"]
        if c["live"] and c["live"]["provenance"]
    }
    return {
        **meta,
        "live_provenance": [json.loads(p) for p in sorted(live_prov)],
        "totals": tot,
        "calls": per_call,
    }


def format_totals(report: dict[str, Any]) -> str:
    t = report["totals"]
    st = t["status"]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x * 100:.1f}%"

    lines = [
        f"replay {report['run_id']}: {t['calls']} calls, {t['live_cards']} live cards, "
        f"{t['candidate_cards']} candidate cards",
        f"  agreement {pct(t['agreement'])}  (same {st['same']}, changed {st['changed']}, "
        f"now abstains {st['now_abstains']}, now answers {st['now_answers']}, dropped {st['dropped']}, "
        f"new {st['new']})",
        f"  abstention {pct(t['abstention_live'])} live → {pct(t['abstention_candidate'])} candidate",
        f"  judged cards {t['judged_cards']}: regressions {t['regressions']} (👍/copied changed), "
        f"fixes {t['fixes']} (👎 changed)",
    ]
    lat = t["latency_candidate"]
    if lat:
        lines.append(
            "  candidate latency p50 ms: "
            + ", ".join(f"{k} {v['p50_ms']}" for k, v in lat.items() if k != "total")
        )
    if t.get("summaries_compared"):
        lines.append(
            f"  summaries: category agreement {pct(t['summary_category_agreement'])}, "
            f"regulations overlap {t['summary_regulations_jaccard']}"
        )
    if report.get("throughput_calls_per_min") is not None:
        ph = report.get("phases") or {}
        lines.append(
            f"  replay {report['wall_s']} s ({report['throughput_calls_per_min']} calls/min); "
            f"reading the calls {ph.get('read_s', '-')} s, loading the candidate {ph.get('load_s', '-')} s"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command


def register(sub: Any) -> None:
    r = sub.add_parser(
        "replay",
        help="Re-run past calls through a candidate configuration and compare with the live cards",
        description="Selects past calls from the Kafka log (or the console's store when the log has "
        "expired), runs them through the assist with the candidate settings at full speed, isolated "
        "from the live system, and writes a JSON and HTML report: per call the live and candidate "
        "cards side by side with the counselor's feedback, and totals.",
    )
    r.add_argument("--last", type=parse_duration, default=None, help="calls of the last 30m, 1h, 7d …")
    r.add_argument("--call", action="append", default=None, help="a call id (repeatable)")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="candidate setting, e.g. DASAN_KB_WEIGHT_DENSE=0.6 (repeatable; see `dasan config`)",
    )
    r.add_argument("--from-store", action="store_true", help="read the calls from the console's store only")
    r.add_argument(
        "--from-shadow",
        default=None,
        metavar="NAME",
        help="take the candidate cards from shadow NAME's output",
    )
    r.add_argument("--output-topic", default=None, help="also publish the candidate's events to this topic")
    r.add_argument(
        "--out", type=Path, default=None, help="report folder (default: $DASAN_VAR_DIR/replay/<id>)"
    )
    r.add_argument("--index", type=Path, default=None, help="use this built index folder (var/kb/<key>)")
    r.add_argument("--no-summaries", action="store_true", help="do not write candidate summaries")
    r.add_argument("--json", action="store_true", help="print the totals as JSON")
    r.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from streaming.paths import var_dir
    from streaming.settings import KafkaSettings

    if args.last is None and not args.call:
        print("say which calls: --last 1h or --call ID", file=sys.stderr)
        return 2
    if args.output_topic and args.output_topic in {*TOPICS, ASSIST_SUGGESTIONS_SHADOW}:
        print(
            f"--output-topic {args.output_topic}: a live topic; replay writes to a topic of its own",
            file=sys.stderr,
        )
        return 2
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    since = now - args.last if args.last is not None else now - timedelta(days=7)
    ids = set(args.call) if args.call else None
    phases: dict[str, float] = {}
    t_read = time.perf_counter()
    store = open_store()
    calls = Calls()
    if not args.from_store:
        try:
            calls = from_kafka(KafkaSettings(), since, ids, shadow=args.from_shadow)
        except Exception as exc:  # no broker: the store still has the calls (masked)
            if store is None or args.from_shadow:
                raise
            print(
                f"the Kafka log is not readable ({type(exc).__name__}): reading the console store",
                file=sys.stderr,
            )
            args.from_store = True
    missing = (ids - set(calls.events)) if ids is not None else None
    if store is not None and (args.from_store or missing):
        stored = from_store(store, None if ids is not None else since, missing if ids is not None else None)
        for cid in stored.events:
            if cid not in calls.events:
                calls.events[cid] = stored.events[cid]
                calls.live[cid] = stored.live.get(cid, [])
                calls.origin[cid] = "store"
                calls.counselor[cid] = stored.counselor.get(cid, "")
                calls.started[cid] = stored.started[cid]
                if cid in stored.live_summary:
                    calls.live_summary[cid] = stored.live_summary[cid]
    if not calls.events:
        print("no calls found in that range", file=sys.stderr)
        return 1
    call_ids = sorted(calls.events)
    feedback = feedback_rows(store, call_ids) if store is not None else []
    reviewed = reviewed_summaries(store, call_ids) if store is not None else {}
    phases["read_s"] = round(time.perf_counter() - t_read, 2)
    meta: dict[str, Any] = {
        "run_id": run_id,
        "created_at": now.isoformat(),
        "selection": {
            "last_s": args.last.total_seconds() if args.last else None,
            "calls": sorted(ids) if ids else None,
            "from_store": bool(args.from_store),
        },
        "feedback_source": "console store" if store is not None else None,
    }
    runs: dict[str, Any] = {}
    t0 = time.perf_counter()
    if args.from_shadow:
        meta["shadow"] = args.from_shadow
        meta["candidate"] = {"shadow": args.from_shadow}
    else:
        from assist.assistant import Assistant
        from assist.replay import Replayer

        t_load = time.perf_counter()
        assist_settings, kb_settings, over = candidate_settings(args.set)
        assistant = Assistant.open(assist_settings, kb_settings, index=args.index)
        replayer = Replayer(assistant, run_id, summaries=not args.no_summaries)
        phases["load_s"] = round(time.perf_counter() - t_load, 2)
        t0 = time.perf_counter()
        runs = {r.call_id: r for r in replayer.run(e for evs in calls.events.values() for e in evs)}
        meta["candidate"] = {"set": over, "provenance": replayer.provenance.model_dump(mode="json")}
        if args.output_topic:
            _publish(KafkaSettings(), args.output_topic, runs.values())
            meta["output_topic"] = args.output_topic
    wall = time.perf_counter() - t0
    meta["wall_s"] = round(wall, 2)
    meta["phases"] = {**phases, "run_s": round(wall, 2)}
    meta["throughput_calls_per_min"] = round(len(call_ids) / wall * 60, 1) if runs and wall > 0 else None
    report = build_report(calls, runs, feedback, reviewed, meta)
    out = args.out or var_dir() / "replay" / run_id
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    from .replay_html import render

    (out / "report.html").write_text(render(report), encoding="utf-8")
    if args.json:
        print(json.dumps({"report": str(out / "report.html"), **report["totals"]}, ensure_ascii=False))
    else:
        print(format_totals(report))
        print(f"report: {out / 'report.html'}")
    return 0


def _publish(kafka: Any, topic: str, runs: Any) -> None:
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from streaming.admin import admin_client
    from streaming.kafka import EventProducer

    admin = admin_client(kafka)
    try:
        if topic not in set(admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    with EventProducer(kafka) as producer:
        for run in runs:
            for ev in [*run.suggestions, *([run.summary] if run.summary else [])]:
                producer.send(ev, topic=topic)
