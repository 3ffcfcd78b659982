"""The stack of the bad-input tests: the four services, started once for the package."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dasan.stack import Service, Stack
from streaming.broker import free_port
from streaming.topics import TOPICS, dlq_name
from tests.e2e.conftest import start_ready

from .harness import COUNSELOR, IDLE_TIMEOUT_S, PASSWORD, WS_QUEUE_MAX, BadInputStack, Tail


@pytest.fixture(scope="package")
def stack(
    e2e_env: dict[str, str],
    hybrid_env: dict[str, str],
    kafka_settings: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BadInputStack]:
    """The four services, each with its own consumer group; assist hybrid (BM25 and vectors), as
    production runs it, on the small hybrid slice (``tests/e2e/conftest.py``)."""
    u = uuid.uuid4().hex[:8]
    log_dir = tmp_path_factory.mktemp("bad-input-logs")
    groups = {
        "asr-worker": f"asr-workers-bad-{u}",
        "assist": f"assist-bad-{u}",
        "console": f"console-bad-{u}",
    }
    env = {**e2e_env, "DASAN_CONSOLE_DATABASE_URL": f"sqlite:///{log_dir / 'console.db'}"}
    # The console's /metrics needs a log-in on its web port; Prometheus reads the internal port.
    console_metrics_port = free_port()
    services = [
        Service.of("asr-gateway", env={"DASAN_ASR_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}),
        Service.of("asr-worker", env={"DASAN_ASR_GROUP_ID": groups["asr-worker"]}),
        Service.of("assist", env={**hybrid_env, "DASAN_ASSIST_GROUP_ID": groups["assist"]}),
        Service.of(
            "console",
            env={
                "DASAN_CONSOLE_RECORDER_GROUP": groups["console"],
                "DASAN_CONSOLE_SESSION_SECRET": "bad-input-session-secret-0123456789",
                "DASAN_CONSOLE_CALLER_KEY_SECRET": "bad-input-caller-secret-0123456789",
                "DASAN_CONSOLE_WS_QUEUE_MAX": str(WS_QUEUE_MAX),
                "DASAN_CONSOLE_WS_SEND_TIMEOUT_S": "2",
                "DASAN_CONSOLE_WS_HEARTBEAT_S": "1",
                "DASAN_CONSOLE_METRICS_PORT": str(console_metrics_port),
                # glibc keeps freed ~600 KB blocks in per-thread arenas (a dynamic mmap threshold):
                # a fixed threshold returns them at once, so RSS tracks live memory in the
                # back-pressure test instead of the allocator's high-water mark
                "MALLOC_MMAP_THRESHOLD_": "131072",
                "MALLOC_ARENA_MAX": "2",
            },
        ),
    ]
    # The tail starts before any service, so it sees every record the tests cause.
    tail = Tail(kafka_settings, [*TOPICS, *(dlq_name(t) for t in TOPICS)])
    local = Stack(env, log_dir)
    try:
        start_ready(local, *services)
        local.add_user(COUNSELOR, "counselor", team="A", password=PASSWORD)
        yield BadInputStack(
            local, groups, kafka_settings, tail, u, metrics_ports={"console": console_metrics_port}
        )
    finally:
        local.stop()
        tail.close()
