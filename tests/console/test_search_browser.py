"""The regulation search in a real browser (Playwright + /usr/bin/chromium, 1366×768, Korean): a
counselor on a live call that named 강남구 searches `대형폐기물 수수료`, gets 강남구's ordinance first
(the 송파구 copy is left out), opens it and sees the version and its effective date, then the version
in force before an amendment, with the notice that a newer one exists; a QA user searches too.

The console asks a real assist internal API (``assist.kb_switch.internal_routes`` on the service's
health server) over loopback, over a small real index (tests/assist/kb_data.py). Screenshots:
test-artifacts/console/search-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from assist.assistant import Assistant
from assist.kb_switch import internal_routes
from assist.settings import AssistSettings
from console.app import create_app
from console.auth import hash_password
from console.db import make_engine, migrate
from console.settings import ConsoleSettings
from console.store import Store
from streaming.health import HealthServer
from streaming.kafka import EventProducer
from tests.assist.kb_data import AMENDED_ON, FEE_TABLE
from tests.console.conftest import CallScript, LiveServer
from tests.console.test_browser import VIEWPORT, _login, _send, browser, shots  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
QUERY = "대형폐기물 수수료"


@pytest.fixture(scope="module")
def assist_api(waste_kbs: tuple[Any, Any]) -> Iterator[tuple[str, Any]]:
    kb = waste_kbs[1]  # the amended version
    assistant = Assistant(kb, AssistSettings())
    kb.search(QUERY, top_k=1)  # warm (the first query sets kiwipiepy up: seconds on a busy machine)
    server = HealthServer("127.0.0.1", 0, lambda: (True, {}), routes=internal_routes(lambda: assistant, 0.15))
    server.start()
    yield f"http://127.0.0.1:{server.port}", kb
    server.stop()


@pytest.fixture()
def console(
    tmp_path: Path, shared_dir: Path, kafka_settings: Any, unique: str, assist_api: tuple[str, Any]
) -> Iterator[tuple[LiveServer, Store]]:
    settings = ConsoleSettings(
        database_url=f"sqlite:///{tmp_path / 'search.sqlite3'}",
        session_secret="browser-test-secret-0123456789",
        corpus_path=shared_dir / "corpus" / "regulations.jsonl",
        recorder_group=f"console-recorder-{unique}",
        assist_url=assist_api[0],
    )
    engine = make_engine(settings)
    migrate(engine, settings)
    store = Store(engine)
    pw = hash_password("correct-horse-battery")
    store.add_user("kim", pw, "counselor", "A", "김상담")
    store.add_user("qa1", pw, "qa", None, "최품질")
    with LiveServer(create_app(settings, kafka=kafka_settings, store=store)) as srv:
        yield srv, store


def test_counselor_and_qa_search_regulations(
    browser: Any,  # noqa: F811
    console: Any,
    assist_api: tuple[str, Any],
    kafka_settings: Any,
    shots: Path,  # noqa: F811
    unique: str,
) -> None:
    srv, store = console
    kb = assist_api[1]
    ctx = browser.new_context(viewport=VIEWPORT, locale="ko-KR", timezone_id="Asia/Seoul")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login(page, srv.url, "kim")

    # a live call in which the caller names 강남구: the search preselects it
    call = CallScript(f"kbs-{unique}")
    with EventProducer(kafka_settings) as producer:
        _send(producer, call.started())
        page.wait_for_selector("#call-state.oncall", timeout=30_000)
        _send(
            producer,
            call.segment(1, "강남구 역삼동 사는데요, 장롱을 버리려고 하는데 수수료가 얼마예요?", t=2),
        )
        page.wait_for_selector(f'[data-segment-id="{call.call_id}-caller-1"].final', timeout=30_000)
    expect(page.locator("#kb-district")).to_have_value("강남구")

    # Ctrl+K, type: results arrive without pressing Enter
    page.keyboard.press("Control+k")
    expect(page.locator("#kb-q")).to_be_focused()
    page.keyboard.type(QUERY, delay=30)
    page.wait_for_selector(".kb-item", timeout=10_000)
    first = page.locator(".kb-item").first
    expect(first).to_have_attribute("data-record-id", FEE_TABLE)
    expect(first.locator(".badge.local")).to_contain_text("강남구")
    assert page.locator(".kb-sentence mark").count() > 0
    assert "송파구" not in page.inner_text("#kb-results")
    expect(page.locator("#kb-version")).to_contain_text(kb.key[:8])
    page.screenshot(path=str(shots / "search-01-counselor-results.png"))

    # one click: the full article, its effective date and the version that served it
    first.click()
    page.wait_for_selector("#article-modal:not([hidden])")
    expect(page.locator("#article-meta")).to_contain_text(f"시행일 {AMENDED_ON.isoformat()}")
    expect(page.locator("#article-meta")).to_contain_text(f"지식베이스 버전 {kb.key[:8]}")
    assert page.locator("#article-newer").is_hidden()
    assert "개정 2026.11.1." in page.inner_text("#article-text")
    page.screenshot(path=str(shots / "search-02-article.png"))
    page.click("#article-modal [data-close]")

    # as of a day before the amendment: the old version, which says a newer one exists
    page.fill("#kb-asof", "2026-10-01")
    page.locator("#kb-asof").dispatch_event("change")
    expect(page.locator(".kb-item").first).to_have_attribute("data-effective-date", "2025-09-26")
    page.locator(".kb-item").first.click()
    expect(page.locator("#article-newer")).to_contain_text(f"{AMENDED_ON.isoformat()} 시행 개정본")
    expect(page.locator("#article-meta")).to_contain_text("시행일 2025-09-26")
    page.screenshot(path=str(shots / "search-03-older-version.png"))
    page.click("#article-newer button")
    expect(page.locator("#article-meta")).to_contain_text(f"시행일 {AMENDED_ON.isoformat()}")
    page.click("#article-modal [data-close]")
    assert not errors, errors

    # audited with the query (masked), never a raw personal detail
    rows = [r for r in store.audit_entries() if r["action"] == "kb_search"]
    assert rows and rows[0]["username"] == "kim" and "q=대형폐기물 수수료" in rows[0]["target"]

    # QA searches too (no call, no district: every district's ordinance may show)
    qa = browser.new_context(viewport=VIEWPORT, locale="ko-KR", timezone_id="Asia/Seoul").new_page()
    _login(qa, srv.url, "qa1")
    qa.click("#kb-q")
    qa.keyboard.type(QUERY, delay=30)
    qa.wait_for_selector(".kb-item", timeout=10_000)
    assert qa.locator("#kb-district").input_value() == ""
    assert qa.locator(".kb-item").count() >= 3
    qa.screenshot(path=str(shots / "search-04-qa.png"))
