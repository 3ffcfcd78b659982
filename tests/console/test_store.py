"""The store of record on SQLite and PostgreSQL: migrations, idempotent recording, per-call seq,
masking, search, caller history, review flow and metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from console.db import current_revision
from console.models import CallEvent, Segment, SuggestionRow, Summary
from console.store import Conflict, Store
from tests.console.conftest import FrozenClock

# Date tests run at fixed instants, never at the hour the suite happens to run: Seoul is UTC+9, so
# between 15:00 and 24:00 UTC its date is already the next day (the window where SQLite compared
# Seoul wall-clock day boundaries with UTC values and found nothing).
AT_ANY_HOUR = [
    pytest.param(FrozenClock(datetime(2026, 3, 10, 20, 0, tzinfo=UTC)), id="20utc-seoul-next-day"),
    pytest.param(FrozenClock(datetime(2026, 3, 10, 3, 0, tzinfo=UTC)), id="03utc-seoul-same-day"),
    pytest.param(FrozenClock(datetime(2026, 3, 10, 15, 0, tzinfo=UTC)), id="15utc-seoul-midnight"),
]


def test_migrations_reach_head(store: Store) -> None:
    assert current_revision(store.engine) == "0003"


def test_migrations_match_the_models_and_go_down_and_up(store: Store, console_settings) -> None:
    """The tables the migrations create are the ones console/models.py declares (nothing forgotten in
    a migration), and the newest migration can be undone and done again."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from console.db import migrate
    from console.models import Base

    migrate(store.engine, console_settings, "0001")
    migrate(store.engine, console_settings)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    # The pg_trgm search index is created by the migration only (the models cannot declare it).
    diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name == "ix_segments_text_trgm")]
    assert diff == []


def test_record_is_idempotent_and_seq_has_no_gaps(store: Store, call_script) -> None:
    script = call_script()
    events = script.full()
    first = [store.record(e) for e in events]
    assert [r.seq if r is not None else None for r in first] == list(range(1, len(events) + 1))
    # Redelivery of every event (as after a crash before commit) adds nothing.
    assert [store.record(e) for e in events] == [None] * len(events)
    with store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CallEvent)) == len(events)
        assert s.scalar(select(func.count()).select_from(Segment)) == 5  # 2 partial revisions + 3 finals
        assert s.scalar(select(func.count()).select_from(SuggestionRow)) == 1
        assert s.scalar(select(func.count()).select_from(Summary)) == 1
    call = store.get_call(script.call_id)
    assert call.last_seq == len(events)
    assert call.duration_s == 12
    assert call.source == "scripted"
    assert [e["seq"] for e in store.events_after(script.call_id, 4)] == list(range(5, len(events) + 1))


def test_a_segment_published_again_under_new_event_ids_is_stored_once(store: Store, call_script) -> None:
    """An ASR worker re-decoding after a takeover publishes the same final with a new event id: the
    call's log keeps both events, the transcript the segment once — in one batch or in two (the
    batch must not fail on the segment's natural key and dead-letter a good event)."""
    script = call_script()
    store.record(script.started())
    seg = script.segment(1, "주차 문의요", t=1)
    again = [seg.model_copy(update={"event_id": f"{seg.event_id}-redecoded-{k}"}) for k in range(2)]
    assert len(store.record_many([seg, again[0]])) == 2  # one batch
    assert store.record(again[1]) is not None  # a later batch
    with store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Segment)) == 1
        assert s.scalar(select(func.count()).select_from(CallEvent)) == 4
    assert [x.text_masked for x in store.final_segments(script.call_id)] == ["주차 문의요"]


def test_text_is_masked_for_display_and_raw_kept_apart(store: Store, call_script) -> None:
    script = call_script()
    for e in script.full():
        store.record(e)
    final = [s for s in store.final_segments(script.call_id) if s.channel == "caller"][0]
    assert "010-1234-5678" not in final.text_masked and "[전화번호]" in final.text_masked
    assert "010-1234-5678" in final.text_raw
    for item in store.events_after(script.call_id, 0):
        assert "010-1234-5678" not in str(item["event"])
    summary = store.summary_for_call(script.call_id)
    assert summary is not None and "[전화번호]" in " ".join(summary.content["key_facts"])


