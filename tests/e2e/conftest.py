"""End-to-end fixtures: the real services as separate processes around a broker of their own.

Each service is started with ``dasan …`` exactly as in production, configured only through
environment variables, on free loopback ports (``dasan.stack``), and waited for through its
``/readyz`` for as long as it shows progress.

The assist service uses a slice of the corpus (the articles the dev calls and utterances need,
plus neighbours), BM25 only; the bad-input stack's assist runs hybrid (BM25 and vectors) on a
smaller slice of that slice (``hybrid_env``: its tests check what bad input does to the services,
not retrieval, and embedding is what costs in a build). The indexes are built once, here in the
test process (``slice_indexes``), and every assist process loads them: a service that found no
matching index would build one, which the start helpers refuse (the index key covers the corpus,
the analyser and every setting that changes a vector, so a mismatch there means the services and
the tests disagree on a setting).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dasan.stack import Service, Stack
from streaming.broker import LocalBroker
from streaming.settings import KafkaSettings
from tests.kafka_util import broker_settings, running_broker
from tests.util import short_memory

REPO = Path(__file__).resolve().parents[2]
# Index folders are keyed by corpus content, models and settings: a cache across sessions is safe,
# and spares the slices' builds on a later run.
KB_CACHE = REPO / "var" / "test-cache" / "e2e-kb"
# These tests check behaviour, not retrieval quality: 64-token article vectors build the slice
# about 3x faster than the 256-token default (docs/knowledge.md has both figures).
MAX_SEQ_LENGTH = 64
# The hybrid slice: the first articles of every law in ``corpus_slice`` (≈80 records: embedding all
# ≈420 made the bad-input stack's first set-up 254 s instead of 170 s on a loaded 2-core machine).
HYBRID_PER_LAW = 2
# Remembered questions the hybrid services read (``slice_memory``): the ranker's memory features
# work on any list; the whole shipped one is what `dasan eval` and the demo measure.
SLICE_MEMORY = 200


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-timeout's deadline (``timeout`` in pyproject.toml, or a test's own marker) covers the
    test bodies here, not their set-up: the slice index build and the services' start take what
    the machine needs, and are bounded by progress instead (``dasan.stack.wait_ready``)."""
    here = Path(__file__).parent
    for item in items:
        if here not in item.path.parents:
            continue
        own = item.get_closest_marker("timeout")
        seconds = (own.args[0] if own.args else own.kwargs.get("timeout")) if own else None
        kw = {"timeout": seconds} if seconds is not None else {}
        item.add_marker(pytest.mark.timeout(**kw, func_only=True), append=False)


@pytest.fixture(scope="package")
def broker() -> Iterator[LocalBroker]:
    """A broker of the e2e tests' own: services here join new consumer groups that start at the
    earliest offset, and must not re-read (re-transcribe) the whole history of the other tests."""
    with running_broker("tansu-e2e.log") as b:
        yield b


@pytest.fixture(scope="package")
def kafka_settings(broker: LocalBroker) -> KafkaSettings:
    return broker_settings(broker)


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


