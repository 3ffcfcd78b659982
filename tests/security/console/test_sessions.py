"""Issue 14, sessions: server-side records that log-out, revocation, deactivation, a password
change, the idle timeout and the absolute lifetime all end, on HTTP and on open websockets.

Each test fails on the stateless signed cookie the console had before: a copied cookie kept
working after log-out, nothing could revoke it, and open websockets never looked again."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from console.app import create_app
from console.auth import authenticate
from console.store import Store
from tests.console.conftest import PASSWORD, MovingClock, csrf_of, login, run_dasan


def _client(settings: Any, store: Store, **overrides: Any) -> TestClient:
    app = create_app(settings.model_copy(update=overrides), with_recorder=False, store=store)
    c = TestClient(app, base_url="http://testserver")
    c.__enter__()
    return c


def _cookie_payload(client: TestClient) -> dict[str, Any]:
    """What the browser holds: Starlette's signed cookie is base64 JSON, then the signature."""
    raw = client.cookies["dasan_session"].split(".")[0]
    return json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)))


def _wait_close(ws: Any, limit: int = 400) -> int:
    """Read messages (heartbeats) until the server closes the socket; its close code."""
    for _ in range(limit):
        try:
            ws.receive_json()
        except WebSocketDisconnect as exc:
            return exc.code
    raise AssertionError("the server never closed the socket")


def test_cookie_carries_only_a_random_session_id(client_factory, users, store: Store) -> None:
    c = client_factory()
    login(c, "kim")
    payload = _cookie_payload(c)
    assert set(payload) == {"sid"} and len(payload["sid"]) >= 40
    assert "uid" not in payload and "csrf" not in payload


def test_logout_ends_the_session_on_the_server(client_factory, users) -> None:
    c = client_factory()
    login(c, "kim")
    stolen = dict(c.cookies)  # e.g. copied from the browser before log-out
    assert c.post("/logout", data={"csrf_token": csrf_of(c)}, follow_redirects=False).status_code == 303
    thief = client_factory()
    thief.cookies.update(stolen)
    assert thief.get("/api/me").status_code == 401


def test_revoked_session_refused_on_http_and_websocket(
    console_settings, users, store: Store, call_script
) -> None:
    script = call_script(counselor="kim", team="A")
    store.record(script.started())
    kim = _client(console_settings, store, ws_session_check_s=0.2)
    login(kim, "kim")
    other_device = _client(console_settings, store)
    login(other_device, "kim")
    assert kim.get("/api/me").status_code == 200
    with kim.websocket_connect(f"/ws/calls/{script.call_id}") as ws:
        assert ws.receive_json()["type"] in ("events", "status")
        # An administrator ends kim's sessions (audited).
        root = _client(console_settings, store)
        login(root, "root")
        r = root.delete("/api/users/kim/sessions", headers={"X-CSRF-Token": csrf_of(root, "/admin/users")})
        assert r.status_code == 200 and r.json()["sessions_ended"] == 2
        assert _wait_close(ws) == 1008  # policy violation: the page sends the user to log in
    assert kim.get("/api/me").status_code == 401
    assert other_device.get("/api/me").status_code == 401
    with (
        pytest.raises(WebSocketDisconnect) as exc,
        kim.websocket_connect(f"/ws/calls/{script.call_id}") as ws,
    ):
        ws.receive_json()
    assert exc.value.code == 4401  # a resume is a new handshake: checked again
    actions = [(e["action"], e["target"]) for e in store.audit_entries() if e["username"] == "root"]
    assert ("user_sessions_revoke", "kim") in actions


def test_deactivated_user_refused_everywhere(
    console_settings, users, store: Store, call_script, monkeypatch
) -> None:
    script = call_script(counselor="kim", team="A")
    store.record(script.started())
    kim = _client(console_settings, store, ws_session_check_s=0.2)
    login(kim, "kim")
    with kim.websocket_connect(f"/ws/calls/{script.call_id}") as ws:
        ws.receive_json()
        run_dasan(monkeypatch, console_settings, "users", "deactivate", "kim")
        assert _wait_close(ws) == 1008
    assert kim.get("/api/me").status_code == 401
    # Cannot log in again, and `--reset` does not silently re-activate.
    assert authenticate(store, "kim", PASSWORD).reason == "inactive"
    run_dasan(
        monkeypatch, console_settings, "users", "add", "kim", "--role", "counselor", "--team", "A", "--reset"
    )
    assert (user := store.user_by_name("kim")) is not None and user.active is False
    run_dasan(monkeypatch, console_settings, "users", "activate", "kim")
    assert (user := store.user_by_name("kim")) is not None and user.active is True
    cli_rows = [(e["action"], e["target"], e["role"]) for e in store.audit_entries() if e["role"] == "cli"]
    assert ("user_deactivate", "kim", "cli") in cli_rows and ("user_activate", "kim", "cli") in cli_rows


