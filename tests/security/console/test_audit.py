"""Issue 14, audit: every read of call content, every search, caller-history read, live stream,
raw-text read and administrative action leaves a row (who, what, which call or target, when, from
where); the log is read a page at a time with filters; the database refuses to rewrite it.

Before, only raw-text reads were audited and ``/api/audit`` returned a fixed 100 rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from console.models import AuditLog
from console.store import Actor, Store
from tests.console.conftest import csrf_of, login


@pytest.fixture()
def recorded(store: Store, users, call_script) -> Any:
    """kim's ended call with an approved summary, and an earlier call of the same caller."""
    key = "a1" * 32
    earlier = call_script("e", counselor="lee", team="A", caller_key=key)
    now_ = call_script("n", counselor="kim", team="A", caller_key=key)
    for sc in (earlier, now_):
        for e in sc.full():
            store.record(e)
    store.review_action(f"{earlier.call_id}-sum", "lee", "submit", None, None)
    store.review_action(f"{earlier.call_id}-sum", "boss", "approve", None, None)
    store.review_action(f"{now_.call_id}-sum", "kim", "submit", None, None)
    return now_, earlier


def _rows(store: Store, username: str) -> list[tuple[str, str | None]]:
    return [(e["action"], e["call_id"]) for e in store.audit_page(username=username, limit=500)[0]]


def test_every_kind_of_read_is_audited(client_factory, recorded, store: Store) -> None:
    now_, earlier = recorded
    cid = now_.call_id
    qa = client_factory()
    login(qa, "qa1")
    reads = {
        f"/api/calls/{cid}": "call_view",
        f"/calls/{cid}": "call_view",
        f"/calls/{cid}/replay": "call_view",
        f"/api/calls/{cid}/events": "call_events",
        f"/api/calls/{cid}/transcript": "transcript",
        f"/api/calls/{cid}/summary": "summary_view",
        f"/api/summaries/{cid}-sum": "summary_view",
        f"/api/summaries/{cid}-sum/history": "summary_view",
        f"/reviews/{cid}-sum": "review_view",
        f"/api/calls/{cid}/feedback": "feedback_view",
        f"/api/calls/{cid}/history": "caller_history",
    }
    for path in reads:
        assert qa.get(path).status_code == 200, path
    r = qa.post(f"/api/calls/{cid}/transcript/raw", json={}, headers={"X-CSRF-Token": csrf_of(qa, "/stats")})
    assert r.status_code == 200
    with qa.websocket_connect(f"/ws/calls/{cid}") as ws:
        ws.receive_json()
    assert qa.get("/api/calls", params={"q": "010-1234-5678"}).status_code == 200
    assert qa.get("/search", params={"keyword": "불법주차"}).status_code == 200
    assert qa.get("/api/reviews", params={"status": "approved"}).status_code == 200
    rows = _rows(store, "qa1")
    for path, action in reads.items():
        assert (action, cid) in rows, path
    for action in ("raw_transcript", "live_stream"):
        assert (action, cid) in rows
    searches = [e for e in store.audit_page(username="qa1", action="search")[0]]
    assert len(searches) == 3
    # A number searched for is personal data: the audit row says a number was searched, not which.
    targets = " ".join(e["target"] for e in searches)
    assert "010-1234-5678" not in targets and "[전화번호]" in targets
    # Who, what, which call, when, from where.
    e = store.audit_page(username="qa1", action="caller_history")[0][0]
    assert e["role"] == "qa" and e["ip"] == "testclient" and e["at"] and earlier.call_id in e["detail"]


def test_counselor_reads_are_audited_too(client_factory, recorded, store: Store) -> None:
    now_, _ = recorded
    kim = client_factory()
    login(kim, "kim")
    kim.get(f"/api/calls/{now_.call_id}/history")
    with kim.websocket_connect(f"/ws/calls/{now_.call_id}") as ws:
        ws.receive_json()
    assert {("caller_history", now_.call_id), ("live_stream", now_.call_id), ("login", None)} <= set(
        _rows(store, "kim")
    )