@pytest.fixture(scope="session")
def hybrid_slice(corpus_slice: Path) -> Path:
    """The first ``HYBRID_PER_LAW`` articles of every law in ``corpus_slice`` (≈80 records)."""
    out = corpus_slice.with_name("hybrid-slice.jsonl")
    per_law: dict[str, int] = {}
    kept = []
    for line in corpus_slice.read_text(encoding="utf-8").splitlines():
        law = json.loads(line)["law_name"]
        if per_law.get(law, 0) < HYBRID_PER_LAW:
            per_law[law] = per_law.get(law, 0) + 1
            kept.append(line)
    assert len(kept) > 50
    out.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def slice_memory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ``SLICE_MEMORY`` shipped remembered questions: the ``hybrid`` services' question
    memory. Embedding the whole shipped memory for the slice index took 110 s on an AVX-512 machine
    and 654 s on an AVX2-only one, for tests whose subject is bad input, not retrieval."""
    return short_memory(tmp_path_factory.mktemp("memory"), n=SLICE_MEMORY)


@pytest.fixture(scope="session")
def hybrid_env(hybrid_slice: Path, slice_memory: Path) -> dict[str, str]:
    """What an assist service needs over ``e2e_env`` to load the ``hybrid`` index (``slice_indexes``)
    and its question memory (``slice_memory``, embedded there)."""
    return {
        "DASAN_KB_CORPUS_PATHS": json.dumps([str(hybrid_slice)]),
        "DASAN_KB_MEMORY_QUESTIONS_PATH": str(slice_memory),
    }


@pytest.fixture(scope="session")
def slice_indexes(corpus_slice: Path, hybrid_slice: Path, slice_memory: Path) -> dict[str, Path]:
    """The slices' two indexes, built here once (or found in the cache): ``lexical`` (BM25 only, of
    ``corpus_slice``: the assist services of tests that set ``DASAN_KB_DENSE_ENABLED=false``) and
    ``hybrid`` (BM25 and 64-token vectors, the services' default, of ``hybrid_slice``: for services
    started with ``hybrid_env``). The same environment reaches the services, so they compute the
    same keys and load these folders."""
    from assist.knowledge import KnowledgeBase, KnowledgeSettings

    out = {}
    variants: tuple[tuple[str, Path, dict[str, Any]], ...] = (
        ("hybrid", hybrid_slice, {}),
        ("lexical", corpus_slice, {"dense_enabled": False}),
    )
    for name, corpus, over in variants:
        settings = KnowledgeSettings(
            corpus_paths=[corpus], index_dir=KB_CACHE, max_seq_length=MAX_SEQ_LENGTH, **over
        )
        path = KnowledgeBase.index_path(settings)
        if not (path / "manifest.json").is_file():
            KnowledgeBase.build(None, settings, progress=True).save()
        if settings.dense_enabled:
            # the services' question memory embedded once into the index's folder, as `dasan kb build`
            # does, so that every service started on it reads it instead of embedding it at start-up
            from assist.knowledge.memory import shipped_memory

            kb = KnowledgeBase.open(settings, build_if_missing=False, progress=False)
            assert shipped_memory(kb, slice_memory) is not None
        out[name] = path
    for stale in set(KB_CACHE.iterdir()) - set(out.values()):  # other slices, models or settings
        shutil.rmtree(stale, ignore_errors=True)
    return out


@pytest.fixture(scope="package")
def e2e_env(
    kafka_settings,
    corpus_slice: Path,
    slice_indexes: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    var = tmp_path_factory.mktemp("var")
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DASAN_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "DASAN_KAFKA_MAX_POLL_INTERVAL_MS": "3000",
        "DASAN_VAR_DIR": str(var),
        "DASAN_KB_CORPUS_PATHS": json.dumps([str(corpus_slice)]),
        "DASAN_KB_INDEX_DIR": str(KB_CACHE),
        "DASAN_KB_MAX_SEQ_LENGTH": str(MAX_SEQ_LENGTH),
        "DASAN_CONSOLE_DATABASE_URL": f"sqlite:///{var / 'console.db'}",
        # Tests stream recorded calls faster than real time (speed 4, bursts of frames): the
        # gateway's pacing check is off here; tests/security/test_ingest.py tests it.
        "DASAN_ASR_MAX_AHEAD_S": "0",
    }


def start_ready(stack: Stack, *services: Service) -> None:
    """Start the services and wait until they are ready; an assist service must have loaded one of
    the prebuilt indexes (``slice_indexes``), not built its own."""
    before = set(KB_CACHE.iterdir())
    stack.start(*services)
    built = set(KB_CACHE.iterdir()) - before
    assert not built, (
        f"an assist service built an index instead of loading the prebuilt one: {sorted(built)}; "
        "the index key depends on a setting the services and slice_indexes do not share"
    )


class ServiceStarter:
    """Starts services of a test in one :class:`Stack` (stopped, newest first, after the test)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def __call__(
        self, kind: str, name: str | None = None, env: dict[str, str] | None = None, args: Sequence[str] = ()
    ) -> Service:
        """(kind, name=kind, env=None, args=()) → a ready Service."""
        (svc,) = self.together(Service.of(kind, name=name, env=env, args=args))
        return svc

    def together(self, *services: Service) -> list[Service]:
        """Start all of them at once and wait until every one is ready: their starts (model loads,
        group joins) overlap instead of adding up."""
        start_ready(self.stack, *services)
        return list(services)


@pytest.fixture()
def start_service(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[ServiceStarter]:
    """start_service(kind, name=kind, env=None, args=()) → a ready Service;
    start_service.together(Service.of(...), ...) → several, started at once."""
    stack = Stack(e2e_env, tmp_path)
    yield ServiceStarter(stack)
    stack.stop()