def test_events_before_call_started_are_kept(store: Store, call_script) -> None:
    """Topics are consumed independently: a transcript may arrive before its call_started."""
    script = call_script()
    seg = script.segment(1, "먼저 도착한 문장", t=1)
    assert store.record(seg) is not None
    assert store.record(script.started()) is not None
    call = store.get_call(script.call_id)
    assert call.counselor_id == "kim" and call.last_seq == 2


@pytest.mark.parametrize("clock", AT_ANY_HOUR)
def test_search_filters_and_visibility(store: Store, users, call_script) -> None:
    a = call_script("a", counselor="kim", team="A")
    b = call_script("b", counselor="park", team="B")
    for e in a.full():
        store.record(e)
    for e in b.full(hostile="음식물 쓰레기 수거 요일이 궁금해요"):
        store.record(e)
    kim, park, boss, qa = users["kim"], users["park"], users["boss"], users["qa1"]
    assert [c.call_id for c in store.list_calls(kim)[0]] == [a.call_id]
    assert [c.call_id for c in store.list_calls(boss)[0]] == [a.call_id]
    assert {c.call_id for c in store.list_calls(qa)[0]} >= {a.call_id, b.call_id}
    hits, total = store.list_calls(qa, q="음식물 쓰레기")
    assert [c.call_id for c in hits] == [b.call_id] and total == 1
    assert store.list_calls(park, q="계속 서 있어요")[1] == 0  # only in kim's call
    assert store.list_calls(qa, q="계속 서 있어요")[1] == 1
    hits, _ = store.list_calls(qa, keyword="횡단보도", counselor="kim")
    assert [c.call_id for c in hits] == [a.call_id]
    hits, _ = store.list_calls(
        qa, q="안전신문고", category="주정차", day_from=store.today(), day_to=store.today()
    )
    assert {c.call_id for c in hits} == {a.call_id, b.call_id}
    yesterday = store.today() - timedelta(days=1)
    hits, _ = store.list_calls(qa, day_to=yesterday)
    assert not {c.call_id for c in hits} & {a.call_id, b.call_id}
    assert store.list_calls(qa, q="100%_")[1] == 0  # LIKE wildcards are literal


def test_review_flow_keeps_history(store: Store, users, call_script) -> None:
    script = call_script()
    for e in script.full():
        store.record(e)
    sid = f"{script.call_id}-sum"
    with pytest.raises(Conflict):
        store.review_action(sid, "boss", "approve", None, None)  # not submitted yet
    store.review_action(sid, "kim", "submit", None, None)
    with pytest.raises(Conflict):
        store.review_action(sid, "boss", "reject", "  ", None)  # rejecting needs a comment
    store.review_action(sid, "boss", "reject", "조치 내용을 더 구체적으로", None)
    edited = dict(store.get_summary(sid).content, call_reason="횡단보도 앞 불법 주차 신고 방법 문의")
    store.review_action(sid, "kim", "submit", None, edited)
    sm = store.review_action(sid, "boss", "approve", "좋습니다", None)
    assert sm.status == "approved" and sm.edited
    hist = store.review_history(sid)
    assert [(h["action"], h["actor"]) for h in hist] == [
        ("submit", "kim"),
        ("reject", "boss"),
        ("submit", "kim"),
        ("approve", "boss"),
    ]
    assert hist[1]["comment"] == "조치 내용을 더 구체적으로"


