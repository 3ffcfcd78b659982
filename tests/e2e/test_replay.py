"""``dasan replay``, shadow mode and ``dasan feedback export`` end to end: recorded calls through the
live stack (with a shadow assist beside production), feedback through the console API, then a replay
with a candidate that differs, checked against the real feedback rows.

The console and the assist service run as their own processes (``dasan console run``, ``dasan assist
run``) on this package's broker; two eval-dev calls are played as scripted transcripts; the counselor
leaves 👍, "copied" and 👎 on live cards through the console's API; ``dasan replay --call … --set
DASAN_KB_ABSTAIN_BM25_THRESHOLD=…`` (a threshold no passage reaches: the candidate abstains on every
card) writes its report. Checked: the report has the two calls and exactly the console's cards,
each live card aligned with the candidate card of the same trigger segments, regressions and fixes
counted from the feedback rows the console holds, the HTML page renders in Chromium at 1366×768,
and nothing new reached the counselor's websocket or the production suggestion topic.

Shadow: a second assist (``DASAN_ASSIST_SHADOW=candidate``, another BM25 ``b``) in its own group on
the same broker writes to ``assist.suggestions.shadow``; the console records it apart (never on a
websocket) and shows QA the agreement per hour, which must equal a replay report made from the
shadow's output (``--from-shadow``). The judgements exported by ``dasan feedback export`` are scored
by the retrieval evaluation.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dasan.simulator import load_script, play_scripted_call
from dasan.stack import Service, Stack, add_user, dasan_exe
from streaming.events import CallSummary
from streaming.kafka import EventProducer
from streaming.settings import KafkaSettings
from streaming.topics import ASSIST_SUGGESTIONS, ASSIST_SUGGESTIONS_SHADOW
from tests.e2e.conftest import start_ready
from tests.e2e.test_faults import BM25_CONFIDENCE, Console, console_env, new_counselor
from tests.kafka_util import read_topic
from tests.util import wait_for

CHANGED = {"changed", "now_abstains", "dropped"}
SHADOW_ENV = {"DASAN_ASSIST_SHADOW": "candidate", "DASAN_KB_BM25_B": "0.3"}


def assist_env(unique: str) -> dict[str, str]:
    """The live assist: the slice's lexical index, BM25 confidence as in test_faults."""
    return {
        "DASAN_KB_DENSE_ENABLED": "false",
        "DASAN_KB_ABSTAIN_BM25_THRESHOLD": BM25_CONFIDENCE,
        "DASAN_ASSIST_GROUP_ID": f"assist-{unique}",
        "DASAN_ASSIST_SUMMARY_GRACE_MS": "500",
    }


def _cited(card: dict[str, Any]) -> list[str]:
    """The articles a console card's draft cites, in order."""
    doc_of = {p["passage_id"]: p["doc_id"] for p in card["passages"]}
    out: list[str] = []
    for s in card["draft"]["sentences"]:
        for c in s["citations"]:
            if doc_of[c] not in out:
                out.append(doc_of[c])
    return out


def _eval_retrieval(path: Path, index: Path, corpus: Path) -> dict[str, Any]:
    """``dasan eval retrieval``'s scoring, in this process, on the slice's lexical index."""
    from assist.knowledge import KnowledgeBase, KnowledgeSettings
    from assist.knowledge.eval_retrieval import evaluate, load_items

    settings = KnowledgeSettings(
        corpus_paths=[corpus], dense_enabled=False, abstain_bm25_threshold=float(BM25_CONFIDENCE)
    )
    return evaluate(KnowledgeBase.load(index, settings), load_items(path))


