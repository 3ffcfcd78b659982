"""Issue 14, retention and erasure: ``dasan privacy erase --caller NUMBER`` leaves no trace of the
caller in any table (every column of every table is scanned for the number, the caller key and the
erased calls' ids); the recorder does not bring an erased call back from Kafka; one retention job
empties every table past its retention. Both databases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from console.retention import run_retention
from console.store import Actor, Store
from streaming.callers import caller_key
from tests.console.conftest import MovingClock, csrf_of, login, run_dasan

SECRET = "erase-test-caller-key-secret"
NUMBER = "010-2345-6789"
TRACES_OF_NUMBER = ("010-2345-6789", "01023456789", "2345-6789", "23456789")


def _cli(monkeypatch: pytest.MonkeyPatch, settings: Any, *argv: str) -> str:
    monkeypatch.setenv("DASAN_ASR_CALLER_KEY_SECRET", SECRET)
    return run_dasan(monkeypatch, settings, *argv)


def _every_value(store: Store, schema: str | None) -> list[tuple[str, str, str]]:
    """(table, column, value as text) of every column of every table in the database."""
    md = MetaData()
    md.reflect(store.engine, schema=schema)
    out = []
    with store.engine.connect() as conn:
        for table in md.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for col, value in row.items():
                    if value is None:
                        continue
                    text_ = (
                        json.dumps(value, ensure_ascii=False)
                        if isinstance(value, dict | list)
                        else str(value)
                    )
                    out.append((table.name, col, text_))
    return out


def _traces(store: Store, schema: str | None, needles: list[str]) -> list[tuple[str, str, str]]:
    return [(t, c, n) for t, c, v in _every_value(store, schema) for n in needles if n in v]


def _caller_calls(store: Store, call_script: Any, client_factory: Any) -> tuple[list[Any], Any]:
    key = caller_key(NUMBER, SECRET)
    mine = [call_script(s, counselor=c, team="A", caller_key=key) for s, c in (("a", "kim"), ("b", "lee"))]
    other = call_script("o", counselor="kim", team="A", caller_key=caller_key("010-9999-0000", SECRET))
    said = f"제 번호는 {NUMBER}이에요. 다시 말씀드리면 01023456789요"
    for sc in mine:
        for e in sc.full(hostile=said):
            store.record(e)
    for e in other.full():
        store.record(e)
    kim = client_factory()
    login(kim, "kim")
    token = csrf_of(kim)
    for sc in mine:
        kim.post(
            f"/api/suggestions/{sc.call_id}-s1/feedback",
            json={"vote": "down", "reason": "번호 010-2345-6789 안내가 빠짐"},
            headers={"X-CSRF-Token": token},
        )
        store.review_action(f"{sc.call_id}-sum", sc.counselor, "submit", None, None)
        store.review_action(f"{sc.call_id}-sum", "boss", "reject", f"{sc.call_id} 재작성 필요", None)
    kim.get(f"/api/calls/{mine[0].call_id}/history")  # names the other call of the caller in its detail
    with kim.websocket_connect(f"/ws/calls/{mine[0].call_id}") as ws:
        ws.receive_json()
    qa = client_factory()
    login(qa, "qa1")
    qa.get("/api/calls", params={"q": NUMBER})
    qa.post(f"/api/calls/{mine[1].call_id}/transcript/raw", json={}, headers={"X-CSRF-Token": csrf_of(qa)})
    return mine, other


def test_erase_caller_leaves_no_trace_in_any_table(
    store: Store, users, call_script, client_factory, console_settings, monkeypatch
) -> None:
    mine, other = _caller_calls(store, call_script, client_factory)
    key = caller_key(NUMBER, SECRET)
    assert key is not None
    ids = [sc.call_id for sc in mine]
    schema = console_settings.db_schema
    assert _traces(store, schema, [key, *ids, *TRACES_OF_NUMBER])  # the scan does find them before
    dry = _cli(monkeypatch, console_settings, "privacy", "erase", "--caller", NUMBER, "--dry-run", "--json")
    assert json.loads(dry)["removed"]["calls"] == 2 and store.get_call(ids[0])
    out = _cli(monkeypatch, console_settings, "privacy", "erase", "--caller", "+82 10 2345 6789")
    assert _traces(store, schema, [key, *ids, *TRACES_OF_NUMBER]) == []
    # The other caller's call is untouched.
    assert store.get_call(other.call_id).caller_key == caller_key("010-9999-0000", SECRET)
    assert store.final_segments(other.call_id)
    # What it removed, and what Kafka keeps until when.
    assert "calls" in out and "segments" in out and "summary_reviews" in out
    assert "call.transcripts" in out and "call.audio" in out and "call.events.dlq" in out
    # Who read those calls stays on record, under the erasure's id.
    erasure = store.audit_page(action="erase")[0][0]
    eid = erasure["detail"].split("erasure=")[1].split()[0]
    assert erasure["target"] == "caller" and erasure["role"] == "cli"
    assert ("live_stream", f"erased:{eid}") in [
        (e["action"], e["call_id"]) for e in store.audit_entries(limit=500)
    ]
    # A replay of the topics (a new consumer group) does not record the erased calls again.
    assert store.record_many(mine[0].full()) == []
    with pytest.raises(Exception):  # noqa: B017 (NotFound)
        store.get_call(ids[0])


def test_erase_one_call(
    store: Store, users, call_script, client_factory, console_settings, monkeypatch
) -> None:
    mine, other = _caller_calls(store, call_script, client_factory)
    out = _cli(monkeypatch, console_settings, "privacy", "erase", "--call", mine[0].call_id, "--json")
    report = json.loads(out)
    assert report["calls"] == [mine[0].call_id] and report["removed"]["segments"] == 5
    assert {r["topic"] for r in report["kafka"]} >= {"call.events", "call.transcripts", "assist.suggestions"}
    assert _traces(store, console_settings.db_schema, [mine[0].call_id]) == []
    assert store.get_call(mine[1].call_id) and store.get_call(other.call_id)


@pytest.mark.parametrize("clock", [MovingClock()], ids=["moving-clock"])
def test_one_retention_job_for_every_table(
    store: Store, users, call_script, console_settings, clock: MovingClock, monkeypatch
) -> None:
    from sqlalchemy import func

    from console.models import AuditLog, Call, CallEvent, Feedback, Segment, SessionRecord, Summary

    sc = call_script("r", caller_key="b2" * 32)
    for e in sc.full():
        store.record(e)
    store.add_feedback(store.get_suggestion(f"{sc.call_id}-s1"), "kim", "vote", "up", "좋음")
    store.audit(Actor("kim", "counselor"), "call_view", sc.call_id)
    store.create_session("h" * 64, users["kim"].id, "csrf", 3600, None, None)
    s = console_settings

    def count(model: Any, *where: Any) -> int:
        with store.sessions() as db:
            return db.scalar(select(func.count()).select_from(model).where(*where)) or 0

    clock.advance(days=s.raw_retention_days + 1)
    run_retention(store, s)
    assert store.final_segments(sc.call_id)[0].text_raw == "" and count(SessionRecord) == 0
    clock.advance(days=s.transcript_retention_days)
    run_retention(store, s)
    assert count(Segment) == count(CallEvent) == count(Feedback) == 0
    assert count(Summary) == 1 and store.get_call(sc.call_id).caller_key is not None
    clock.advance(days=s.caller_key_retention_days)
    run_retention(store, s)
    assert store.get_call(sc.call_id).caller_key is None and count(Summary) == 1
    clock.advance(days=s.audit_retention_days)
    assert run_retention(store, s)["audit_log"] >= 1
    assert count(AuditLog, AuditLog.action == "call_view") == 0
    clock.advance(days=s.call_record_retention_days)
    run_retention(store, s)
    assert count(Call) == 0 and count(Summary) == 0
    # Every run that deleted something is on record.
    assert store.audit_page(action="retention")[0]
    # The command runs the same job (on the real clock: nothing of this test is old enough there).
    counts = json.loads(_cli(monkeypatch, s, "privacy", "retention", "--json"))
    assert set(counts) >= {
        "segments.text_raw",
        "segments",
        "feedback",
        "calls.caller_key",
        "calls",
        "audit_log",
        "sessions",
    }