def test_caller_history_shows_only_approved_summaries(store: Store, users, call_script) -> None:
    key = "ab" * 32
    old1 = call_script("o1", caller_key=key)
    old2 = call_script("o2", caller_key=key)
    other = call_script("x", caller_key="cd" * 32)
    now_ = call_script("n", caller_key=key)
    for sc in (old1, old2, other, now_):
        for e in sc.full():
            store.record(e)
    for sc in (old1, other):
        store.review_action(f"{sc.call_id}-sum", "kim", "submit", None, None)
        store.review_action(f"{sc.call_id}-sum", "boss", "approve", None, None)
    store.review_action(f"{old2.call_id}-sum", "kim", "submit", None, None)  # under review: not shown
    hist = store.caller_history(users["kim"], store.get_call(now_.call_id))
    assert [h["call_id"] for h in hist] == [old1.call_id]
    assert hist[0]["summary"]["category"] == "주정차"


def test_caller_history_is_scoped_by_team(store: Store, users, call_script) -> None:
    """The same caller called team B before: team A's counselors and supervisor do not see it;
    a teammate's approved summary is shown; QA sees both; a supervisor without a team, nothing."""
    key = "ef" * 32
    by_park = call_script("b", counselor="park", team="B", caller_key=key)
    by_lee = call_script("l", counselor="lee", team="A", caller_key=key)
    now_ = call_script("n", counselor="kim", team="A", caller_key=key)
    for sc in (by_park, by_lee, now_):
        for e in sc.full():
            store.record(e)
    for sc, boss in ((by_park, "bossb"), (by_lee, "boss")):
        store.review_action(f"{sc.call_id}-sum", sc.counselor, "submit", None, None)
        store.review_action(f"{sc.call_id}-sum", boss, "approve", None, None)
    call = store.get_call(now_.call_id)
    seen = {name: {h["call_id"] for h in store.caller_history(users[name], call)} for name in users}
    assert seen["kim"] == seen["boss"] == {by_lee.call_id}
    assert seen["qa1"] == seen["root"] == {by_lee.call_id, by_park.call_id}
    chief = store.add_user("chief", "x", "supervisor", None)
    assert store.caller_history(chief, call) == []


@pytest.mark.parametrize("clock", AT_ANY_HOUR)
def test_metrics(store: Store, users, call_script) -> None:
    a, b = call_script("a"), call_script("b")
    for sc in (a, b):
        for e in sc.full():
            store.record(e)
    sug = store.get_suggestion(f"{a.call_id}-s1")
    store.add_feedback(sug, "kim", "vote", "down", "근거가 약함")
    store.add_feedback(sug, "kim", "vote", "up", None)  # the last vote counts
    store.add_feedback(store.get_suggestion(f"{b.call_id}-s1"), "kim", "vote", "down", None)
    store.add_feedback(sug, "kim", "copy", None, None)
    store.review_action(f"{a.call_id}-sum", "kim", "submit", None, None)
    store.review_action(f"{a.call_id}-sum", "boss", "approve", None, None)
    store.review_action(f"{b.call_id}-sum", "kim", "submit", None, None)
    m = store.metrics(users["qa1"], store.today())
    assert m["calls"] >= 2
    assert m["thumbs_up"] == 1 and m["thumbs_down"] == 1 and m["thumbs_up_rate"] == 0.5
    assert m["drafts_copied"] == 1 and m["suggestions"] == 2
    assert m["summaries_approved"] == 1 and m["summaries_approved_without_edit"] == 1
    assert m["summaries_pending"] == 1
    assert m["avg_handle_time_s"] == 12.0


def test_batch_with_repeats_and_republished_ids(store: Store, call_script) -> None:
    script = call_script()
    events = script.full()
    # One batch holding every event twice: each stored once, seqs 1..n.
    done = store.record_many(events + events)
    assert [r.seq for r in done] == list(range(1, len(events) + 1))
    # assist republishes the same suggestion and summary under new event ids (e.g. after a takeover).
    sug = events[6].model_copy(update={"event_id": "republished-suggestion"})
    summ = events[9].model_copy(update={"event_id": "republished-summary", "call_reason": "다시 만든 요약"})
    assert store.record_many([sug, summ]) != []
    with store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(SuggestionRow)) == 1
        assert s.scalar(select(func.count()).select_from(Summary)) == 1
    draft = store.summary_for_call(script.call_id)
    assert draft is not None and draft.content["call_reason"] == "다시 만든 요약"  # untouched draft


