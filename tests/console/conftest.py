"""Console fixtures: the store on SQLite and PostgreSQL (parametrised), users, a logged-in client,
and builders for the events the recorder consumes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from console.auth import hash_password
from console.db import make_engine, migrate
from console.settings import ConsoleSettings
from console.store import Store
from streaming.events import (
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    DraftAnswer,
    DraftSentence,
    KeywordsUpdated,
    Provenance,
    RetrievedPassage,
    Suggestion,
    SummaryAction,
    TranscriptSegment,
    TranscriptSource,
)

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct-horse-battery"


def _settings(tmp_path: Path, backend: str, shared: Path) -> tuple[ConsoleSettings, str | None]:
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'console.sqlite3'}"
    else:
        url = PG_URL
        schema = f"t_console_{uuid.uuid4().hex[:12]}"
    s = ConsoleSettings(
        database_url=url,
        db_schema=schema,
        session_secret="test-session-secret-0123456789",
        corpus_path=shared / "corpus" / "regulations.jsonl",
        ws_heartbeat_s=0.5,
    )
    return s, schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def console_settings(
    request: pytest.FixtureRequest, tmp_path: Path, shared_dir: Path
) -> Iterator[ConsoleSettings]:
    settings, schema = _settings(tmp_path, request.param, shared_dir)
    yield settings
    if schema:
        eng = create_engine(PG_URL)
        with eng.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()


class FrozenClock:
    """A clock stopped at one instant (``Store(clock=…)``): date tests hold at any hour."""

    def __init__(self, instant: datetime) -> None:
        assert instant.tzinfo is not None
        self.instant = instant

    def __call__(self) -> datetime:
        return self.instant

    def __repr__(self) -> str:
        return f"FrozenClock({self.instant.isoformat()})"


class MovingClock(FrozenClock):
    """A stopped clock the test moves forward (sessions' idle and absolute limits, retention)."""

    def __init__(self, instant: datetime = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)) -> None:
        super().__init__(instant)

    def advance(self, **kw: float) -> None:
        self.instant += timedelta(**kw)


@pytest.fixture()
def clock() -> Callable[[], datetime]:
    """The store's clock: the real one, unless a test parametrises ``clock`` with a FrozenClock."""
    return lambda: datetime.now(UTC)


@pytest.fixture()
def store(console_settings: ConsoleSettings, clock: Callable[[], datetime]) -> Iterator[Store]:
    engine = make_engine(console_settings)
    migrate(engine, console_settings)
    yield Store(engine, console_settings.timezone, clock=clock)
    engine.dispose()


@pytest.fixture()
def users(store: Store) -> dict[str, Any]:
    """One user per role (two counselors in team A, one in team B)."""
    pw = hash_password(PASSWORD)
    spec = {
        "kim": ("counselor", "A"),
        "lee": ("counselor", "A"),
        "park": ("counselor", "B"),
        "boss": ("supervisor", "A"),
        "bossb": ("supervisor", "B"),
        "qa1": ("qa", None),
        "root": ("admin", None),
    }
    return {name: store.add_user(name, pw, role, team) for name, (role, team) in spec.items()}


def _found(pattern: str, html: str) -> str:
    m = re.search(pattern, html)
    assert m, f"no {pattern!r} in the page"
    return m.group(1)


def form_token(html: str) -> str:
    """The CSRF token of a page's form (the log-in page, a review page)."""
    return _found(r'name="csrf_token" value="([^"]+)"', html)


