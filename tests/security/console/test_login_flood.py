"""Issue 14, log-in: ~40 parallel ``POST /login`` used to fill the thread pool with argon2 hashes
(64 MiB each) and stall everyone. Now they are throttled per address and per user name before any
hash, the hashes run in a bounded pool, and a user already logged in keeps working. Counted, not
timed: how many answers were 429, how many hashes ran, how many ran at once."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import httpx

from console.app import create_app
from console.store import Store
from tests.console.conftest import PASSWORD, LiveServer, form_token, login, session_cookie

FLOOD = 40


async def _flood(base: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as c:
        token = form_token((await c.get("/login")).text)
        data = {"username": "kim", "password": "not-the-password", "csrf_token": token}
        return list(await asyncio.gather(*(c.post("/login", data=data) for _ in range(n))))


def test_login_flood_is_throttled_while_a_logged_in_user_keeps_working(
    console_settings, store: Store, users, caplog
) -> None:
    settings = console_settings.model_copy(
        update={"login_max_failures_per_user": 1000}
    )  # the address limit acts
    app = create_app(settings, with_recorder=False, store=store)
    guard = app.state.login_guard
    caplog.set_level(logging.INFO, logger="dasan.console")
    with LiveServer(app) as srv:
        cookie = session_cookie(srv.url, "boss")  # logged in before the flood
        hashes_before = guard.hashes
        answers: list[int] = []
        stop = threading.Event()

        def keep_working() -> None:
            with httpx.Client(base_url=srv.url, headers={"Cookie": cookie}, timeout=120) as c:
                while not stop.is_set() or not answers:
                    answers.append(c.get("/api/me").status_code)

        worker = threading.Thread(target=keep_working)
        worker.start()
        try:
            flood = asyncio.run(_flood(srv.url, FLOOD))
        finally:
            stop.set()
            worker.join(120)
    codes = [r.status_code for r in flood]
    assert set(codes) <= {401, 429, 503}, codes
    limit = settings.login_max_per_ip
    assert codes.count(429) >= FLOOD - limit  # every attempt past the address limit
    assert all(int(r.headers["retry-after"]) >= 1 for r in flood if r.status_code in (429, 503))
    assert guard.hashes - hashes_before <= limit  # refused attempts never reached the hasher
    assert guard.peak <= settings.login_hash_concurrency  # and at most N hashes ran at once
    assert answers and set(answers) == {200}  # the logged-in user was served throughout
    # Failed log-ins are logged (pseudonym, address, reason; never the password) and audited.
    failed = [r for r in caplog.records if r.getMessage() == "login failed"]
    assert failed and {"bad_password", "throttled_ip"} <= {r.reason for r in failed}
    assert all("not-the-password" not in repr(r.__dict__) and "kim" not in repr(r.__dict__) for r in failed)
    reasons = {e["detail"] for e in store.audit_page(action="login_failed", limit=500)[0]}
    assert {"bad_password", "throttled_ip"} <= reasons


def test_user_name_throttled_before_hashing(client_factory, users, store: Store, console_settings) -> None:
    c = client_factory()
    guard = c.app.state.login_guard
    token = form_token(c.get("/login").text)
    limit = console_settings.login_max_failures_per_user
    for _ in range(limit):
        r = c.post("/login", data={"username": "kim", "password": "wrong-password", "csrf_token": token})
        assert r.status_code == 401
    hashes = guard.hashes
    for name in ("kim", " KIM "):  # the right password, too late; the name's spelling does not matter
        r = c.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert guard.hashes == hashes  # refused before the password was looked at
    login(c, "lee")  # another account from the same address is not affected
    entry = store.audit_page(action="login_failed")[0][0]
    assert (entry["username"], entry["detail"]) == ("kim", "throttled_user")  # a known account: named
    assert len(store.audit_page(action="login_failed", limit=100)[0]) == limit + 1  # the flood: once


def test_hashing_pool_answers_503_when_full(console_settings, store: Store, users) -> None:
    """No slot and a full queue: 503 at once (the request holds no thread while it waits)."""
    settings = console_settings.model_copy(update={"login_hash_concurrency": 1, "login_hash_queue": 0})
    app = create_app(settings, with_recorder=False, store=store)
    guard = app.state.login_guard

    async def scenario() -> Any:
        async with guard.slot():  # one log-in is hashing
            from console.login_guard import Busy

            try:
                async with guard.slot():
                    return "admitted"
            except Busy:
                return "busy"

    assert asyncio.run(scenario()) == "busy"
