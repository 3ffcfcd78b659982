"""Masking that follows the conversation (issue 14): split numbers, names, new identifiers, and what
must survive. Real kiwipiepy model (``names="model"``, the default) and the rules-only mode.

``pii_cases.jsonl`` is the labelled set: spoken-Korean segments (one or several per case, on the
caller's or the counselor's channel) with the exact masked output expected, the raw fragments that
must not survive, and sentences full of districts, laws and numbers that must come out unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streaming import pii_names
from streaming.privacy import (
    ALL_MASKS,
    MASK_NAME,
    MASK_PHONE,
    MASK_RRN,
    ConversationMasker,
    NamesMode,
    find_pii,
    mask_text,
    normalize,
)

HERE = Path(__file__).parent
CASES = [
    json.loads(line) for line in (HERE / "pii_cases.jsonl").read_text(encoding="utf-8").splitlines() if line
]
PII = [c for c in CASES if c["pii"]]
KEEP = [c for c in CASES if not c["pii"]]


def run_case(case: dict[str, Any], names: NamesMode) -> list[str]:
    masker = ConversationMasker(names=names)
    return [masker.mask(case["id"], s["channel"], s["text"]) for s in case["segments"]]


def test_the_labelled_set_is_big_enough() -> None:
    assert len(PII) >= 60 and len(KEEP) >= 40
    assert len({c["id"] for c in CASES}) == len(CASES)
    ids = {c["id"] for c in PII}
    for issue_case in ("issue14-rrn-split", "issue14-rrn-dasi", "issue14-phone-filler", "issue14-name-intro"):
        assert issue_case in ids


@pytest.mark.parametrize("case", PII, ids=[c["id"] for c in PII])
def test_personal_data_is_masked(case: dict[str, Any]) -> None:
    got = run_case(case, "model")
    assert got == case["expected"]
    joined = "\n".join(got)
    for raw in case["raw"]:
        assert normalize(raw) not in joined


@pytest.mark.parametrize("case", [c for c in PII if c.get("needs") != "model"], ids=lambda c: c["id"])
def test_rules_mode_masks_the_same_without_the_model(case: dict[str, Any]) -> None:
    assert run_case(case, "rules") == case["expected"]


@pytest.mark.parametrize("case", KEEP, ids=[c["id"] for c in KEEP])
def test_places_laws_and_numbers_survive(case: dict[str, Any]) -> None:
    assert run_case(case, "model") == [normalize(s["text"]) for s in case["segments"]]
    assert [mask_text(s["text"]) for s in case["segments"]] == case["expected"]


def test_districts_neighbourhoods_laws_and_institutions_survive_next_to_names() -> None:
    text = (
        "송파구 강남구 상도동에서 왔고요, 도로교통법 때문에 다산콜센터에 전화했어요. 제 이름은 김철수입니다"
    )
    out = mask_text(text)
    for keep in ("송파구", "강남구", "상도동", "도로교통법", "다산콜센터"):
        assert keep in out
    assert out.endswith(f"제 이름은 {MASK_NAME}입니다")
    for word in ("송파", "강남", "신림", "김포", "상도"):  # surname-initial place stems
        assert pii_names.is_place(word)
        assert mask_text(f"{word}에 살아요") == f"{word}에 살아요"


def test_counselor_name_is_personal_data_too() -> None:
    masker = ConversationMasker()
    assert (
        masker.mask("c", "counselor", "120다산콜센터 상담사 김민지입니다")
        == f"120다산콜센터 상담사 {MASK_NAME}입니다"
    )


# ------------------------------------------------------------------ normalisation


def test_normalisation_full_width_dashes_and_zero_width() -> None:
    assert normalize("０１０－１２３４") == "010-1234"
    for dash in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d":
        assert normalize(f"010{dash}1234") == "010-1234"
    assert normalize("010\u200b1234\u00ad5678") == "01012345678"
    assert normalize("010ㅡ1234ㅡ5678") == "010-1234-5678"  # ㅡ typed as a dash
    assert normalize("ㅋㅋ 네 ㅠㅠ") == "ㅋㅋ 네 ㅠㅠ"  # compatibility jamo kept as typed
    assert normalize("٠١٠") == "010"  # any script's decimal digits
    assert mask_text("연락처 ０１０―１２３４―５６７８", names="rules") == f"연락처 {MASK_PHONE}"


def test_spans_refer_to_the_normalised_text() -> None:
    text = "번호는 ０１０－１２３４－５６７８"
    spans = find_pii(text)
    assert [(s.kind, normalize(text)[s.start : s.end]) for s in spans] == [(MASK_PHONE, "010-1234-5678")]


def test_masks_are_known_kinds_and_masking_is_idempotent() -> None:
    for case in PII:
        for out in run_case(case, "rules"):
            assert mask_text(out, names="rules") == out
            for i in range(len(out)):
                if out[i] == "[":
                    assert any(out.startswith(m, i) for m in ALL_MASKS), out


# ------------------------------------------------------------------ the conversation masker


def test_state_is_per_call_and_channel() -> None:
    m = ConversationMasker(names="rules")
    assert m.mask("a", "caller", "앞자리는 900101이고요") == f"앞자리는 {MASK_RRN}이고요"
    # another call, and the other channel of the same call, do not continue that number
    assert m.mask("b", "caller", "1234567이에요") == "1234567이에요"
    assert m.mask("a", "counselor", "1234567이에요") == "1234567이에요"
    assert m.mask("a", "caller", "1234567이에요") == f"{MASK_RRN}이에요"


def test_memory_is_bounded_in_segments_and_time() -> None:
    m = ConversationMasker(names="rules", max_segments=2, max_age_s=30)
    m.mask("a", "caller", "번호는 공일공 일이삼사", at=0.0)
    assert m.mask("a", "caller", "오육칠팔이요", at=40.0) == "오육칠팔이요"  # 40 s later: forgotten
    m.mask("a", "caller", "번호는 공일공 일이삼사", at=100.0)
    m.mask("a", "caller", "네", at=101.0)
    m.mask("a", "caller", "음", at=102.0)
    m.mask("a", "caller", "그러니까요", at=103.0)
    # the digits are out of the last two segments; only the open phone number is remembered
    assert m.mask("a", "caller", "오육칠팔이요", at=104.0) == f"{MASK_PHONE}이요"
    assert m.mask("a", "caller", "3시 반에 다시 걸게요", at=105.0) == "3시 반에 다시 걸게요"


def test_calls_are_forgotten_at_the_end_and_least_recently_used_first() -> None:
    m = ConversationMasker(names="rules", max_conversations=3)
    m.mask("a", "caller", "앞자리는 900101이고요")
    m.end_call("a")
    assert len(m) == 0
    assert m.mask("a", "caller", "1234567이에요") == "1234567이에요"
    for call in ("b", "c", "d", "e"):
        m.mask(call, "caller", "앞자리는 900101이고요")
    assert len(m) == 3
    assert m.mask("b", "caller", "1234567이에요") == "1234567이에요"  # b was dropped
    assert m.mask("e", "caller", "1234567이에요") == f"{MASK_RRN}이에요"


def test_redelivered_segments_get_the_same_answer_and_partials_are_not_remembered() -> None:
    m = ConversationMasker(names="rules")
    first = m.mask("a", "caller", "번호는 공일공 일이삼사", key="s1")
    assert m.mask("a", "caller", "번호는 공일공 일이삼사", key="s1") == first
    # a partial uses the memory but does not enter it
    assert m.mask("a", "caller", "그리고 오육칠팔", remember=False) == f"그리고 {MASK_PHONE}"
    assert m.mask("a", "caller", "그리고 오육칠팔이요", key="s2") == f"그리고 {MASK_PHONE}이요"


def test_long_text_is_processed_in_bounded_pieces() -> None:
    filler = "민원 내용을 말씀드리면요 " * 400  # about 5,600 characters
    out = mask_text(filler + "연락처는 010-1234-5678이에요 " + filler + "제 이름은 김철수입니다")
    assert out.count(MASK_PHONE) == 1 and out.endswith(f"제 이름은 {MASK_NAME}입니다")


# ------------------------------------------------------------------ eval-dev's PII items

# eval-dev's PII items (its README) and the raw fragments of each (benchmarks/masking_bench.py too)
EVAL_DEV_RAW: dict[str, list[str]] = json.loads((HERE / "eval_dev_pii.json").read_text(encoding="utf-8"))


def test_eval_dev_pii_items(shared_dir: Path) -> None:
    utterances = {
        d["id"]: d
        for d in map(
            json.loads,
            (shared_dir / "eval-dev" / "utterances.jsonl").read_text(encoding="utf-8").splitlines(),
        )
    }
    calls = {
        d["id"]: d
        for d in map(
            json.loads, (shared_dir / "eval-dev" / "calls.jsonl").read_text(encoding="utf-8").splitlines()
        )
    }
    masker = ConversationMasker()
    for item, raws in EVAL_DEV_RAW.items():
        if item in utterances:
            outs = [masker.mask(item, "caller", utterances[item]["utterance"])]
        else:
            speakers = {"citizen": "caller", "counselor": "counselor"}
            outs = [masker.mask(item, speakers[t["speaker"]], t["text"]) for t in calls[item]["turns"]]
        joined = "\n".join(outs)
        for raw in raws:
            assert raw not in joined, (item, raw)
    # the district and neighbourhood of DCALL02's address stay
    assert "성북구 정릉동" in joined and "정릉동 주민센터" in joined


# ------------------------------------------------------------------ the console's projection


def test_the_console_masks_transcripts_with_the_conversation(unique: str) -> None:
    from console.projection import CONVERSATIONS, payload_of
    from streaming.events import CallEnded, Channel, TranscriptSegment

    call = f"proj-{unique}"

    def seg(i: int, text: str, final: bool = True) -> TranscriptSegment:
        return TranscriptSegment(
            call_id=call,
            segment_id=f"{call}-{i}",
            channel=Channel.caller,
            start_s=2.0 * i,
            end_s=2.0 * i + 1.5,
            text=text,
            is_final=final,
            asr_model="test",
        )

    assert payload_of(seg(1, "앞자리는 900101이고요"))["text"] == f"앞자리는 {MASK_RRN}이고요"
    assert payload_of(seg(2, "뒤에는 1234", final=False))["text"] == f"뒤에는 {MASK_RRN}"  # a partial
    back = seg(2, "뒤에는 1234567이에요")
    assert payload_of(back)["text"] == f"뒤에는 {MASK_RRN}이에요"
    assert payload_of(back)["text"] == f"뒤에는 {MASK_RRN}이에요"  # a retried transaction: same text
    payload_of(CallEnded(call_id=call))
    assert payload_of(seg(3, "1234567이에요"))["text"] == "1234567이에요"  # forgotten at the end
    CONVERSATIONS.end_call(call)