def login(client: Any, username: str, password: str = PASSWORD) -> None:
    token = form_token(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def csrf_of(client: Any, path: str = "/search") -> str:
    return _found(r'<meta name="csrf-token" content="([^"]+)"', client.get(path).text)


@pytest.fixture()
def client_factory(console_settings: ConsoleSettings, store: Store) -> Iterator[Callable[[], Any]]:
    from fastapi.testclient import TestClient

    from console.app import create_app

    clients: list[Any] = []

    def make() -> Any:
        app = create_app(console_settings, with_recorder=False, store=store)
        c = TestClient(app, base_url="http://testserver")
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


# --------------------------------------------------------------------------- events


PROVENANCE = Provenance(
    index_key="3490314ea2dd55ad6c9b",
    corpus_version="d3d4f4f02bf65cf4",
    encoder="embeddinggemma-300m/bf16/256tok",
    encoder_hash="ca6c0ff69dbb8bc8",
    generator="grounded",
    settings_hash="47343fdc52225814",
)
"""How the scripted calls' cards say they were made (shown under each card in read-only views)."""


class CallScript:
    """Builds a small, realistic call's events (all with fixed event ids, so they can be redelivered)."""

    def __init__(
        self,
        call_id: str,
        counselor: str = "kim",
        team: str | None = "A",
        caller_key: str | None = None,
        started_at: datetime | None = None,
        source: TranscriptSource = TranscriptSource.scripted,
    ) -> None:
        self.call_id = call_id
        self.counselor = counselor
        self.team = team
        self.caller_key = caller_key
        self.t0 = started_at or datetime.now(UTC)
        self.source = source

    def at(self, s: float) -> datetime:
        return self.t0 + timedelta(seconds=s)

    def started(self) -> CallStarted:
        return CallStarted(
            call_id=self.call_id,
            counselor_id=self.counselor,
            team=self.team,
            caller_number_masked="010-****-5678",
            caller_key=self.caller_key,
            started_at=self.t0,
            produced_at=self.t0,
            source=self.source,
        )

    def segment(
        self,
        n: int,
        text_: str,
        channel: Channel = Channel.caller,
        final: bool = True,
        revision: int = 0,
        t: float = 0,
    ) -> TranscriptSegment:
        return TranscriptSegment(
            call_id=self.call_id,
            segment_id=f"{self.call_id}-{channel.value}-{n}",
            channel=channel,
            start_s=t,
            end_s=t + 2,
            text=text_,
            is_final=final,
            revision=revision,
            asr_model="scripted",
            source=self.source,
            produced_at=self.at(t + 2 + 0.1 * revision),
        )

    def keywords(self, words: list[str], t: float) -> KeywordsUpdated:
        return KeywordsUpdated(call_id=self.call_id, keywords=words, produced_at=self.at(t))

    def suggestion(self, n: int, trigger: str, t: float) -> Suggestion:
        p = RetrievedPassage(
            doc_id="도로교통법/제32조",
            passage_id="도로교통법/제32조#1",
            citation="「도로교통법」 제32조(정차 및 주차의 금지)",
            law_name="도로교통법",
            article_no="제32조",
            score=0.82,
            snippet="모든 차의 운전자는 다음 각 호의 어느 하나에 해당하는 곳에서는 차를 정차하거나 주차하여서는 아니 된다.",
            effective_date="2026-07-01",
        )
        return Suggestion(
            call_id=self.call_id,
            suggestion_id=f"{self.call_id}-s{n}",
            trigger_segment_ids=[trigger],
            query="불법 주차 신고",
            keywords=["불법주차", "신고"],
            passages=[p],
            draft=DraftAnswer(
                generator="grounded",
                sentences=[
                    DraftSentence(
                        text="교차로와 횡단보도에서는 차를 세우시거나 주차하시면 안 됩니다.",
                        citations=[p.passage_id],
                    )
                ],
            ),
            produced_at=self.at(t),
            provenance=PROVENANCE,
        )

    def ended(self, t: float) -> CallEnded:
        return CallEnded(call_id=self.call_id, ended_at=self.at(t), duration_s=t, produced_at=self.at(t))

    def summary(self, t: float) -> CallSummary:
        return CallSummary(
            call_id=self.call_id,
            summary_id=f"{self.call_id}-sum",
            category="주정차",
            call_reason="집 앞 불법 주차 차량 신고 문의",
            key_facts=["횡단보도 앞 주차", "연락처 010-1234-5678"],
            counselor_answers=["안전신문고 앱으로 신고하실 수 있다고 안내"],
            actions=[SummaryAction(kind="안내", text="안전신문고 신고 방법 안내")],
            regulations_cited=["도로교통법/제32조"],
            generator="grounded",
            produced_at=self.at(t),
        )

    def full(self, hostile: str | None = None) -> list[Any]:
        caller = hostile or "집 앞 횡단보도에 차가 계속 서 있어요. 제 번호는 010-1234-5678이에요."
        seg_id = f"{self.call_id}-caller-1"
        return [
            self.started(),
            self.segment(0, "안녕하세요 120 다산콜센터입니다", Channel.counselor, t=0.5),
            self.segment(1, "집 앞 횡단보도에", final=False, revision=0, t=3),
            self.segment(1, "집 앞 횡단보도에 차가 계속", final=False, revision=1, t=3),
            self.segment(1, caller, final=True, revision=2, t=3),
            self.keywords(["불법주차", "횡단보도"], 6),
            self.suggestion(1, seg_id, 6.5),
            self.segment(2, "안전신문고 앱으로 신고하실 수 있습니다", Channel.counselor, t=8),
            self.ended(12),
            self.summary(13),
        ]


@pytest.fixture()
def call_script(unique: str, clock: Callable[[], datetime]) -> Callable[..., CallScript]:
    """Calls start at the store's clock's "now" unless ``started_at`` says otherwise."""

    def make(suffix: str = "", **kw: Any) -> CallScript:
        kw.setdefault("started_at", clock())
        return CallScript(f"c-{unique}{suffix}", **kw)

    return make


# --------------------------------------------------------------------------- a real server


class LiveServer:
    """The console app under uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        self.app = app
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", log_config=None, lifespan="on"
            )
        )

    def __enter__(self) -> LiveServer:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("console server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def session_cookie(base_url: str, username: str, password: str = PASSWORD) -> str:
    """Log in over HTTP and return the Cookie header value."""
    import httpx

    with httpx.Client(base_url=base_url) as c:
        login(c, username, password)
        return "; ".join(f"{k}={v}" for k, v in c.cookies.items())


def run_dasan(monkeypatch: pytest.MonkeyPatch, settings: ConsoleSettings, *argv: str) -> str:
    """Run a ``dasan`` command against the test's database; its standard output (exit code 0)."""
    import contextlib
    import io

    from dasan.cli import main

    monkeypatch.setenv("DASAN_CONSOLE_DATABASE_URL", settings.database_url)
    if settings.db_schema:
        monkeypatch.setenv("DASAN_CONSOLE_DB_SCHEMA", settings.db_schema)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code in (0, None), buf.getvalue()
    return buf.getvalue()
