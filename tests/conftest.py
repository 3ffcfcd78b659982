"""Shared fixtures: a real Kafka-compatible broker (Tansu) per test session, settings for it,
and the databases (SQLite file, and PostgreSQL on 127.0.0.1:5432)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from streaming.hardware import configure_threading

if TYPE_CHECKING:
    from streaming.broker import LocalBroker
    from streaming.settings import KafkaSettings

configure_threading()  # before any test imports torch or CTranslate2 (tests share the machine's cores)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DASAN_SHARED_DIR", REPO.parent / "shared"))
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}: the tests read the corpus, eval and audio sets there")
    return SHARED


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    """A Tansu broker on a free loopback port for the whole test session."""
    from tests.kafka_util import running_broker

    with running_broker("tansu.log") as b:
        yield b


@pytest.fixture(scope="session")
def kafka_settings(broker: LocalBroker) -> KafkaSettings:
    """Settings pointing at the test broker, with a short group join (Tansu waits for it)."""
    from tests.kafka_util import broker_settings

    return broker_settings(broker)


@pytest.fixture()
def unique() -> str:
    """A short unique suffix for group ids, call ids and topic names within one test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def waste_kbs(shared_dir: Path) -> tuple[object, object]:
    """Two small knowledge-base versions (tests/assist/kb_data.py): the waste ordinances, and the
    same with 강남구 별표1 amended. Shared by the version tests (tests/assist) and the search browser
    test (tests/console); the second reuses the first's analyser (one kiwipiepy start)."""
    from tests.assist.kb_data import amended, build, waste_records

    records = waste_records(shared_dir)
    v1 = build(records, "v1")
    return v1, build(amended(records), "v2", like=v1)
