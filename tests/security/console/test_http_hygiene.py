"""Issue 14, production guards and HTTP hygiene: the public default session secret refused on any
non-loopback address (whatever DASAN_ENV says); no query string in the access log; the API
description and metrics behind an admin or QA log-in (Prometheus reads an internal port); nothing
with call text, transcripts or passwords cacheable."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from console.settings import INSECURE_DEFAULT, ConsoleSettings
from console.store import Store
from tests.console.conftest import csrf_of, login

PHONE = "010-8765-4321"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "console.dasan.internal"])
@pytest.mark.parametrize("secret", [INSECURE_DEFAULT, "", "   "])
def test_default_secret_refused_on_a_non_loopback_bind(host: str, secret: str, monkeypatch) -> None:
    monkeypatch.delenv("DASAN_ENV", raising=False)  # unset means development: still refused
    monkeypatch.delenv("DASAN_CONSOLE_SESSION_SECRET", raising=False)
    with pytest.raises(ValidationError, match="non-loopback"):
        ConsoleSettings(host=host, session_secret=secret)
    ok = ConsoleSettings(host="127.0.0.1", session_secret=secret)  # loopback in development: a warning
    with pytest.raises(ValueError, match="non-loopback"):
        ok.check_bind(host)  # `dasan console run --host` is checked the same way
    ConsoleSettings(host=host, session_secret="a-long-random-site-secret-0123456789")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASAN_")}
    env.update(
        DASAN_CONSOLE_DATABASE_URL=f"sqlite:///{tmp_path / 'console.sqlite3'}",
        DASAN_VAR_DIR=str(tmp_path),
        DASAN_KAFKA_BOOTSTRAP="127.0.0.1:1",  # nothing there; the server runs without a recorder
        **extra,
    )
    return env


def test_console_run_refuses_the_default_secret_on_0000(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "console",
            "console",
            "run",
            "--no-recorder",
            "--host",
            "0.0.0.0",
            "--port",
            "1",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "non-loopback" in r.stderr


def test_served_console_logs_no_query_string_and_metrics_only_inside(tmp_path: Path) -> None:
    """The real `dasan console run` (uvicorn with the console's options): its access log has paths
    without query strings; /metrics answers without log-in only on the internal port."""
    port, metrics_port = _free_port(), _free_port()
    env = _env(
        tmp_path,
        DASAN_CONSOLE_SESSION_SECRET="hygiene-test-secret-0123456789",
        DASAN_CONSOLE_METRICS_PORT=str(metrics_port),
        DASAN_LOG_LEVEL="INFO",
    )
    log_path = tmp_path / "console.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "console", "console", "run", "--no-recorder", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the console did not start"
                time.sleep(0.3)
            assert httpx.get(f"{base}/api/calls", params={"q": PHONE}).status_code == 401
            assert httpx.get(f"{base}/search", params={"q": PHONE}).status_code == 303
            assert httpx.get(f"{base}/metrics").status_code == 303  # to the log-in page
            inside = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            assert inside.status_code == 200 and "dasan_console_ws_clients" in inside.text
        finally:
            proc.terminate()
            proc.wait(30)
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    access = [x for x in lines if x.get("logger") == "dasan.console.access"]
    assert {(x["path"], x["status"]) for x in access} >= {("/api/calls", 401), ("/search", 303)}
    assert all(x.get("query_hash") for x in access if x["path"] in ("/api/calls", "/search"))
    text = log_path.read_text()
    assert PHONE not in text and "8765" not in text and "q=" not in text
    assert not [x for x in lines if x.get("logger") == "uvicorn.access"]


def test_access_log_in_process_has_no_query_string(client_factory, users, caplog) -> None:
    c = client_factory()
    login(c, "qa1")
    caplog.set_level(logging.INFO, logger="dasan.console.access")
    assert c.get("/api/calls", params={"q": PHONE, "counselor": "kim"}).status_code == 200
    records = [r for r in caplog.records if r.name == "dasan.console.access"]
    assert records and records[-1].path == "/api/calls"
    assert all(PHONE not in r.getMessage() and PHONE not in repr(r.__dict__) for r in records)


def test_docs_openapi_and_metrics_need_an_admin_or_qa_log_in(client_factory, users) -> None:
    paths = ("/openapi.json", "/docs", "/metrics")
    anon = client_factory()
    for path in paths:
        assert anon.get(path, follow_redirects=False).status_code == 303, path
    for name, code in (("kim", 403), ("boss", 403), ("qa1", 200), ("root", 200)):
        c = client_factory()
        login(c, name)
        for path in paths:
            assert c.get(path).status_code == code, (name, path)
    assert anon.get("/healthz").status_code == 200  # probes stay open: no data in them


def test_nothing_with_call_text_is_cacheable(client_factory, store: Store, users, call_script) -> None:
    sc = call_script(counselor="kim", team="A")
    for e in sc.full():
        store.record(e)
    store.review_action(f"{sc.call_id}-sum", "kim", "submit", None, None)
    qa = client_factory()
    login(qa, "qa1")
    for path in (
        f"/calls/{sc.call_id}",
        f"/calls/{sc.call_id}/replay",
        f"/reviews/{sc.call_id}-sum",
        f"/api/calls/{sc.call_id}/transcript",
        "/search",
        "/login",
    ):
        assert qa.get(path).headers["cache-control"] == "no-store", path
    raw = qa.post(f"/api/calls/{sc.call_id}/transcript/raw", json={}, headers={"X-CSRF-Token": csrf_of(qa)})
    assert raw.headers["cache-control"] == "no-store"
    root = client_factory()
    login(root, "root")
    created = root.post(
        "/admin/users", data={"csrf_token": csrf_of(root, "/admin/users"), "username": "han", "role": "qa"}
    )
    assert "비밀번호" in created.text and created.headers["cache-control"] == "no-store"
    assert "no-store" not in qa.get("/static/app.css").headers.get("cache-control", "")
