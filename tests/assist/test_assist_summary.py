"""Call summaries: masked throughout, categorised, with actions, regulations and entities;
and sane output on empty and garbage transcripts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from assist.eval_assist import call_turns, keyword_match
from assist.summary import Summarizer, Turn, extract_entities
from assist.taxonomy import CATEGORY_NAMES, OTHER, category_from_label
from assist.tracker import summary_event
from streaming.events import Channel, FollowUpKind


@pytest.fixture(scope="module")
def calls(shared_dir: Path) -> dict[str, dict[str, Any]]:
    lines = (shared_dir / "eval-dev" / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return {c["id"]: c for c in map(json.loads, lines)}


def test_summary_of_a_call_with_personal_data_is_masked(assistant: Any, calls: dict[str, Any]) -> None:
    call = calls["DCALL02"]
    parts = Summarizer(assistant).summarize(call_turns(call))
    ev = summary_event("c1", parts)
    blob = ev.model_dump_json()
    # the caller said part of a 주민번호, a mobile number and a street address
    for raw in ("구공공삼일오", "삼칠이구", "오팔사일", "이십일길", "열다섯"):
        assert raw not in blob
    assert parts.category == "주민등록"
    assert "성북구" in parts.entities.get("places", [])
    assert any(k == FollowUpKind.callback for k in (a.kind for a in parts.actions))
    assert set(parts.regulations_cited) & set(call["reference_summary"]["regulations_cited"])
    assert parts.counselor_answers and parts.call_reason


def test_summary_finds_transfer_and_topic_switch(assistant: Any, calls: dict[str, Any]) -> None:
    parts = Summarizer(assistant).summarize(call_turns(calls["DCALL03"]))
    assert parts.category in ("복지", "상수도요금")
    assert "전환" in parts.call_reason
    assert FollowUpKind.transfer in {a.kind for a in parts.actions}
    assert (
        "서울특별시_수도_조례/제40조" in parts.regulations_cited
        or "기초연금법/제3조" in parts.regulations_cited
    )


def test_call_reason_is_a_question_with_content_not_a_reaction(assistant: Any) -> None:
    """ "며칠 차이로요?" is rare words (차이, 며칠) around no subject: the reason is the real question."""
    summarizer = Summarizer(assistant)
    reason = summarizer._reason_sentence(["아… 며칠 차이로요? 그럼 재산세 고지서는 언제 나와요?"])
    assert "고지서" in reason and "며칠" not in reason
    assert summarizer._salience("며칠 차이로요?") == 0.0
    # an indirect question is the caller's question too (the opening of a call often is one)
    opening = summarizer._reason_sentence(
        ["아파트를 샀거든요. 근데 세금을 뭘 언제 내야 되는지 하나도 모르겠어서요."]
    )
    assert "세금" in opening and "아파트를 샀거든요" not in opening


@pytest.mark.parametrize(
    "turns",
    [
        [],
        [Turn(Channel.counselor, "120다산콜센터입니다.")],
        [Turn(Channel.caller, ""), Turn(Channel.caller, "   ")],
        [
            Turn(Channel.caller, "어… 네네"),
            Turn(Channel.counselor, "네 고객님"),
            Turn(Channel.caller, "ㅋㅋ ... ?!"),
        ],
        [Turn(Channel.caller, "@@@@ ### 1 2 3"), Turn(Channel.caller, "zzzzzz")],
    ],
)
def test_empty_and_garbage_transcripts(assistant: Any, turns: list[Turn]) -> None:
    parts = Summarizer(assistant).summarize(turns)
    ev = summary_event("c1", parts)
    assert ev.category == OTHER and ev.regulations_cited == [] and ev.call_reason


def test_entities() -> None:
    ents = extract_entities(
        ["5월 28일에 잔금 치렀고 20만 원이 나왔어요", "은평구 갈현동 단독주택이에요", "[전화번호]로 연락"]
    )
    assert "5월 28일" in ents["dates"] and "20만 원" in ents["amounts"]
    assert "은평구" in ents["places"] and "갈현동" in ents["places"]
    assert ents["personal_data_masked"] == ["[전화번호]"]


def test_taxonomy_labels() -> None:
    assert category_from_label("지방세(취득세·재산세 과세기준일)") == "지방세"
    assert category_from_label("버스전용차로 과태료 체납·징수유예·번호판 영치") == "과태료_의견진술"
    assert category_from_label("범위외") == OTHER
    assert len(set(CATEGORY_NAMES)) == len(CATEGORY_NAMES)


def test_keyword_match_rule() -> None:
    assert keyword_match("수도계량기", "계량기") and keyword_match("전입 신고", "전입신고")
    assert not keyword_match("주차", "주민등록증") and not re.search("x", "")