def test_admin_deactivates_in_the_users_page(client_factory, users, store: Store) -> None:
    kim = client_factory()
    login(kim, "kim")
    root = client_factory()
    login(root, "root")
    token = csrf_of(root, "/admin/users")
    r = root.post("/admin/users/kim/deactivate", data={"csrf_token": token})
    assert r.status_code == 200 and "중지했습니다" in r.text
    assert kim.get("/api/me").status_code == 401
    assert root.post("/api/users/root/deactivate", headers={"X-CSRF-Token": token}).status_code == 409
    entry = store.audit_page(action="user_deactivate")[0][0]
    assert (entry["username"], entry["target"], entry["ip"]) == ("root", "kim", "testclient")


def test_password_change_ends_sessions(
    client_factory, users, store: Store, console_settings, monkeypatch
) -> None:
    kim = client_factory()
    login(kim, "kim")
    out = run_dasan(monkeypatch, console_settings, "users", "passwd", "kim")
    assert "1 session(s) ended" in out
    new_password = out.split("password: ")[1].strip()
    assert kim.get("/api/me").status_code == 401
    again = client_factory()
    login(again, "kim", new_password)
    # The admin API does the same and shows the generated password once, never cached.
    root = client_factory()
    login(root, "root")
    r = root.post("/api/users/kim/password", headers={"X-CSRF-Token": csrf_of(root, "/admin/users")})
    assert r.status_code == 200 and len(r.json()["password"]) >= 12
    assert r.headers["cache-control"] == "no-store"
    assert again.get("/api/me").status_code == 401
    page = root.post("/admin/users/lee/password", data={"csrf_token": csrf_of(root, "/admin/users")})
    assert "비밀번호" in page.text and page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("clock", [MovingClock()], ids=["moving-clock"])
def test_idle_timeout_and_absolute_lifetime(
    console_settings, users, store: Store, clock: MovingClock
) -> None:
    c = _client(console_settings, store, session_idle_s=1800, session_max_age_s=3600 * 10)
    login(c, "kim")
    clock.advance(minutes=29)
    assert c.get("/api/me").status_code == 200  # used: the idle timer starts again
    clock.advance(minutes=31)
    assert c.get("/api/me").status_code == 401  # idle for 31 minutes
    login(c, "kim")
    for _ in range(21):  # busy all day, a request every 29 minutes...
        clock.advance(minutes=29)
        c.get("/api/me")
    assert c.get("/api/me").status_code == 401  # ...but a session ends 10 hours after log-in
    with store.sessions() as db:
        from sqlalchemy import func, select

        from console.models import SessionRecord

        assert db.scalar(select(func.count()).select_from(SessionRecord)) == 0  # ended rows are deleted


def test_live_sockets_per_user_are_capped(console_settings, users, store: Store, call_script) -> None:
    script = call_script(counselor="kim", team="A")
    store.record(script.started())
    kim = _client(console_settings, store, ws_max_per_user=2)
    login(kim, "kim")
    with (
        kim.websocket_connect(f"/ws/calls/{script.call_id}") as a,
        kim.websocket_connect(f"/ws/calls/{script.call_id}") as b,
    ):
        a.receive_json()
        b.receive_json()
        with (
            pytest.raises(WebSocketDisconnect) as exc,
            kim.websocket_connect(f"/ws/calls/{script.call_id}") as c,
        ):
            c.receive_json()
        assert exc.value.code == 4429
        boss = TestClient(kim.app, base_url="http://testserver")  # the same app: another browser
        boss.__enter__()
        login(boss, "boss")  # another user is not affected
        with boss.websocket_connect(f"/ws/calls/{script.call_id}") as d:
            assert d.receive_json()["type"] in ("events", "status")
    with kim.websocket_connect(f"/ws/calls/{script.call_id}") as again:  # closed ones are given back
        assert again.receive_json()["type"] in ("events", "status")
