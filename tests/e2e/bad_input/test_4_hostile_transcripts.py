"""4. Hostile transcripts in a real browser are shown literally; nothing executes (see the package
docstring)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from streaming.events import (
    Channel,
)
from streaming.kafka import EventProducer
from streaming.privacy import mask_text
from tests.console.conftest import CallScript
from tests.util import dismiss_dialogs

from .harness import COUNSELOR, PASSWORD, BadInputStack

pytestmark = pytest.mark.slow


HOSTILE = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '"><svg onload="window.__pwned=1">',
    '불법주차 신고요 </span></li><iframe src="javascript:window.__pwned=1"></iframe> 어디로 하나요?',
    "' onmouseover='window.__pwned=1' data-x='",
    "<b>굵게</b> &lt;이미 이스케이프&gt; &amp; {{7*7}} ${7*7} 😀 끝",
]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.mark.browser
def test_hostile_transcripts_are_shown_literally(stack: BadInputStack, artifacts_dir: Path) -> None:
    """Hostile strings injected at call.transcripts for a live call reach the counselor's page over the
    websocket and are shown as text: no element is created, nothing runs (the page's CSP would also
    block inline handlers, so the DOM and the CSP reports are checked, not only window.__pwned)."""
    from playwright.sync_api import sync_playwright

    call = CallScript(f"xss-{stack.suffix}", counselor=COUNSELOR, team="A")
    expected = {f"{call.call_id}-caller-{i}": mask_text(h) for i, h in enumerate(HOSTILE)}
    assert sum("window.__pwned" in t for t in expected.values()) >= 4  # masking left the payloads in
    shots = artifacts_dir / "e2e"
    shots.mkdir(parents=True, exist_ok=True)
    base = stack.url("console")
    with EventProducer(stack.kafka) as producer, sync_playwright() as pw:
        producer.send(call.started()).get(timeout=30)
        stack.wait_recorded(call.call_id)
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ko-KR").new_page()
            dialogs: list[str] = []
            errors: list[str] = []
            console_msgs: list[str] = []
            frames: list[str] = []
            dismiss_dialogs(page, dialogs)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: console_msgs.append(m.text))
            page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(str(p))))
            page.goto(f"{base}/login")
            page.fill("input[name=username]", COUNSELOR)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/desk")
            page.goto(f"{base}/calls/{call.call_id}")
            page.wait_for_selector("#call-state.oncall", timeout=30_000)
            assert frames, "the page has no websocket"
            for i, h in enumerate(HOSTILE):
                producer.send(call.segment(i, h, Channel.caller, t=2.0 * i))
            producer.flush()
            for seg_id, text in expected.items():
                node = page.wait_for_selector(f'[data-segment-id="{seg_id}"].final', timeout=30_000)
                assert node is not None
                shown = page.text_content(f'[data-segment-id="{seg_id}"] .text')
                assert shown == text, (seg_id, shown, text)
            # they came over the websocket (the page was loaded before they were produced)
            arrived = set()
            for f in frames:
                with contextlib.suppress(ValueError):
                    for item in json.loads(f).get("items", []):
                        if item["event"].get("type") == "segment":
                            arrived.add(item["event"]["segment_id"])
            assert set(expected) <= arrived
            page.screenshot(path=str(shots / "bad-input-hostile-transcript.png"), full_page=True)
            injected = page.locator(
                "#transcript script, #transcript img, #transcript svg, #transcript iframe, #transcript b, "
                "[onerror], [onload], [onmouseover]"
            ).count()
            assert injected == 0, "markup from a transcript became elements"
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert not dialogs, dialogs
            assert not errors, errors
            csp = [m for m in console_msgs if "Content Security Policy" in m or "Refused to" in m]
            assert not csp, csp
            assert page.locator("#transcript li").count() == len(HOSTILE)
        finally:
            browser.close()
    stack.assert_alive_and_ready("console")
