"""Replay (assist/replay.py): alignment of live and candidate cards, the totals, and a scripted call
run through the real assistant (the BM25 slice of conftest.py) on a scripted clock; provenance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from assist.assistant import Assistant
from assist.replay import Card, Judgement, Replayer, align, judgements, totals
from assist.settings import AssistSettings
from assist.tracker import suggestion_id_for
from console.projection import payload_of
from streaming.events import CallEnded, CallStarted, Channel, Event
from tests.assist.call_script import ID_CARD, ID_FEE, METER, PARKING, seg


def card(sid: str, trig: list[str], cited: list[str] | None) -> Card:
    return Card(sid, trig, cited is None, cited or [], cited or [], "…")


def test_alignment_labels_every_pair_and_counts_regressions_and_fixes() -> None:
    live = [
        card("L1", ["s1"], ["A"]),  # same
        card("L2", ["s2", "s3"], ["B"]),  # candidate cites C: changed (👍 → regression)
        card("L3", ["s4"], ["D"]),  # candidate abstains (👎 → fix)
        card("L4", ["s5"], None),  # live abstained, candidate answers
        card("L5", ["s6"], ["E"]),  # no candidate card: dropped (copied → regression)
        card("L6", ["s8"], None),  # both abstain: same
    ]
    cand = [
        card("C1", ["s1"], ["A"]),
        card("C2", ["s3"], ["C"]),  # shares s3 with L2 only
        card("C3", ["s4"], None),
        card("C4", ["s5"], ["F"]),
        card("C5", ["s7"], ["G"]),  # new
        card("C6", ["s8"], None),
    ]
    fb = judgements(
        [
            {"suggestion_id": "L2", "kind": "vote", "value": "down", "reason": None},
            {"suggestion_id": "L2", "kind": "vote", "value": "up", "reason": "정확"},  # the last vote counts
            {"suggestion_id": "L3", "kind": "vote", "value": "down", "reason": "엉뚱한 조문"},
            {"suggestion_id": "L5", "kind": "copy", "value": None, "reason": None},
            {"suggestion_id": "L1", "kind": "copy", "value": None, "reason": None},
        ]
    )
    assert fb["L2"] == Judgement("up", 0, "정확") and fb["L5"].positive and fb["L3"].negative
    order = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"]
    pairs = align(live, cand, fb, order)
    got = [
        (
            p.live.suggestion_id if p.live else None,
            p.candidate.suggestion_id if p.candidate else None,
            p.status,
        )
        for p in pairs
    ]
    assert got == [
        ("L1", "C1", "same"),
        ("L2", "C2", "changed"),
        ("L3", "C3", "now_abstains"),
        ("L4", "C4", "now_answers"),
        ("L5", None, "dropped"),
        (None, "C5", "new"),
        ("L6", "C6", "same"),
    ]
    t = totals(pairs)
    assert t["status"] == {
        "same": 2,
        "changed": 1,
        "now_abstains": 1,
        "now_answers": 1,
        "dropped": 1,
        "new": 1,
    }
    assert t["agreement"] == round(2 / 7, 4)
    assert t["regressions"] == 2  # L2 (👍, changed) and L5 (copied, dropped); L1 copied but same
    assert t["fixes"] == 1  # L3 (👎, now abstains)
    assert t["abstention_live"] == round(2 / 6, 4) and t["abstention_candidate"] == round(2 / 6, 4)
    assert t["judged_cards"] == 4


def test_a_card_takes_the_candidate_sharing_most_trigger_segments() -> None:
    live = [card("L1", ["a", "b"], ["X"])]
    cand = [card("C1", ["a"], ["Y"]), card("C2", ["a", "b"], ["X"])]
    pairs = align(live, cand)
    assert [(p.status, p.candidate.suggestion_id if p.candidate else None) for p in pairs] == [
        ("same", "C2"),
        ("new", "C1"),
    ]


def _call(call_id: str, t0: datetime) -> list[Event]:
    """A call as the log holds it: start, caller and counselor finals (2 s each), end; produced_at
    follows the audio clock (events given out of order: replay sorts them)."""
    turns = [
        (Channel.caller, METER),
        (Channel.counselor, "네, 확인해 보겠습니다."),
        (Channel.caller, PARKING),
        (Channel.caller, ID_CARD),
        (Channel.caller, ID_FEE),
    ]
    evs: list[Event] = [CallStarted(call_id=call_id, counselor_id="c1", produced_at=t0)]
    for i, (ch, text) in enumerate(turns):
        s = seg(call_id, f"{call_id}-{i}", ch, text, start=i * 3.0)
        evs.append(s.model_copy(update={"produced_at": t0 + timedelta(seconds=i * 3.0 + 2)}))
    evs.append(CallEnded(call_id=call_id, produced_at=t0 + timedelta(seconds=20)))
    return list(reversed(evs))


def _live(assistant: Assistant, events: list[Event]) -> list[Any]:
    """What production would have shown: a replay's cards with the production ids and variant."""
    run = Replayer(assistant, "live").run(events)[0]
    return [
        s.model_copy(
            update={
                "suggestion_id": suggestion_id_for(s.call_id, s.trigger_segment_ids[0]),
                "provenance": assistant.provenance,
            }
        )
        for s in run.suggestions
    ]


