"""A call summary reuses the query vectors its live cards made (the encoder's query cache, #18).

A real dense index over the assist slice (EmbeddingGemma, short token cap) and a labelled call played
as the service lives it (:class:`assist.replay.Replayer`: cards, then the summary at the end). The
encoder's own counters say how many texts the summary sent to the model, with the cache off and on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assist.assistant import Assistant
from assist.knowledge.query_cache import QueryVectorCache
from assist.replay import Replayer
from assist.settings import AssistSettings
from streaming.events import CallEnded, CallStarted, Channel, Event, TranscriptSegment
from tests.util import short_memory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dense_assistant(
    assist_slice: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Assistant:
    from assist.knowledge import KnowledgeBase, KnowledgeSettings, ensure_embedding_model

    settings = KnowledgeSettings(
        embedding_model_path=ensure_embedding_model(progress=False),
        index_dir=tmp_path_factory.mktemp("reuse-kb"),
        max_seq_length=32,  # quality is not measured here: a short cap builds the slice quickly
        query_cache=256,
        memory_questions_path=short_memory(tmp_path_factory.mktemp("reuse-memory")),
    )
    return Assistant(KnowledgeBase.build(assist_slice, settings), AssistSettings())


def call_events(call: dict[str, Any], call_id: str) -> list[Event]:
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    evs: list[Event] = [CallStarted(call_id=call_id, counselor_id="c1", produced_at=t0)]
    t = 0.0
    for i, turn in enumerate(call["turns"]):
        ch = Channel.counselor if turn["speaker"] == "counselor" else Channel.caller
        evs.append(
            TranscriptSegment(
                call_id=call_id,
                segment_id=f"{call_id}-{i:03d}",
                channel=ch,
                start_s=t,
                end_s=t + 3.0,
                text=turn["text"],
                is_final=True,
                asr_model="scripted",
                produced_at=t0 + timedelta(seconds=t + 3.0),
            )
        )
        t += 4.0
    evs.append(CallEnded(call_id=call_id, produced_at=t0 + timedelta(seconds=t)))
    return evs


def summary_work(assistant: Assistant, call: dict[str, Any], call_id: str) -> dict[str, Any]:
    """Replay the call; what its summary sent to the encoder (texts, batches, cache hits)."""
    enc = assistant.kb.encoder
    replayer = Replayer(assistant, call_id)
    real = replayer.summarizer.summarize
    seen: dict[str, Any] = {}

    def counting(turns: Any, cards: Any = None) -> Any:
        t, b, h = enc.query_texts, enc.query_batches, enc.query_cache.hits
        parts = real(turns, cards)
        seen.update(texts=enc.query_texts - t, batches=enc.query_batches - b, hits=enc.query_cache.hits - h)
        return parts

    replayer.summarizer.summarize = counting  # type: ignore[method-assign]  # counts around the real one
    run = replayer.run(call_events(call, call_id))[0]
    assert run.errors == 0 and run.summary is not None and run.suggestions
    return seen | {"summary": run.summary}


def test_a_summary_after_live_cards_embeds_fewer_texts(dense_assistant: Assistant, shared_dir: Path) -> None:
    lines = (shared_dir / "eval-dev" / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    call = next(c for c in map(json.loads, lines) if c["id"] == "DCALL02")  # 주민등록: in the slice
    enc = dense_assistant.kb.encoder
    cache = enc.query_cache
    try:
        enc.query_cache = QueryVectorCache(0, enc.fingerprint)  # off: the summary embeds all it asks
        before = summary_work(dense_assistant, call, "reuse-off")
    finally:
        enc.query_cache = cache
    cache.clear()  # on, with only this call's live vectors in it
    after = summary_work(dense_assistant, call, "reuse-on")

    assert before["hits"] == 0 and before["texts"] > 0
    assert after["hits"] > 0
    assert after["texts"] < before["texts"]
    assert after["texts"] + after["hits"] == before["texts"]  # the same questions, asked of the cache
    assert after["batches"] <= before["batches"]
    assert after["summary"].category == before["summary"].category