def test_nul_characters_are_dropped(store: Store, call_script) -> None:
    script = call_script()
    store.record(script.started())
    assert store.record(script.segment(1, "널\x00문자 010-1234-5678", t=1)) is not None
    seg = store.final_segments(script.call_id)[0]
    assert seg.text_raw == "널문자 010-1234-5678" and "\x00" not in seg.text_masked


def test_raw_text_is_erased_after_retention(store: Store, call_script) -> None:
    old = call_script("old", started_at=store.now() - timedelta(days=10))
    new = call_script("new")
    for sc in (old, new):
        store.record(sc.started())
        store.record(sc.segment(1, "제 번호는 010-1234-5678이에요", t=1))
    assert store.purge_raw(store.now() - timedelta(days=7)) == 1
    assert store.final_segments(old.call_id)[0].text_raw == ""
    assert "010-1234-5678" in store.final_segments(new.call_id)[0].text_raw
    assert "[전화번호]" in store.final_segments(old.call_id)[0].text_masked  # the masked text stays
    assert store.purge_raw(store.now() - timedelta(days=7)) == 0


def test_board_shows_ongoing_calls_with_latest_suggestion(store: Store, users, call_script) -> None:
    live = call_script("live")
    done = call_script("done")
    for e in done.full():
        store.record(e)
    store.record(live.started())
    seg = live.segment(1, "질문", t=1)
    store.record(seg)
    store.record(live.suggestion(1, seg.segment_id, 2))
    newer = live.suggestion(2, seg.segment_id, 3)
    store.record(newer)
    rows = store.board(users["boss"])
    assert [r["call_id"] for r in rows] == [live.call_id]
    assert rows[0]["latest_suggestion"] == newer.draft.text and rows[0]["elapsed_s"] >= 0
    assert store.board(users["bossb"]) == []  # another team


@pytest.mark.parametrize("clock", [FrozenClock(datetime(2026, 3, 10, 20, 0, tzinfo=UTC))], ids=["20utc"])
def test_day_boundaries_are_the_sites(store: Store, users, call_script) -> None:
    """At 20:00 UTC it is 05:00 the next day in Seoul: a call at 23:59 Seoul time belongs to the
    day before, one at 00:00 to today, in search and in metrics, on SQLite as on PostgreSQL."""
    late = call_script("late", started_at=datetime(2026, 3, 10, 14, 59, tzinfo=UTC))  # 23:59 KST
    early = call_script("early", started_at=datetime(2026, 3, 10, 15, 0, tzinfo=UTC))  # 00:00 KST
    for sc in (late, early):
        for e in sc.full():
            store.record(e)
    today = store.today()
    assert today == date(2026, 3, 11)
    qa = users["qa1"]
    assert [c.call_id for c in store.list_calls(qa, day_from=today, day_to=today)[0]] == [early.call_id]
    yesterday = today - timedelta(days=1)
    assert [c.call_id for c in store.list_calls(qa, day_from=yesterday, day_to=yesterday)[0]] == [
        late.call_id
    ]
    assert store.metrics(qa, today)["calls"] == 1
    assert store.metrics(qa, yesterday)["calls"] == 1
    # Stored in UTC, read back aware in UTC, whatever the database.
    call = store.get_call(early.call_id)
    assert call.started_at == early.t0 and call.started_at.utcoffset() == timedelta(0)
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            raw = conn.execute(
                text("SELECT started_at FROM calls WHERE call_id = :c"), {"c": early.call_id}
            ).scalar_one()
        assert str(raw).startswith("2026-03-10 15:00:00")


def test_every_recorded_type_has_a_projection_and_a_writer() -> None:
    from console.projection import PROJECTIONS
    from console.store.recording import WRITERS

    assert PROJECTIONS.keys() == WRITERS.keys()