def test_replay_runs_a_call_on_its_own_clock_with_its_own_ids(assistant: Assistant, slice_kb: Any) -> None:
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    events = _call("rp-unit-1", t0)
    live = _live(assistant, events)
    assert len(live) >= 3  # meter, parking, id card (the fee follow-up may merge or repeat)

    runs = Replayer(assistant, "run-a").run(events)
    assert [r.call_id for r in runs] == ["rp-unit-1"]
    run = runs[0]
    assert run.errors == 0 and run.summary is not None
    assert run.segment_order == [f"rp-unit-1-{i}" for i in range(5)]
    # own ids: never a production card's id, and another run gets others again
    prod_ids = {s.suggestion_id for s in live}
    assert all(s.suggestion_id.startswith("rp-") for s in run.suggestions)
    assert not prod_ids & {s.suggestion_id for s in run.suggestions}
    again = Replayer(assistant, "run-b").run(events)[0]
    assert not {s.event_id for s in run.suggestions} & {s.event_id for s in again.suggestions}
    # provenance: from the knowledge base the assistant holds, marked as this replay
    p = run.suggestions[0].provenance
    assert p is not None and p.variant == "replay:run-a"
    assert p.index_key == slice_kb.key and p.corpus_version and p.encoder is None  # BM25 only
    assert run.summary.provenance is not None and run.summary.provenance.settings_hash == p.settings_hash
    # the same configuration agrees with itself on every card
    pairs = align([Card.of(s) for s in live], [Card.of(s) for s in run.suggestions], {}, run.segment_order)
    assert [p.status for p in pairs] == ["same"] * len(live)


def test_a_stricter_candidate_abstains_where_live_answered(assistant: Assistant, slice_kb: Any) -> None:
    """The candidate: the same index with a BM25 confidence threshold no passage reaches
    (``DASAN_KB_ABSTAIN_BM25_THRESHOLD``; the index key does not cover it, so the index is reused)."""
    from assist.knowledge import KnowledgeBase

    t0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    events = _call("rp-unit-2", t0)
    live = [Card.of(s) for s in _live(assistant, events)]
    strict_kb = KnowledgeBase.open(
        slice_kb.settings.model_copy(update={"abstain_bm25_threshold": 1e9}), build_if_missing=False
    )
    assert strict_kb.key == slice_kb.key
    strict = Assistant(strict_kb, AssistSettings())
    cand_run = Replayer(strict, "strict").run(events)[0]
    assert strict.provenance.settings_hash != assistant.provenance.settings_hash
    assert strict.provenance.index_key == assistant.provenance.index_key
    pairs = align(live, [Card.of(s) for s in cand_run.suggestions], {}, cand_run.segment_order)
    answered = [p for p in pairs if p.live and not p.live.abstained]
    assert answered and all(p.status in ("now_abstains", "dropped") for p in answered)
    assert any(p.status == "now_abstains" for p in answered)


