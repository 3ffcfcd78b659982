"""The web app through HTTP: log-in, roles on every API, CSRF, masking/raw text with audit,
hostile transcript text rendered inert, review and feedback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console.store import Store
from tests.console.conftest import PASSWORD, FrozenClock, csrf_of, form_token, login

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&lt;/textarea&gt;'


@pytest.fixture()
def recorded(store: Store, users, call_script):
    """kim's call (team A) and park's call (team B), both ended with a summary."""
    a = call_script("a", counselor="kim", team="A")
    b = call_script("b", counselor="park", team="B")
    for e in a.full(hostile=HOSTILE + " 010-1234-5678"):
        store.record(e)
    for e in b.full():
        store.record(e)
    return a, b


def test_login_required_and_bad_password(client_factory, users) -> None:
    c = client_factory()
    r = c.get("/desk", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert c.get("/api/calls").status_code == 401
    token = form_token(c.get("/login").text)
    r = c.post("/login", data={"username": "kim", "password": "wrong-password", "csrf_token": token})
    assert r.status_code == 401 and "맞지 않습니다" in r.text
    r = c.post("/login", data={"username": "nobody", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 401


def test_login_form_needs_csrf(client_factory, users) -> None:
    c = client_factory()
    c.get("/login")
    r = c.post("/login", data={"username": "kim", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    r = c.post("/login", data={"username": "kim", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403


def test_session_cookie_flags(client_factory, users) -> None:
    c = client_factory()
    r = c.get("/login")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_role_home_pages(client_factory, users) -> None:
    for name, home in (("kim", "/desk"), ("boss", "/board"), ("qa1", "/search"), ("root", "/admin/users")):
        c = client_factory()
        login(c, name)
        r = c.get("/", follow_redirects=False)
        assert r.headers["location"] == home
        assert c.get(home).status_code == 200


def test_counselor_sees_only_own_calls(client_factory, recorded) -> None:
    a, b = recorded
    c = client_factory()
    login(c, "kim")
    ids = [x["call_id"] for x in c.get("/api/calls").json()["items"]]
    assert ids == [a.call_id]
    for path in (
        f"/api/calls/{b.call_id}",
        f"/api/calls/{b.call_id}/events",
        f"/api/calls/{b.call_id}/transcript",
        f"/api/calls/{b.call_id}/summary",
        f"/api/calls/{b.call_id}/history",
        f"/api/calls/{b.call_id}/feedback",
        f"/api/summaries/{b.call_id}-sum",
        f"/calls/{b.call_id}",
        f"/calls/{b.call_id}/replay",
    ):
        assert c.get(path).status_code == 403, path
    assert c.get(f"/api/calls/{a.call_id}/events").status_code == 200
    # Counselors have no board, review queue, metrics or user admin.
    for path in ("/api/board", "/api/reviews", "/api/metrics", "/api/users", "/board", "/reviews", "/stats"):
        assert c.get(path).status_code == 403, path
    assert c.get("/api/calls/nope").status_code == 404


def test_counselor_cannot_read_summary_under_review(client_factory, recorded) -> None:
    a, _ = recorded
    kim = client_factory()
    login(kim, "kim")
    token = csrf_of(kim)
    sid = f"{a.call_id}-sum"
    assert kim.get(f"/api/summaries/{sid}").json()["status"] == "draft"
    r = kim.post(f"/api/summaries/{sid}/submit", json={}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    assert kim.get(f"/api/summaries/{sid}").status_code == 403
    assert kim.get(f"/api/summaries/{sid}/history").status_code == 403
    assert kim.get(f"/api/calls/{a.call_id}/summary").status_code == 403
    assert kim.get(f"/reviews/{sid}").status_code == 403
    # Another counselor of the same team cannot see the call at all.
    lee = client_factory()
    login(lee, "lee")
    assert lee.get(f"/api/calls/{a.call_id}").status_code == 403


def test_supervisor_sees_team_and_reviews_with_csrf(client_factory, recorded) -> None:
    a, b = recorded
    kim = client_factory()
    login(kim, "kim")
    kim.post(f"/api/summaries/{a.call_id}-sum/submit", json={}, headers={"X-CSRF-Token": csrf_of(kim)})
    boss = client_factory()
    login(boss, "boss")
    assert boss.get(f"/api/calls/{b.call_id}").status_code == 403  # team B
    queue = boss.get("/api/reviews").json()
    assert [i["summary"]["summary_id"] for i in queue["items"]] == [f"{a.call_id}-sum"]
    sid = f"{a.call_id}-sum"
    # The form without (or with a wrong) CSRF token is refused.
    r = boss.post(f"/reviews/{sid}", data={"action": "approve"})
    assert r.status_code == 403
    r = boss.post(f"/api/summaries/{sid}/review", json={"action": "approve"})
    assert r.status_code == 403
    page = boss.get(f"/reviews/{sid}").text
    token = form_token(page)
    r = boss.post(
        f"/reviews/{sid}",
        data={
            "csrf_token": token,
            "action": "edit",
            "category": "주정차",
            "call_reason": "횡단보도 불법 주차 신고 방법 문의",
            "key_facts": "횡단보도 앞\n상습 주차",
            "counselor_answers": "안전신문고 안내",
            "actions": "안내: 안전신문고 신고 방법",
            "comment": "사유를 더 구체적으로 고침",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    sm = boss.get(f"/api/summaries/{sid}").json()
    assert (
        sm["status"] == "approved"
        and sm["edited"]
        and sm["content"]["key_facts"] == ["횡단보도 앞", "상습 주차"]
    )
    hist = boss.get(f"/api/summaries/{sid}/history").json()
    assert [(h["action"], h["actor"]) for h in hist] == [("submit", "kim"), ("edit", "boss")]
    # Approved: the counselor may read it again; a second decision is a conflict.
    assert kim.get(f"/api/summaries/{sid}").status_code == 200
    r = boss.post(f"/api/summaries/{sid}/review", json={"action": "approve"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 409
    # QA reads the queue but cannot decide.
    qa = client_factory()
    login(qa, "qa1")
    assert qa.get("/api/reviews?status=approved").json()["total"] >= 1
    r = qa.post(
        f"/api/summaries/{sid}/review", json={"action": "approve"}, headers={"X-CSRF-Token": csrf_of(qa)}
    )
    assert r.status_code == 403


def test_feedback_and_copy(client_factory, recorded, store: Store) -> None:
    a, b = recorded
    kim = client_factory()
    login(kim, "kim")
    token = csrf_of(kim)
    url = f"/api/suggestions/{a.call_id}-s1/feedback"
    assert kim.post(url, json={"vote": "down"}).status_code == 403  # no CSRF header
    r = kim.post(url, json={"vote": "down", "reason": "조문이 맞지 않음"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json()["value"] == "down"
    r = kim.post(f"/api/suggestions/{a.call_id}-s1/copied", json={}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    r = kim.post(
        f"/api/suggestions/{b.call_id}-s1/feedback", json={"vote": "up"}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 403
    assert kim.post(url, json={"vote": "maybe"}, headers={"X-CSRF-Token": token}).status_code == 422
    fb = kim.get(f"/api/calls/{a.call_id}/feedback").json()
    assert {(f["kind"], f["value"]) for f in fb} == {("vote", "down"), ("copy", None)}


def test_raw_text_only_for_allowed_role_and_audited(client_factory, recorded, store: Store) -> None:
    a, _ = recorded
    boss = client_factory()
    login(boss, "boss")
    masked = boss.get(f"/api/calls/{a.call_id}/transcript").json()
    assert all("010-1234-5678" not in s["text"] for s in masked)
    raw_url = f"/api/calls/{a.call_id}/transcript/raw"
    assert boss.post(raw_url, json={}, headers={"X-CSRF-Token": csrf_of(boss)}).status_code == 403
    qa = client_factory()
    login(qa, "qa1")
    assert qa.get(f"/api/calls/{a.call_id}/transcript?raw=true").status_code == 405  # not by GET
    assert qa.post(raw_url, json={}).status_code == 403  # no CSRF token
    r = qa.post(raw_url, json={}, headers={"X-CSRF-Token": csrf_of(qa)})
    assert any("010-1234-5678" in s["text"] for s in r.json())
    assert r.headers["cache-control"] == "no-store"
    entries = store.audit_entries(a.call_id)
    raw_reads = [(e["username"], e["action"]) for e in entries if e["action"] == "raw_transcript"]
    assert raw_reads == [("qa1", "raw_transcript")]


def test_hostile_text_is_escaped_in_pages(client_factory, recorded) -> None:
    a, _ = recorded
    kim = client_factory()
    login(kim, "kim")
    kim.post(f"/api/summaries/{a.call_id}-sum/submit", json={}, headers={"X-CSRF-Token": csrf_of(kim)})
    boss = client_factory()
    login(boss, "boss")
    html = boss.get(f"/reviews/{a.call_id}-sum").text
    assert "&lt;script&gt;alert(" in html
    assert "<script>alert(" not in html and "<img src=x" not in html
    # Pages forbid inline script execution anyway.
    csp = boss.get("/board").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_article_lookup_and_search_page(client_factory, recorded) -> None:
    qa = client_factory()
    login(qa, "qa1")
    art = qa.get("/api/articles", params={"id": "도로교통법/제32조"}).json()
    assert (
        art["citation"].startswith("「도로교통법」 제32조")
        and art["effective_date"]
        and "주차" in art["text"]
    )
    assert qa.get("/api/articles", params={"id": "없는법/제1조"}).status_code == 404
    html = qa.get("/search", params={"q": "안전신문고"}).text
    a, b = recorded
    assert a.call_id in html and b.call_id in html
    page = qa.get("/api/calls", params={"limit": 1, "offset": 1}).json()
    assert page["total"] >= 2 and len(page["items"]) == 1 and page["offset"] == 1
    assert qa.get("/api/calls", params={"limit": 0}).status_code == 422
    assert qa.get(f"/calls/{a.call_id}/replay").status_code == 200
    assert qa.get("/stats").status_code == 200


def test_admin_creates_users(client_factory, users) -> None:
    root = client_factory()
    login(root, "root")
    token = csrf_of(root, "/admin/users")
    r = root.post(
        "/api/users",
        json={"username": "choi", "role": "counselor", "team": "A"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 201 and len(r.json()["password"]) >= 12
    new = client_factory()
    login(new, "choi", r.json()["password"])
    assert new.get("/api/me").json()["role"] == "counselor"
    r = root.post("/api/users", json={"username": "choi", "role": "qa"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 409
    boss = client_factory()
    login(boss, "boss")
    assert boss.get("/api/users").status_code == 403


def test_openapi_and_ops(client_factory, users) -> None:
    c = client_factory()
    assert c.get("/healthz").json()["status"] == "ok"
    r = c.get("/readyz")
    assert r.json()["checks"]["database"] == "ok"
    # The API description and the metrics need an admin or QA log-in (tests/security has the rest).
    assert c.get("/openapi.json", follow_redirects=False).status_code == 303  # to the log-in page
    login(c, "qa1")
    spec = c.get("/openapi.json").json()
    assert "/api/calls" in spec["paths"] and "/api/summaries/{summary_id}/review" in spec["paths"]
    assert "dasan_console_ws_clients" in c.get("/metrics").text


@pytest.mark.parametrize("clock", [FrozenClock(datetime(2026, 3, 10, 20, 0, tzinfo=UTC))], ids=["20utc"])
def test_today_is_the_sites_day(client_factory, store: Store, users, call_script) -> None:
    """At 20:00 UTC the console's "today" is already the next day in Seoul (frozen clock)."""
    for e in call_script("now").full():  # started at the clock's instant: 05:00 KST on 2026-03-11
        store.record(e)
    qa = client_factory()
    login(qa, "qa1")
    m = qa.get("/api/metrics").json()
    assert m["day"] == "2026-03-11" and m["calls"] == 1
    assert qa.get("/api/metrics", params={"day": "2026-03-10"}).json()["calls"] == 0
    assert (
        qa.get("/api/calls", params={"day_from": "2026-03-11", "day_to": "2026-03-11"}).json()["total"] == 1
    )
    assert qa.get("/api/calls", params={"day_to": "2026-03-10"}).json()["total"] == 0


def test_regulation_search_roles_and_an_absent_assist_service(
    client_factory, users, console_settings, caplog
) -> None:
    """Counselors, supervisors and QA may search; admins may not. With no assist service on the
    configured internal URL the search says so (503), and nothing typed reaches a log."""
    console_settings.assist_url = "http://127.0.0.1:9"  # discard port: nothing listens
    root = client_factory()
    login(root, "root")
    assert root.get("/api/search", params={"q": "대형폐기물"}).status_code == 403
    for name in ("kim", "boss", "qa1"):
        c = client_factory()
        login(c, name)
        r = c.get("/api/search", params={"q": "홍길동 010-1234-5678 대형폐기물"})
        assert r.status_code == 503 and "규정 검색" in r.json()["detail"], name
        assert c.get("/api/kb").json() == {"index_key": None, "records": None, "available": False}
    assert "010-1234-5678" not in caplog.text and "홍길동" not in caplog.text
