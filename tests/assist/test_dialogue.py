"""Which caller turns only close the exchange (assist/dialogue.py): pure, no model."""

from __future__ import annotations

import pytest

from assist.dialogue import MAX_CHARS, is_closing, is_question


@pytest.mark.parametrize(
    "text",
    [
        "네, 알겠어요. 일단 의견서부터 내 볼게요. 감사합니다.",
        "네 감사합니다",
        "좋네요. 그럼 그렇게 해 볼게요. 고맙습니다!",
        "네… 고맙습니다. 잘 전해 줄게요.",
        "그럼 내일까지 서류 낼게요",  # 까지 ("until") is not …ㄹ까
        "알겠습니다 수고하세요",
        "네, 그렇게 해 주세요. 결과는 문자로 주시면 돼요. 감사합니다.",
    ],
)
def test_thanks_acknowledgements_and_promises_close(text: str) -> None:
    assert is_closing(text)


@pytest.mark.parametrize(
    "text",
    [
        "감사합니다. 그런데 과태료는 얼마예요",  # an interrogative word, no question mark (ASR)
        "그럼 서류만 내면 되나요 감사합니다",  # an interrogative ending
        "확인해 볼게요. 근데 그거 제가 해야 되는 거죠",
        "신청은 제가 할지 아들이 할지 모르겠네요 감사합니다",  # …ㄹ지
        "아 알겠어요 그럼 밤에 단속 좀 나와 달라고 해 주세요",  # a request, not a closing formula
        "감사합니다. 그런데 저희 아파트 주차장 문제도 있는데요",  # a new topic after thanks
        "이거 신고해도 돼요?",
        "",
        "감사합니다 " * (MAX_CHARS // 6 + 1),  # too long to be a closing
    ],
)
def test_questions_new_topics_and_requests_do_not(text: str) -> None:
    assert not is_closing(text)


def test_question_signs() -> None:
    assert is_question("이거 어디서 해요")
    assert is_question("그럼 벌금 낼까")
    assert not is_question("내일까지 낼게요")
    assert not is_question("네 알겠습니다")
