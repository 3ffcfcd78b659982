"""How long a takeover holds the assist's poll loop: the replay of taken-over calls, in one go or
paced call by call (#18; docs/assist.md "A takeover replayed a tick's budget at a time").

When a member takes over partitions it re-reads their history and replays every open call through
:class:`assist.tracker.CallTracker`: each final segment is masked again (Kiwi finds names) and each
caller segment's nouns are analysed again. A replay in one go held the loop for seconds on a slow
core (session 29: ~4 s for 50 calls on a 2-core AVX2-only EPYC, against a 3-6 s poll interval).

This script builds the history a member leaves behind, without Kafka and without retrieval:
``--calls`` calls made of eval-dev's scripted calls (ids made unique), replayed live through a
tracker that plays the dead member (real masking, real Korean analyser with the corpus' terms); the
caller turns it would have served are marked published with a ``KeywordsUpdated`` event (what the
service publishes with every card, and all a replay needs to know a segment was served), the last
one of each call left unserved. Then the same history is replayed by a new tracker:

- ``one_go``: no budget (what every tick did before: the whole replay between two polls);
- ``paced``: the service's budget, ``max.poll.interval`` × ``batch_time_share`` (``--interval-s``,
  ``--share``; the development defaults unless given), one step a tick.

It reports the longest step (what the loop waits between two polls), the steps, the total, the
segments analysed for nouns, and whether the paced replay ends in the state of the one-go replay.
``--repo`` runs another checkout's tracker (the code before a change) with this script: one without
a budget is replayed in one go only.

    .venv/bin/python benchmarks/rebuild_steps.py --calls 25,50,100
    .venv/bin/python benchmarks/rebuild_steps.py --repo ../before --calls 25,50,100 --out results/x.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def eval_dev_calls() -> list[dict[str, Any]]:
    from streaming import paths

    text = (paths.shared_dir() / "eval-dev" / "calls.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def call_events(call: dict[str, Any], cid: str, counselor: str) -> list[Any]:
    """A scripted call as its events: ``CallStarted``, then every turn as a final segment on its
    speaker's channel (~7 syllables a second, 0.8 s between turns)."""
    from streaming.events import CallStarted, Channel, TranscriptSegment

    out: list[Any] = [CallStarted(call_id=cid, counselor_id=counselor)]
    start = 0.0
    for i, turn in enumerate(call["turns"]):
        length = max(1.5, len(turn["text"]) / 7)
        out.append(
            TranscriptSegment(
                call_id=cid,
                segment_id=f"{cid}-s{i:02d}",
                channel=Channel.caller if turn["speaker"] == "citizen" else Channel.counselor,
                text=turn["text"],
                start_s=start,
                end_s=start + length,
                is_final=True,
                asr_model="scripted",
            )
        )
        start += length + 0.8
    return out


def history_of(n_calls: int, calls: list[dict[str, Any]], evidence: Any) -> list[tuple[int | None, Any]]:
    """The events of ``n_calls`` calls on partition 0, and what the dead member published of them."""
    from assist.settings import AssistSettings
    from assist.tracker import CallTracker
    from streaming.events import KeywordsUpdated

    dead = CallTracker(AssistSettings(), evidence)
    history: list[tuple[int | None, Any]] = []
    for k in range(n_calls):
        call = calls[k % len(calls)]
        history += [(0, ev) for ev in call_events(call, f"{call['id']}-{k:03d}", f"counselor{k % 7}")]
    for _, ev in history:
        dead.apply(ev, 0.0, partition=0)
    published: list[tuple[int | None, Any]] = []
    for st in dead.calls.values():
        served = st.pending[:-1]  # the member died before serving the call's last question
        if served:
            published.append(
                (None, KeywordsUpdated(call_id=st.call_id, keywords=[], trigger_segment_ids=served))
            )
    return history + published