def _shadow_checks(
    port: int,
    qa_name: str,
    qa_password: str,
    calls: dict[str, Any],
    live: dict[str, list[dict[str, Any]]],
    env: dict[str, str],
    unique: str,
    tmp_path: Path,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The console's production-vs-shadow agreement (QA's API and stats page) against a replay report
    made from the shadow's output (``--from-shadow``): two implementations, one answer."""
    qa = Console(port, qa_name, qa_password)
    try:
        n_live = sum(len(v) for v in live.values())

        def agreement() -> list[dict[str, Any]] | None:
            # this test's calls only: the package's broker holds other tests' calls, which the
            # shadow follows too
            r = qa.http.get("/api/shadow/agreement", params={"hours": 2, "call_id": list(calls)})
            assert r.status_code == 200, r.text
            rows = [x for x in r.json() if x["variant"] == "shadow:candidate"]
            return (
                rows
                if sum(x["production"] for x in rows) == n_live and sum(x["matched"] for x in rows)
                else None
            )

        first = wait_for(agreement, 60, "the shadow's cards on the console")
        # the shadow's summaries are out (its last events): once two reads agree, all is recorded
        prev: list[list[dict[str, Any]] | None] = [first]

        def stable() -> list[dict[str, Any]] | None:
            now, prev[0] = agreement(), prev[0]
            same = now == prev[0]
            prev[0] = now
            return now if same else None

        rows = wait_for(stable, 30, "a stable count", interval=1.0)
        assert rows
        print(json.dumps(rows, ensure_ascii=False))
        page = qa.http.get("/stats").text
        assert "섀도 비교" in page and "shadow:candidate" in page
    finally:
        qa.close()
    out = tmp_path / "shadow-report"
    proc = subprocess.run(
        [
            dasan_exe(),
            "replay",
            *(a for cid in calls for a in ("--call", cid)),
            "--from-shadow",
            "candidate",
            "--out",
            str(out),
        ],
        env={**env, **assist_env(unique)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)
    rep = json.loads((out / "report.json").read_text())
    t = rep["totals"]
    both = sum(1 for c in rep["calls"] for p in c["pairs"] if p["live"] and p["candidate"])
    assert t["live_cards"] == sum(x["production"] for x in rows) == n_live
    assert both == sum(x["matched"] for x in rows)
    assert t["status"]["same"] == sum(x["same"] for x in rows)
    for c in rep["calls"]:
        for p in c["pairs"]:
            if p["candidate"]:
                assert p["candidate"]["provenance"]["variant"] == "shadow:candidate"
                assert p["candidate"]["suggestion_id"].startswith("sh-")
    return rep, rows


def _cards(console: Console, call_id: str) -> list[dict[str, Any]]:
    return [e["event"] for e in console.events(call_id) if e["event"]["type"] == "suggestion"]


@pytest.fixture()
def live_stack(e2e_env: dict[str, str], tmp_path: Path, unique: str) -> Iterator[Service]:
    """The console, the production assist and a shadow assist beside it (another BM25 length
    normalisation on the same index, its own group), started together; the console is returned."""
    stack = Stack(e2e_env, tmp_path / "services")
    console = Service.of("console", env=console_env(unique))
    production = Service.of("assist", env=assist_env(unique))
    shadow = Service.of("assist", name="assist-shadow", env={**assist_env(unique), **SHADOW_ENV})
    try:
        start_ready(stack, console, production, shadow)
        yield console
    finally:
        stack.stop()


@pytest.mark.timeout(240)
def test_replay_shadow_and_feedback_export_against_the_live_stack(
    live_stack: Service,
    e2e_env: dict[str, str],
    kafka_settings: KafkaSettings,
    shared_dir: Path,
    artifacts_dir: Path,
    slice_indexes: dict[str, Path],
    corpus_slice: Path,
    tmp_path: Path,
    unique: str,
) -> None:
    console_svc = live_stack
    name, password = new_counselor(e2e_env, unique)
    qa_name = f"qa-{unique}"
    qa_password = add_user(e2e_env, qa_name, "qa")
    scripts = {s.call_id: s for s in load_script(shared_dir / "eval-dev" / "calls.jsonl")}
    calls = {f"rp-{unique}-1": scripts["DCALL05"], f"rp-{unique}-2": scripts["DCALL01"]}

    async def play() -> None:
        with EventProducer(kafka_settings) as producer:
            await asyncio.gather(
                *(
                    play_scripted_call(producer, script, call_id=cid, counselor_id=name, speed=10.0)
                    for cid, script in calls.items()
                )
            )

    asyncio.run(play())
    console = Console(console_svc.port, name, password)
    try:
        for cid in calls:

            def summary_shown(cid: str = cid) -> bool:
                return any(e["event"]["type"] == "summary" for e in console.events(cid))

            wait_for(summary_shown, 90, f"the summary of {cid} on the console")
        live = {cid: _cards(console, cid) for cid in calls}
        answered = {cid: [c for c in cards if not c["draft"]["abstained"]] for cid, cards in live.items()}
        # a loaded machine merges segments that arrive while assist is busy: judge any three cards
        every = [c for cid in calls for c in answered[cid]]
        assert len(every) >= 2, f"too few answered cards to judge: {answered}"

        # the counselor's judgements, through the API as the browser sends them
        csrf = console.http.get("/search")
        token = csrf.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        hdr = {"X-CSRF-Token": token}
        # 👍 on the first, a copy of the second (of the first when there are only two), 👎 on the last
        up, copied, down = every[0], every[1 if len(every) > 2 else 0], every[-1]
        n_positive = len({up["suggestion_id"], copied["suggestion_id"]})
        for sid, path, body in (
            (up["suggestion_id"], "feedback", {"vote": "up"}),
            (copied["suggestion_id"], "copied", None),
            (down["suggestion_id"], "feedback", {"vote": "down", "reason": "엉뚱한 조문"}),
        ):
            r = console.http.post(f"/api/suggestions/{sid}/{path}", json=body, headers=hdr)
            assert r.status_code == 200, r.text
        rows = [f for cid in calls for f in console.http.get(f"/api/calls/{cid}/feedback").json()]
        assert len(rows) == 3

        # the judgements as evaluation data (the console's database is this package's: other calls too)
        export = tmp_path / "feedback.jsonl"
        proc = subprocess.run(
            [dasan_exe(), "feedback", "export", str(export)],
            env=e2e_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        print(proc.stdout)
        items = [json.loads(x) for x in export.read_text(encoding="utf-8").splitlines()]
        items = [i for i in items if i["source"]["call_id"] in calls]
        by_sug = {i["source"]["suggestion_id"]: i for i in items}
        assert set(by_sug) == {up["suggestion_id"], copied["suggestion_id"], down["suggestion_id"]}
        assert by_sug[up["suggestion_id"]]["relevant_article_ids"] == _cited(up)
        assert by_sug[copied["suggestion_id"]]["relevant_article_ids"] == _cited(copied)
        assert by_sug[down["suggestion_id"]]["known_wrong_article_ids"] == _cited(down)
        assert not by_sug[down["suggestion_id"]]["relevant_article_ids"]
        assert all(i["utterance"] and "010" not in i["utterance"] for i in items)
        mine = tmp_path / "mine.jsonl"
        mine.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
        scored = _eval_retrieval(mine, slice_indexes["lexical"], corpus_slice)
        assert scored["in_scope"] == n_positive and scored["out_of_scope"] == 0
        assert scored["known_wrong"]["items"] == 1

        followers = {cid: console.follow(cid) for cid in calls}
        for cid, f in followers.items():

            def caught_up(f: Any = f, cid: str = cid) -> bool:
                return len(f.items) == len(console.events(cid))

            wait_for(caught_up, 30, "the websocket caught up")
        seen = {cid: len(f.items) for cid, f in followers.items()}
        on_kafka = len(read_topic(kafka_settings, ASSIST_SUGGESTIONS, set(calls)))

        out = tmp_path / "replay"
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                dasan_exe(),
                "replay",
                *(a for cid in calls for a in ("--call", cid)),
                "--set",
                "DASAN_KB_ABSTAIN_BM25_THRESHOLD=1000000",
                "--out",
                str(out),
            ],
            env={**e2e_env, **assist_env(unique)},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "agreement" in proc.stdout and str(out / "report.html") in proc.stdout
        print(proc.stdout)
        report = json.loads((out / "report.json").read_text())
        # both commands read the console's store: audited as the operator who ran them
        from console.db import make_engine
        from console.settings import ConsoleSettings
        from console.store import Store

        cs = ConsoleSettings(database_url=e2e_env["DASAN_CONSOLE_DATABASE_URL"])
        audit_store = Store(make_engine(cs), cs.timezone)
        for cid in calls:
            audit_rows = audit_store.audit_entries(cid)
            assert any(
                r["action"] == "replay_read" and r["username"].startswith("cli:") for r in audit_rows
            ), audit_rows
        assert any(r["action"] == "feedback_export" for r in audit_store.audit_entries(None, limit=500))
        # --last: a time window selects them too (every partition read; other tests' calls may be there)
        from dasan.replay import from_kafka

        recent = from_kafka(kafka_settings, datetime.now(UTC) - timedelta(minutes=15), None)
        assert set(calls) <= set(recent.events)
        assert {cid: len(recent.live[cid]) for cid in calls} == {cid: len(live[cid]) for cid in calls}

        # nothing reached a counselor: no new websocket item, no new production suggestion
        time.sleep(1.5)  # what replay would have caused has had time to arrive
        assert {cid: len(f.items) for cid, f in followers.items()} == seen
        assert len(read_topic(kafka_settings, ASSIST_SUGGESTIONS, set(calls))) == on_kafka
        # the shadow: recorded for QA, never on the counselor's websocket; its agreement per hour
        wait_for(
            lambda: (
                sum(
                    isinstance(e, CallSummary)
                    for e in read_topic(kafka_settings, ASSIST_SUGGESTIONS_SHADOW, set(calls))
                )
                == len(calls)
            ),
            90,
            "the shadow's summaries",
        )
        shadow_rep, api = _shadow_checks(
            console_svc.port, qa_name, qa_password, calls, live, e2e_env, unique, tmp_path
        )
        for f in followers.values():
            assert not [e for e in f.of_type("suggestion") if not e["suggestion_id"].startswith("sg-")]
            assert len(f.of_type("suggestion")) == len(live[f.call_id])
            f.stop()
    finally:
        console.close()
    print(f"replay of 2 calls: {time.monotonic() - t0:.1f} s wall (process included)")

    # right calls, exactly the console's cards, each aligned by trigger segment
    assert [c["call_id"] for c in report["calls"]] == list(calls)
    assert all(c["origin"] == "kafka" for c in report["calls"])
    for call in report["calls"]:
        pairs = call["pairs"]
        got = sorted(p["live"]["suggestion_id"] for p in pairs if p["live"])
        assert got == sorted(c["suggestion_id"] for c in live[call["call_id"]])
        for p in pairs:
            if p["live"] and p["candidate"]:
                assert set(p["live"]["trigger_segment_ids"]) & set(p["candidate"]["trigger_segment_ids"])
            if p["candidate"]:
                assert p["candidate"]["abstained"]  # no passage reaches the candidate's threshold
                assert p["candidate"]["suggestion_id"].startswith("rp-")
                assert p["candidate"]["provenance"]["variant"].startswith("replay:")
            if p["live"]:
                assert p["live"]["provenance"]["variant"] == "production"
                if p["live"]["abstained"]:
                    assert p["status"] in ("same", "dropped")
                else:
                    assert p["status"] in ("now_abstains", "dropped")

    # regressions and fixes: the feedback rows the console holds, joined with the report's statuses
    status = {
        p["live"]["suggestion_id"]: p["status"] for c in report["calls"] for p in c["pairs"] if p["live"]
    }
    positive = {r["suggestion_id"] for r in rows if r["kind"] == "copy" or r["value"] == "up"}
    negative = {r["suggestion_id"] for r in rows if r["value"] == "down"}
    t = report["totals"]
    assert t["regressions"] == sum(status[s] in CHANGED for s in positive) == n_positive
    assert t["fixes"] == sum(status[s] in CHANGED for s in negative) == 1
    assert t["judged_cards"] == n_positive + 1
    assert t["calls"] == 2 and t["live_cards"] == sum(len(v) for v in live.values())
    assert t["abstention_candidate"] == 1.0 and t["agreement"] < 1.0
    by_id = {p["live"]["suggestion_id"]: p for c in report["calls"] for p in c["pairs"] if p["live"]}
    assert by_id[down["suggestion_id"]]["feedback"] == {"vote": "down", "copied": 0, "reason": "엉뚱한 조문"}
    assert by_id[copied["suggestion_id"]]["feedback"]["copied"] == 1
    # summaries: the candidate's beside the live one
    assert all(c["summary"]["candidate"] and c["summary"]["live"] for c in report["calls"])

    # the HTML page, in a real browser at 1366x768
    from playwright.sync_api import sync_playwright

    shots = artifacts_dir / "replay"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page(viewport={"width": 1366, "height": 768}, locale="ko-KR")
            page.goto((out / "report.html").as_uri())
            assert "재생 비교 보고서" in page.title()
            assert page.locator("section.call").count() == 2
            assert page.locator(".flag.reg").count() == n_positive and page.locator(".flag.fix").count() == 1
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1366, f"the report scrolls sideways at 1366 px: {width}"
            page.screenshot(path=str(shots / "replay-report.png"))
        finally:
            b.close()
