"""The console in a real browser (Debian's chromium through Playwright) against the real broker:
log-in, a live call produced to Kafka, a dropped connection that resumes, a summary submitted and
approved, a replay. Screenshots go to test-artifacts/console/ (look at them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from console.app import create_app
from console.auth import hash_password
from console.db import make_engine, migrate
from console.settings import ConsoleSettings
from console.store import Store
from streaming.events import Channel
from streaming.kafka import EventProducer
from tests.console.conftest import PASSWORD, CallScript, LiveServer
from tests.util import dismiss_dialogs

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 768}
HOSTILE = (
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> 제 번호는 010-2345-6789예요'
)


@pytest.fixture()
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def shots(artifacts_dir: Path) -> Path:
    d = artifacts_dir / "console"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture()
def server(
    tmp_path: Path, shared_dir: Path, kafka_settings: Any, unique: str
) -> Iterator[tuple[LiveServer, Store]]:
    settings = ConsoleSettings(
        database_url=f"sqlite:///{tmp_path / 'browser.sqlite3'}",
        session_secret="browser-test-secret-0123456789",
        corpus_path=shared_dir / "corpus" / "regulations.jsonl",
        recorder_group=f"console-recorder-{unique}",
        ws_heartbeat_s=1.0,
    )
    engine = make_engine(settings)
    migrate(engine, settings)
    store = Store(engine)
    pw = hash_password(PASSWORD)
    store.add_user("kim", pw, "counselor", "A", "김상담")
    store.add_user("boss", pw, "supervisor", "A", "박팀장")
    store.add_user("qa1", pw, "qa", None, "최품질")
    app = create_app(settings, kafka=kafka_settings, store=store)
    with LiveServer(app) as srv:
        yield srv, store


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def _send(producer: EventProducer, *events: Any) -> None:
    for e in events:
        producer.send(e)
    producer.flush()


def test_live_call_review_and_replay(
    browser: Any, server: Any, kafka_settings: Any, shots: Path, unique: str
) -> None:
    srv, store = server
    base = srv.url
    caller_key = "f0" * 32
    # An earlier call of the same caller with an approved summary: shown as caller history.
    old = CallScript(f"old-{unique}", caller_key=caller_key)
    for e in old.full():
        store.record(e)
    store.review_action(f"{old.call_id}-sum", "kim", "submit", None, None)
    store.review_action(f"{old.call_id}-sum", "boss", "approve", None, None)

    ctx = browser.new_context(
        viewport=VIEWPORT,
        locale="ko-KR",
        timezone_id="Asia/Seoul",
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = ctx.new_page()
    dialogs: list[str] = []
    dismiss_dialogs(page, dialogs)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # --- log-in (wrong password first)
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "kim")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert "맞지 않습니다" in page.inner_text(".error")
    page.screenshot(path=str(shots / "01-login-error.png"))
    _login(page, base, "kim")
    assert page.url.endswith("/desk")

    # --- a live call, produced to Kafka
    call = CallScript(f"live-{unique}", caller_key=caller_key)
    call.t0 = call.t0.__class__.now(call.t0.tzinfo)
    producer = EventProducer(kafka_settings)
    try:
        start = call.started()
        _send(producer, start)
        page.wait_for_selector("#call-state.oncall", timeout=30_000)
        _send(
            producer,
            call.segment(
                0, "네, 120 다산콜센터 상담사 김상담입니다. 무엇을 도와드릴까요?", Channel.counselor, t=0.5
            ),
            call.segment(1, "집 앞 횡단보도에", final=False, revision=0, t=3),
        )
        seg1 = f"{call.call_id}-caller-1"
        partial = page.wait_for_selector(f'[data-segment-id="{seg1}"].partial', timeout=30_000)
        assert partial is not None
        page.screenshot(path=str(shots / "02-counselor-partial.png"))
        _send(
            producer,
            call.segment(
                1,
                "집 앞 횡단보도에 차가 매일 서 있어서 아이들이 위험해요. 신고하려면 어떻게 하나요?",
                final=True,
                revision=1,
                t=3,
            ),
            call.segment(3, HOSTILE, final=True, t=9),
            call.keywords(["불법주차", "횡단보도", "신고"], 7),
            # a card the assist shed under load (the caller's words only) says so
            call.suggestion(1, seg1, 7.5).model_copy(update={"shed": True}),
        )
        page.wait_for_selector(f'[data-segment-id="{seg1}"].final', timeout=30_000)
        assert page.locator(f'[data-segment-id="{seg1}"]').count() == 1  # replaced in place
        page.wait_for_selector(".sugg", timeout=30_000)
        page.wait_for_selector(f'[data-segment-id="{call.call_id}-caller-3"]', timeout=30_000)
        hostile_text = page.inner_text(f'[data-segment-id="{call.call_id}-caller-3"] .text')
        assert (
            "<img src=x" in hostile_text
            and "010-2345-6789" not in hostile_text
            and "[전화번호]" in hostile_text
        )
        assert page.evaluate("window.__pwned") is None and not dialogs
        assert page.locator(".chip").all_inner_texts() == ["불법주차", "횡단보도", "신고"]
        assert "대화 맥락 없이" in page.inner_text(".sugg .shed")
        page.wait_for_selector("#history-box:not([hidden])", timeout=10_000)
        assert "주정차" in page.inner_text("#history")
        assert "스크립트 통화" in page.inner_text("#call-source")
        page.screenshot(path=str(shots / "03-counselor-live.png"))

        # citation → full article with its effective date
        page.click(".sugg .cite")
        page.wait_for_selector("#article-modal:not([hidden])")
        expect(page.locator("#article-meta")).to_contain_text("시행일")
        assert "정차" in page.inner_text("#article-text") and "2026-07-01" in page.inner_text("#article-meta")
        page.screenshot(path=str(shots / "04-citation-article.png"))
        page.click("#article-modal [data-close]")

        # feedback: 👎 with a reason, then copy the draft
        page.click(".sugg .bar button[aria-label='도움이 안 됨']")
        page.wait_for_selector(".sugg .reason:not([hidden])")
        page.fill(".sugg .reason input", "조문은 맞지만 신고 방법 안내가 없음")
        page.click(".sugg .reason button")
        page.click(".sugg .bar button.primary")
        expect(page.locator(".sugg .bar small")).to_contain_text("복사")

        # the websocket drops; events keep coming; it resumes with nothing missing or twice
        page.evaluate("window.__dasanLive.drop(4000)")
        page.wait_for_selector("#conn.bad", timeout=5_000)
        assert "재연결 중" in page.inner_text("#conn")
        _send(
            producer,
            call.segment(
                2, "안전신문고 앱에서 사진 두 장을 찍어 신고하실 수 있습니다.", Channel.counselor, t=12
            ),
            call.segment(4, "아 그렇군요 감사합니다", t=16),
        )
        page.screenshot(path=str(shots / "05-reconnecting.png"))
        page.wait_for_selector("#conn.ok", timeout=30_000)
        page.wait_for_selector(f'[data-segment-id="{call.call_id}-caller-4"]', timeout=30_000)
        ids = page.eval_on_selector_all("#transcript li", "els => els.map(e => e.dataset.segmentId)")
        assert len(ids) == len(set(ids)) == 5
        last_seq = int(page.get_attribute("#live", "data-last-seq"))
        assert last_seq == store.last_seq(call.call_id)

        # the same answer suggested again moves to the top instead of standing twice
        assert page.locator(".sugg").count() == 1
        _send(producer, call.suggestion(2, f"{call.call_id}-caller-4", 16.5))
        page.wait_for_selector(f'.sugg[data-suggestion-id="{call.call_id}-s2"]', timeout=30_000)
        assert page.locator(".sugg").count() == 1
        assert page.get_attribute(".sugg.latest", "data-suggestion-id") == f"{call.call_id}-s2"

        # supervisor board while the call is live
        sup = browser.new_context(
            viewport=VIEWPORT, locale="ko-KR", timezone_id="Asia/Seoul", bypass_csp=True
        )
        spage = sup.new_page()
        _login(spage, base, "boss")
        spage.wait_for_selector(f'#board tr[data-call-id="{call.call_id}"]', timeout=30_000)
        assert "kim" in spage.inner_text(f'#board tr[data-call-id="{call.call_id}"]')
        spage.screenshot(path=str(shots / "06-supervisor-board.png"))
        spage.click(f'#board tr[data-call-id="{call.call_id}"]')
        spage.wait_for_selector(".sugg")
        assert spage.locator(".sugg .bar").count() == 0  # read-only: no feedback buttons
        # how the card was made (provenance), for supervisors and QA only
        assert "만든 방법: 색인 3490314ea2" in spage.inner_text(".sugg .prov")
        assert page.locator(".sugg .prov").count() == 0
        spage.screenshot(path=str(shots / "07-supervisor-live-readonly.png"))

        # hang-up → summary, edited and submitted by the counselor
        _send(producer, call.ended(18), call.summary(19))
        page.wait_for_selector("#summary-box .summary-form", timeout=30_000)
        page.fill("#summary-box textarea >> nth=0", "횡단보도 앞 상습 불법 주차 신고 방법 문의")
        page.screenshot(path=str(shots / "08-summary-edit.png"))
        page.click("#summary-box button.primary")
        expect(page.locator("#summary-box")).to_contain_text("검토 대기")
    finally:
        producer.close()
    assert not errors, errors

    # supervisor approves it from the review queue
    spage.goto(f"{base}/reviews")
    spage.click(f"text={call.call_id}")
    spage.wait_for_selector("#review-form")
    spage.fill("textarea[name=comment]", "확인했습니다")
    spage.screenshot(path=str(shots / "09-review.png"))
    spage.click("button[value=approve]")
    spage.wait_for_selector(".badge.st-approved")
    assert "확인했습니다" in spage.inner_text("#review-history")
    spage.screenshot(path=str(shots / "10-review-approved.png"))
    spage.goto(f"{base}/stats")
    spage.screenshot(path=str(shots / "11-stats.png"))
    assert store.get_summary(f"{call.call_id}-sum").status == "approved"

    # QA: search, then replay at 4× and jump to a segment
    qa = browser.new_context(
        viewport=VIEWPORT, locale="ko-KR", timezone_id="Asia/Seoul", bypass_csp=True
    ).new_page()
    _login(qa, base, "qa1")
    qa.fill("input[name=q]", "안전신문고")
    qa.click("form.filters button")
    qa.wait_for_selector(f"#results >> text={call.call_id}")
    qa.screenshot(path=str(shots / "12-qa-search.png"))
    qa.goto(f"{base}/calls/{call.call_id}/replay")
    qa.wait_for_selector("#segments li")
    total = len(store.events_after(call.call_id, 0))
    qa.click("[data-speed='4']")
    qa.click("#play")
    qa.wait_for_selector("#transcript li", timeout=30_000)
    qa.click("#play")  # pause
    qa.locator("#segments button").nth(3).click()
    qa.wait_for_selector("#transcript li.highlight")
    applied = int(qa.get_attribute("#replay", "data-applied"))
    assert 0 < applied < total
    qa.click("#play")
    expect(qa.locator("#replay")).to_have_attribute("data-applied", str(total), timeout=60_000)
    assert qa.locator(".sugg").count() == 2  # a replay keeps every card, the repeated answer too
    assert "설정 47343fdc" in qa.inner_text(".sugg .prov")
    assert "아쉬움" in qa.inner_text(".side-panel") and "승인" in qa.inner_text("#review-history")
    qa.screenshot(path=str(shots / "13-qa-replay.png"))

    # QA may open the unmasked transcript; the read is audited
    qa.click("#raw-btn")
    expect(qa.locator("#article-text")).to_contain_text("010-2345-6789")
    qa.screenshot(path=str(shots / "14-qa-raw-audited.png"))
    entries = store.audit_entries(call.call_id, limit=500)
    assert entries[0]["username"] == "qa1" and entries[0]["action"] == "raw_transcript"
    # Every read of the call by QA (the replay page and its API reads) is on record too.
    assert {"call_view", "call_events"} <= {e["action"] for e in entries if e["username"] == "qa1"}
