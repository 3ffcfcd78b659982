"""Knowledge-base versions and the counselor search, on small real indexes (tests/assist/kb_data.py):
the registry (activate, rollback), the corpus diff of ``dasan kb import``, the internal search API of
the assist service over HTTP, and a switch to an amended version in the middle of a call with the
real broker: the next card cites the new version, no segment is lost, nothing restarts."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from assist.assistant import Assistant
from assist.kb_switch import KbSwitch, announce, internal_routes, load_version
from assist.knowledge.corpus import load_records
from assist.knowledge.versions import UnknownVersion, VersionRegistry, corpus_diff
from assist.service import AssistService
from assist.settings import AssistSettings
from streaming.events import CallStarted, Channel, Suggestion
from streaming.health import HealthServer
from streaming.kafka import Record
from streaming.topics import ASSIST_SUGGESTIONS
from tests.assist.call_script import seg
from tests.assist.kb_data import AMENDED_ON, CACHE, FEE_TABLE, amended, waste_records
from tests.kafka_util import read_topic
from tests.util import wait_for


@pytest.fixture(scope="session")
def waste(shared_dir: Path) -> list[dict[str, Any]]:
    return waste_records(shared_dir)


@pytest.fixture(scope="session")
def kb_v1(waste_kbs: tuple[Any, Any]) -> Any:
    return waste_kbs[0]


@pytest.fixture(scope="session")
def kb_v2(waste_kbs: tuple[Any, Any]) -> Any:
    return waste_kbs[1]


def _built(base: Path, key: str, created: str) -> None:
    (base / key).mkdir(parents=True)
    manifest = {"key": key, "created": created, "records": 3, "passages": 4, "dense": False}
    (base / key / "manifest.json").write_text(json.dumps(manifest))


def test_registry_activates_lists_and_rolls_back(tmp_path: Path) -> None:
    _built(tmp_path, "aaa111", "2026-01-01T00:00:00+00:00")
    _built(tmp_path, "bbb222", "2026-02-01T00:00:00+00:00")
    reg = VersionRegistry(tmp_path, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC))
    assert reg.active() is None and reg.active_path() is None
    reg.activate("aaa111")
    reg.activate("bbb222")
    assert [(v.key, v.active) for v in reg.versions()] == [("bbb222", True), ("aaa111", False)]
    back = reg.rollback()
    assert back.key == "aaa111" and back.how == "rollback" and reg.active_path() == tmp_path / "aaa111"
    assert reg.rollback().key == "bbb222"  # rolling back a rollback goes forward again
    with pytest.raises(UnknownVersion):
        reg.activate("ccc333")
    assert [a.key for a in reg.state().history] == ["aaa111", "bbb222", "aaa111", "bbb222"]


def test_corpus_diff_names_added_amended_and_repealed(waste: list[dict[str, Any]]) -> None:
    old = load_records(waste)
    new = amended(waste)
    new = [r for r in new if not r["id"].endswith("/제1조")]
    new.append({**waste[0], "id": "서울특별시_강남구_폐기물_관리_조례/제99조", "text": "신설 조문"})
    diff = corpus_diff(old, load_records(new))
    assert diff.amended == [FEE_TABLE]
    assert diff.added == ["서울특별시_강남구_폐기물_관리_조례/제99조"]
    assert diff.repealed == sorted(r["id"] for r in waste if r["id"].endswith("/제1조"))
    assert not corpus_diff(old, old).changed


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_internal_search_and_article_versions_over_http(kb_v2: Any) -> None:
    assistant = Assistant(kb_v2, AssistSettings())
    server = HealthServer(
        "127.0.0.1", 0, lambda: (True, {}), routes=internal_routes(lambda: assistant, 0.15)
    ).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        q = urllib.parse.quote("대형폐기물 수수료")
        status, body = _get(f"{base}/internal/search?q={q}")
        assert status == 200 and body["index_key"] == kb_v2.key
        # without a district, another district's ordinance may come first; with one, its own does
        status, body = _get(f"{base}/internal/search?q={q}&district=%EA%B0%95%EB%82%A8%EA%B5%AC")  # 강남구
        first = body["results"][0]
        assert (
            first["record_id"] == FEE_TABLE and first["local"] and first["applies_in"] == "서울특별시 강남구"
        )
        assert first["effective_date"] == AMENDED_ON.isoformat()
        assert not any("송파구" in r["applies_in"] for r in body["results"])
        s, e = first["highlights"][0]
        assert first["sentence"][s:e] in ("대형폐기물", "수수료")
        # as of a day before the amendment, the old version answers
        status, body = _get(
            f"{base}/internal/search?q={q}&district=%EA%B0%95%EB%82%A8%EA%B5%AC&as_of=2026-10-01"
        )
        assert body["results"][0]["effective_date"] == "2025-09-26"
        status, art = _get(
            f"{base}/internal/article?id={urllib.parse.quote(FEE_TABLE)}&effective_date=2025-09-26"
        )
        assert status == 200 and art["effective_date"] == "2025-09-26"
        assert art["newer_version"] == AMENDED_ON.isoformat() and "개정 2026.11.1." not in art["text"]
        status, art = _get(
            f"{base}/internal/article?id={urllib.parse.quote(FEE_TABLE.replace('별표1', '제8조'))}"
        )
        assert status == 200 and art["newer_version"] is None
        assert "서울특별시_강남구_폐기물_관리_조례/별표1" in [a["record_id"] for a in art["appendices"]]
        assert _get(f"{base}/internal/search?q=")[0] == 400
        assert _get(f"{base}/internal/article?id=nope%2F1")[0] == 404
        assert _get(f"{base}/internal/kb")[1]["index_key"] == kb_v2.key
        assert _get(f"{base}/readyz")[0] == 200  # the health paths are still there
    finally:
        server.stop()


GANGNAM_FEE = "강남구 사는데요 장롱 같은 대형폐기물 버리려면 수수료가 얼마예요?"
GANGNAM_FEE_AGAIN = "강남구에서 침대 대형폐기물 수수료는 어떻게 부과돼요?"


def _compacted_topic(kafka_settings: Any, topic: str) -> None:
    """A topic of its own, as ``dasan topics create`` makes ``kb.versions`` (one partition, compacted)."""
    from kafka.admin import NewTopic

    from streaming.admin import admin_client

    admin = admin_client(kafka_settings)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        admin.close()


def _rec() -> Record:
    return Record("call.transcripts", 0, 0, int(time.time() * 1000))


def test_a_new_version_is_used_mid_call_without_restart(
    kb_v1: Any, kb_v2: Any, kafka_settings: Any, unique: str
) -> None:
    topic = f"kb.versions.{unique}"
    _compacted_topic(kafka_settings, topic)
    settings = AssistSettings(group_id=f"assist-{unique}", summary_grace_ms=0, kb_topic=topic)
    svc: AssistService | None = None
    switch = KbSwitch(
        kafka_settings,
        topic,
        lambda key: load_version(CACHE / key, settings, svc and svc.assistant),
        kb_v1.key,
        100,
    )
    svc = AssistService(Assistant(kb_v1, settings), settings, kafka_settings, instance="kb", kb_switch=switch)
    call = f"kbv-{unique}"
    switch.start()
    try:
        svc.handle(CallStarted(call_id=call, counselor_id="c7"), _rec())
        svc.handle(seg(call, "s1", Channel.caller, GANGNAM_FEE, 0.0), _rec())
        svc.tick()
        assert svc.kb_version == kb_v1.key
        announce(kafka_settings, topic, kb_v2.key, "activate")
        # the caller goes on speaking while the new version loads beside the old one
        svc.handle(seg(call, "s2", Channel.caller, GANGNAM_FEE_AGAIN, 6.0), _rec())
        wait_for(lambda: switch._pending is not None, 60, "the announced version loaded")
        svc.tick()
        assert svc.kb_version == kb_v2.key
        svc.producer.flush()
    finally:
        switch.stop()
        svc.close()
    sugg = [
        e
        for e in read_topic(kafka_settings, ASSIST_SUGGESTIONS, {call}, timeout_s=20)
        if isinstance(e, Suggestion)
    ]
    assert [s.trigger_segment_ids for s in sugg] == [["s1"], ["s2"]]  # no segment lost or repeated
    before = {p.doc_id: p.effective_date for p in sugg[0].passages}
    after = {p.doc_id: p.effective_date for p in sugg[1].passages}
    assert before[FEE_TABLE] == "2025-09-26"
    amended = after[FEE_TABLE]
    assert amended == AMENDED_ON.isoformat()
    assert date.fromisoformat(amended) <= date.today()
    # each card names the index version that made it
    assert [s.provenance.index_key if s.provenance else None for s in sugg] == [kb_v1.key, kb_v2.key]


def test_kb_list_import_activate_and_rollback_commands(
    kb_v1: Any,
    kb_v2: Any,
    waste: list[dict[str, Any]],
    kafka_settings: Any,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from kafka import KafkaConsumer, TopicPartition

    from assist.knowledge import cli

    index_dir = tmp_path / "kb"
    index_dir.mkdir()
    for kb in (kb_v1, kb_v2):
        (index_dir / kb.key).symlink_to(CACHE / kb.key)
    folder = tmp_path / "update"
    folder.mkdir()
    (folder / "waste.jsonl").write_text((CACHE / "v2.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    topic = f"kb.versions.cli.{unique}"
    _compacted_topic(kafka_settings, topic)
    monkeypatch.setenv("DASAN_KB_INDEX_DIR", str(index_dir))
    monkeypatch.setenv("DASAN_KB_CORPUS_PATHS", json.dumps([str(CACHE / "v1.jsonl")]))
    monkeypatch.setenv("DASAN_KB_DENSE_ENABLED", "false")
    monkeypatch.setenv("DASAN_KAFKA_BOOTSTRAP", kafka_settings.bootstrap)
    monkeypatch.setenv("DASAN_ASSIST_KB_TOPIC", topic)
    parser = argparse.ArgumentParser(prog="dasan")
    sub = parser.add_subparsers(dest="command", required=True)
    groups = {"eval": sub.add_parser("eval").add_subparsers(dest="eval_command")}
    cli.register(sub, groups)

    def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(["kb", *argv])
        code = args.func(args)
        return code, capsys.readouterr().out

    code, out = run("list")
    assert code == 0 and kb_v1.key in out and kb_v2.key in out and "none activated" in out
    code, out = run("import", str(folder), "--dry-run")
    assert code == 0 and "added 0, amended 1, repealed 0" in out and FEE_TABLE in out
    code, out = run("activate", kb_v1.key[:8], "--no-announce")
    assert code == 0 and f"active: {kb_v1.key}" in out
    code, out = run("activate", kb_v2.key)
    assert code == 0 and "announced" in out
    code, out = run("rollback", "--no-announce")
    assert code == 0 and f"active: {kb_v1.key}" in out
    assert run("activate", "zzz")[0] == 1
    # the announcement: the last record of the compacted topic names the version
    consumer = KafkaConsumer(**kafka_settings.consumer_config(None))
    try:
        assert consumer.partitions_for_topic(topic) == {0}
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        deadline = time.monotonic() + 15
        while not values and time.monotonic() < deadline:
            values = [r.value for recs in consumer.poll(timeout_ms=500).values() for r in recs]
    finally:
        consumer.close()
    assert values and json.loads(values[-1])["key"] == kb_v2.key
