"""End-to-end fixtures: the real services as separate processes around the session's broker.

Each service is started with ``dasan …`` exactly as in production, configured only through
environment variables, on free loopback ports. The assist service uses a slice of the corpus
(the articles the dev calls and utterances need, plus neighbours), so its index builds in
seconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dasan.demo import Service
from streaming.broker import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def broker() -> Iterator[object]:
    """A broker of the e2e tests' own: services here join new consumer groups that start at the
    earliest offset, and must not re-read (re-transcribe) the whole history of the other tests."""
    from streaming.broker import LocalBroker

    artifacts = REPO / "test-artifacts"
    b = LocalBroker(log_path=artifacts / "tansu-e2e.log" if artifacts.exists() else None)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="package")
def kafka_settings(broker: object) -> object:
    from streaming.admin import create_topics
    from streaming.settings import KafkaSettings

    s = KafkaSettings(bootstrap=broker.bootstrap, max_poll_interval_ms=3000)  # type: ignore[attr-defined]
    create_topics(s)
    return s


@pytest.fixture(scope="session")
def corpus_slice(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every article labelled in eval-dev plus the rest of the same laws' first articles (≈400 records)."""
    wanted: set[str] = set()
    for line in (shared_dir / "eval-dev" / "utterances.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            wanted.update(json.loads(line)["relevant_article_ids"])
    for line in (shared_dir / "eval-dev" / "calls.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            wanted.update(json.loads(line)["reference_summary"]["regulations_cited"])
    out = tmp_path_factory.mktemp("corpus") / "slice.jsonl"
    kept = 0
    per_law: dict[str, int] = {}
    with out.open("w", encoding="utf-8") as f:
        for line in (shared_dir / "corpus" / "regulations.jsonl").read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            law = rec["law_name"]
            if rec["id"] in wanted or per_law.get(law, 0) < 8:
                per_law[law] = per_law.get(law, 0) + 1
                f.write(line + "\n")
                kept += 1
    assert kept > 100
    return out


@pytest.fixture(scope="package")
def e2e_env(kafka_settings, corpus_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    var = tmp_path_factory.mktemp("var")
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DASAN_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "DASAN_KAFKA_MAX_POLL_INTERVAL_MS": "3000",
        "DASAN_VAR_DIR": str(var),
        "DASAN_KB_CORPUS_PATHS": json.dumps([str(corpus_slice)]),
        "DASAN_KB_INDEX_DIR": str(var / "kb"),
        # These tests check behaviour, not retrieval quality: 64-token article vectors build the
        # slice about 3x faster than the 256-token default (docs/knowledge.md has both figures).
        "DASAN_KB_MAX_SEQ_LENGTH": "64",
        "DASAN_CONSOLE_DATABASE_URL": f"sqlite:///{var / 'console.db'}",
    }


@pytest.fixture()
def start_service(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """start_service(name, args, port_env, ready_path='/readyz', extra_env=None) → a ready Service."""
    started: list[Service] = []

    def start(
        name: str,
        args: list[str],
        port_env: str,
        extra_env: dict[str, str] | None = None,
        timeout_s: float = 240,
    ) -> Service:
        port = free_port()
        svc = Service(
            name, args, f"http://127.0.0.1:{port}/readyz", env={port_env: str(port), **(extra_env or {})}
        )
        svc.port = port  # type: ignore[attr-defined]
        svc.start(e2e_env, tmp_path)
        started.append(svc)
        wait_ready(svc, timeout_s)
        return svc

    yield start
    for svc in reversed(started):
        svc.stop()


def wait_ready(svc: Service, timeout_s: float) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not svc.alive():
            log = svc.log_path.read_text(errors="replace")[-4000:] if svc.log_path else ""
            pytest.fail(f"{svc.name} exited while starting:\n{log}")
        if svc.ready():
            return
        time.sleep(0.3)
    log = svc.log_path.read_text(errors="replace")[-4000:] if svc.log_path else ""
    pytest.fail(f"{svc.name} not ready after {timeout_s} s:\n{log}")
