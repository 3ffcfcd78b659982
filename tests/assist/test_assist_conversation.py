"""What a retrieval is asked in a call (assist.assistant.conversation_for): the caller's recent
turns, the counselor's last turn before them, the conversation so far and the district named."""

from __future__ import annotations

from typing import Any

from assist.assistant import conversation_for

CALL = [
    ("counselor", "네, 120다산콜센터입니다."),
    ("caller", "아파트를 샀는데 취득세 신고는 언제까지 해야 돼요? 송파구예요."),
    ("counselor", "취득세는 취득일부터 60일 이내에 신고하고 납부하셔야 합니다."),
    ("caller", "아 그렇구나. 만약에 그 60일을 넘기면요?"),
]


def test_a_follow_up_carries_the_counselors_answer_and_the_topic(assistant: Any) -> None:
    cv = conversation_for(assistant, CALL)
    assert "60일을 넘기면요" in cv.text
    assert cv.counselor == CALL[2][1]
    assert "취득세 신고" in cv.history and "만약에" not in cv.history
    assert cv.district == "송파구" and cv.filters is not None
    v = cv.variants()
    assert v["t"] == cv.text and v["c"].startswith(cv.text) and "취득일부터" in v["c"]


def test_a_first_question_has_no_context(assistant: Any) -> None:
    cv = conversation_for(assistant, CALL[:2])
    assert cv.counselor == "네, 120다산콜센터입니다." and cv.history == CALL[0][1]
    alone = conversation_for(assistant, [("caller", "불법주차 신고는 어디로 해요?")])
    assert alone.counselor == "" and alone.history == "" and alone.variants()["h"] == alone.text


def test_two_trigger_turns_are_both_the_question(assistant: Any) -> None:
    turns = [*CALL, ("caller", "가산세가 얼마나 붙어요?")]
    cv = conversation_for(assistant, turns, n_trigger=2)
    assert "가산세" in cv.text and "60일을 넘기면요" in cv.text
    assert "만약에" not in cv.history and cv.counselor == CALL[2][1]


def test_warm_up_runs_a_follow_up_through_every_stage(assistant: Any) -> None:
    """The service's start-up warm-up (assist/cli.py): a real suggestion on a follow-up question, so
    the first caller's card does not pay for lazy set-up; it leaves no call state behind."""
    calls: list[Any] = []
    original = assistant.suggest_many

    def spy(requests: Any) -> Any:
        out = original(requests)
        calls.append(out)
        return out

    assistant.suggest_many = spy
    try:
        seconds = assistant.warm_up()
    finally:
        del assistant.suggest_many
    assert seconds > 0 and len(calls) == 1
    (result,) = calls[0]
    assert result.request.call_id == "warm-up" and len(result.request.conversation) == 3
    assert result.keywords and (result.passages or result.draft.abstained)