def test_console_payload_keeps_the_provenance(assistant: Assistant) -> None:
    t0 = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    run = Replayer(assistant, "p").run(_call("rp-unit-3", t0))[0]
    payload = payload_of(run.suggestions[0])
    assert payload["provenance"]["variant"] == "replay:p"
    card_back = Card.of(payload)
    assert card_back.key == Card.of(run.suggestions[0]).key
    assert run.summary is not None
    assert payload_of(run.summary)["provenance"]["index_key"] == assistant.kb.key


def test_candidate_settings_read_like_the_services_and_refuse_unknown_names() -> None:
    import pytest

    from dasan.replay import candidate_settings, parse_duration

    a, kb, over = candidate_settings(["DASAN_KB_WEIGHT_DENSE=0.6", "dasan_assist_top_k=3"])
    assert kb.weight_dense == 0.6 and a.top_k == 3
    assert over == {"DASAN_KB_WEIGHT_DENSE": "0.6", "DASAN_ASSIST_TOP_K": "3"}
    assert AssistSettings().top_k == 5  # the environment is as it was
    with pytest.raises(SystemExit, match="DASAN_KB_WEIGHT_DENSE"):
        candidate_settings(["DASAN_KB_WEIGHT_DENS=0.6"])
    with pytest.raises(SystemExit):
        candidate_settings(["DASAN_CONSOLE_PORT=1"])  # not an assist or knowledge-base setting
    assert parse_duration("1h").total_seconds() == 3600 and parse_duration("30m").total_seconds() == 1800


def test_replay_from_the_console_store_when_the_log_has_expired(
    assistant: Assistant, tmp_path: Any, monkeypatch: Any
) -> None:
    """The calls as the console recorded them (masked final segments, its copies of the live cards,
    the feedback rows): ``dasan replay --from-store`` reads them, runs the candidate and writes the
    report, without a broker."""
    import argparse
    import json

    from console.db import make_engine, migrate
    from console.settings import ConsoleSettings
    from console.store import Store
    from dasan.replay import cmd_replay

    url = f"sqlite:///{tmp_path / 'console.db'}"
    settings = ConsoleSettings(database_url=url)
    engine = make_engine(settings)
    migrate(engine, settings)
    store = Store(engine, settings.timezone)
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    events = sorted(_call("rp-store-1", t0), key=lambda e: e.produced_at)
    live = _live(assistant, events)
    assert store.record_many([*events, *live])
    store.add_feedback(store.get_suggestion(live[0].suggestion_id), "c1", "vote", "up", None)

    monkeypatch.setenv("DASAN_CONSOLE_DATABASE_URL", url)
    monkeypatch.setenv(
        "DASAN_KB_CORPUS_PATHS", json.dumps([str(p) for p in assistant.kb.settings.corpus_paths])
    )
    monkeypatch.setenv("DASAN_KB_INDEX_DIR", str(assistant.kb.settings.index_dir))
    monkeypatch.setenv("DASAN_KB_DENSE_ENABLED", "false")
    monkeypatch.setenv("DASAN_KB_ABSTAIN_BM25_THRESHOLD", str(assistant.kb.settings.abstain_bm25_threshold))
    out = tmp_path / "report"
    args = argparse.Namespace(
        last=timedelta(hours=1),
        call=None,
        set=[],
        from_store=True,
        from_shadow=None,
        output_topic=None,
        out=out,
        index=None,
        no_summaries=False,
        json=False,
    )
    assert cmd_replay(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert [c["call_id"] for c in report["calls"]] == ["rp-store-1"] and report["calls"][0][
        "origin"
    ] == "store"
    pairs = report["calls"][0]["pairs"]
    # the same configuration, from masked text: the same cards, and the 👍 is on the first one
    assert [p["status"] for p in pairs] == ["same"] * len(live)
    assert pairs[0]["feedback"] == {"vote": "up", "copied": 0, "reason": None}
    assert report["totals"]["regressions"] == 0 and report["totals"]["agreement"] == 1.0
    assert "재생 비교 보고서" in (out / "report.html").read_text(encoding="utf-8")