def replay(
    tracker_cls: Any, settings: Any, evidence: Any, history: list[Any], budget_s: float | None
) -> dict[str, Any]:
    """Replay ``history`` with a new tracker, a step at a time; the steps' seconds and the state."""
    analysed = [0]

    def counted(text: str) -> Any:
        analysed[0] += 1
        return evidence(text)

    tr = tracker_cls(settings, counted)
    steps: list[float] = []
    t0 = time.perf_counter()
    if budget_s is None:
        tr.rebuild(history, 1000.0)
        steps.append(time.perf_counter() - t0)
    else:
        left = tr.rebuild(history, 1000.0, budget_s=budget_s)
        steps.append(time.perf_counter() - t0)
        while left:
            t1 = time.perf_counter()
            left = tr.continue_rebuild(1000.0, budget_s)
            steps.append(time.perf_counter() - t1)
    state = {
        cid: (st.order, sorted(st.covered), st.pending, st.ended is not None) for cid, st in tr.calls.items()
    }
    return {
        "longest_step_s": round(max(steps), 3),
        "steps": len(steps),
        "total_s": round(sum(steps), 3),
        "segments_analysed": analysed[0],
        "open_calls": len(tr.calls),
        "_state": state,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="25,50,100", help="numbers of taken-over calls, comma-separated")
    ap.add_argument("--repo", default=None, help="the checkout whose tracker replays (default: this one)")
    ap.add_argument(
        "--interval-s", type=float, default=None, help="max.poll.interval (default: the settings')"
    )
    ap.add_argument(
        "--share", type=float, default=None, help="the tick's share of it (default: the settings')"
    )
    ap.add_argument("--out", default=str(HERE / "results" / "rebuild_steps.json"))
    args = ap.parse_args()

    repo = Path(args.repo).resolve() if args.repo else HERE.parent
    sys.path.insert(0, str(repo))
    sys.path.insert(1, str(HERE))
    from machine_info import machine, write_result

    from assist.keywords import STOPWORDS
    from assist.knowledge.build import make_analyzer
    from assist.knowledge.corpus import load_records
    from assist.knowledge.settings import KnowledgeSettings
    from assist.settings import AssistSettings
    from assist.tracker import CallTracker
    from streaming.settings import KafkaSettings

    ks = KnowledgeSettings()
    t0 = time.perf_counter()
    analyzer = make_analyzer(load_records(ks.corpus_paths), ks)
    analyzer.nouns("준비")  # Kiwi's first call loads its model
    load_s = time.perf_counter() - t0

    def evidence(text: str) -> list[str]:  # Assistant.evidence_terms, without the index
        return [n for n in analyzer.nouns(text) if len(n) >= 2 and n not in STOPWORDS]

    settings = AssistSettings()
    interval = args.interval_s if args.interval_s is not None else KafkaSettings().poll_interval_ms / 1000
    share = args.share if args.share is not None else settings.batch_time_share
    budget = interval * share
    if budget <= 0:
        raise SystemExit("the budget (interval × share) must be positive")
    paced = "budget_s" in inspect.signature(CallTracker.rebuild).parameters
    calls = eval_dev_calls()
    from streaming.privacy import mask_text

    mask_text("홍길동 씨 010-1234-5678")  # the masker's Kiwi loads once, outside the timings
    rows = []
    for n in [int(x) for x in args.calls.split(",")]:
        history = history_of(n, calls, evidence)
        row: dict[str, Any] = {"calls": n, "events": len(history)}
        one = replay(CallTracker, settings, evidence, history, None)
        row["one_go"] = {k: v for k, v in one.items() if not k.startswith("_")}
        if paced:
            step = replay(CallTracker, settings, evidence, history, budget)
            row["paced"] = {k: v for k, v in step.items() if not k.startswith("_")}
            row["paced_same_state"] = step["_state"] == one["_state"]
            row["longest_step_ratio"] = round(one["longest_step_s"] / step["longest_step_s"], 2)
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    write_result(
        args.out,
        {
            "benchmark": "rebuild_steps",
            "repo": str(repo),
            "tracker_module": inspect.getfile(CallTracker),
            "paced": paced,
            "interval_s": interval,
            "share": share,
            "budget_s": budget,
            "analyser_load_s": round(load_s, 2),
            "rows": rows,
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
