"""The health endpoints: the same answers from the stand-alone server and from a FastAPI app."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streaming import metrics
from streaming.broker import free_port
from streaming.health import HealthServer, broker_reachable, health_router
from streaming.settings import KafkaSettings

Get = Callable[[str], tuple[int, str, bytes]]


class Switch:
    """A readiness callback whose answer the test sets."""

    def __init__(self) -> None:
        self.ok = False
        self.detail: dict[str, Any] = {"phase": "loading", "done": 3, "total": 9}

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        return self.ok, self.detail


@contextlib.contextmanager
def _server(ready: Switch) -> Iterator[Get]:
    server = HealthServer("127.0.0.1", 0, ready, alive=lambda: {"calls": 2}).start()

    def get(path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    try:
        yield get
    finally:
        server.stop()


@contextlib.contextmanager
def _router(ready: Switch) -> Iterator[Get]:
    app = FastAPI()
    app.include_router(health_router(ready, alive=lambda: {"calls": 2}))
    client = TestClient(app)

    def get(path: str) -> tuple[int, str, bytes]:
        r = client.get(path)
        return r.status_code, r.headers["content-type"], r.content

    yield get


@pytest.fixture(params=[_server, _router], ids=["HealthServer", "health_router"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Switch, Get]]:
    ready = Switch()
    with request.param(ready) as get:
        yield ready, get


def test_readyz_follows_the_callback_and_carries_its_detail(served: tuple[Switch, Get]) -> None:
    ready, get = served
    code, ctype, body = get("/readyz")
    assert code == 503 and ctype.startswith("application/json")
    assert json.loads(body) == {"ready": False, "phase": "loading", "done": 3, "total": 9}
    ready.ok, ready.detail = True, {"broker": "ok"}
    code, _, body = get("/readyz")
    assert code == 200 and json.loads(body) == {"ready": True, "broker": "ok"}


def test_healthz_metrics_and_unknown_paths(served: tuple[Switch, Get]) -> None:
    _ready, get = served
    code, _, body = get("/healthz")
    assert code == 200 and json.loads(body) == {"status": "ok", "calls": 2}
    metrics.ERRORS.labels(service="health-test", kind="probe").inc()
    code, ctype, body = get("/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    assert b'dasan_errors_total{kind="probe",service="health-test"}' in body
    assert get("/nothing")[0] == 404


def test_broker_reachable(kafka_settings: KafkaSettings) -> None:
    assert broker_reachable(kafka_settings)
    assert not broker_reachable(KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}"))