def test_admin_actions_and_log_ins_are_audited(client_factory, users, store: Store) -> None:
    root = client_factory()
    login(root, "root")
    token = csrf_of(root, "/admin/users")
    root.post(
        "/api/users",
        json={"username": "choi", "role": "counselor", "team": "A"},
        headers={"X-CSRF-Token": token},
    )
    root.post("/api/users/choi/deactivate", headers={"X-CSRF-Token": token})
    root.post("/api/users/choi/activate", headers={"X-CSRF-Token": token})
    root.post(
        "/api/users/choi/password", json={"password": "a-new-password-123"}, headers={"X-CSRF-Token": token}
    )
    root.delete("/api/users/choi/sessions", headers={"X-CSRF-Token": token})
    root.post("/admin/users", data={"csrf_token": token, "username": "han", "role": "qa"})
    root.post("/logout", data={"csrf_token": token})
    mine = [(e["action"], e["target"]) for e in store.audit_page(username="root", limit=50)[0]]
    for action, target in (
        ("user_create", "choi"),
        ("user_deactivate", "choi"),
        ("user_activate", "choi"),
        ("user_password", "choi"),
        ("user_sessions_revoke", "choi"),
        ("user_create", "han"),
        ("login", None),
        ("logout", None),
    ):
        assert (action, target) in mine


def test_audit_api_is_paginated_and_filtered(client_factory, users, store: Store) -> None:
    kim = Actor("kim", "counselor", "10.0.0.1")
    for i in range(7):
        store.audit(kim, "call_view", f"c-page-{i}")
    store.audit(Actor("lee", "counselor"), "search", target="q=x")
    root = client_factory()
    login(root, "root")
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        params: dict[str, Any] = {"user": "kim", "action": "call_view", "limit": 3}
        if before:
            params["before"] = before
        page = root.get("/api/audit", params=params).json()
        seen += [e["call_id"] for e in page["items"]]
        pages += 1
        before = page["next_before"]
        if before is None:
            break
    assert pages == 3 and seen == [f"c-page-{i}" for i in reversed(range(7))]
    assert all(e["username"] == "kim" for e in root.get("/api/audit", params={"user": "kim"}).json()["items"])
    day = store.today().isoformat()
    assert root.get("/api/audit", params={"day_from": day, "day_to": day, "limit": 500}).json()["items"]
    assert root.get("/api/audit", params={"day_to": "2000-01-01"}).json()["items"] == []
    assert root.get("/api/audit", params={"action": "no-such-action"}).status_code == 422
    # Reading the audit log is audited, and only admins may.
    assert ("audit_read", None) in _rows(store, "root")
    qa = client_factory()
    login(qa, "qa1")
    assert qa.get("/api/audit").status_code == 403


def test_audit_log_is_append_only_in_the_database(store: Store) -> None:
    store.audit(Actor("kim", "counselor"), "call_view", "c-x")
    refused = (IntegrityError, DBAPIError)
    for stmt in (
        update(AuditLog).values(username="someone-else"),
        delete(AuditLog),
    ):
        with pytest.raises(refused, match="append-only"), store.sessions.begin() as db:
            db.execute(stmt)
    if store.engine.dialect.name == "postgresql":
        with pytest.raises(refused, match="append-only"), store.sessions.begin() as db:
            db.execute(text("TRUNCATE audit_log"))
    assert store.audit_entries("c-x")[0]["username"] == "kim"
    # Only inside the retention / erasure transaction.
    with store.unlocked_audit("retention") as db:
        db.execute(delete(AuditLog).where(AuditLog.call_id == "c-x"))
    assert store.audit_entries("c-x") == []
    store.audit(Actor("kim", "counselor"), "call_view", "c-y")
    with pytest.raises(refused, match="append-only"), store.sessions.begin() as db:
        db.execute(delete(AuditLog))  # locked again afterwards (row triggers: a row must be there)
