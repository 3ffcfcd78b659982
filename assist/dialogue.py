"""What kind of turn a caller's final segment is, from its words alone (pure, no model).

One decision so far: a **closing** — the caller thanks the counselor or says what they will do next
("네, 알겠어요. 일단 의견서부터 내 볼게요. 감사합니다.") and asks nothing. A closing may repeat a
topic word of the call (의견서), which made it a new card's trigger; a counselor needs no new card
for it, so the tracker lets it pass (it stays in the conversation the next question reads).

A turn is a closing only when it *ends* with a thanks or acknowledgement formula or a promise
(…ㄹ게요), and carries no sign of a question anywhere: no ``?``, no interrogative word, no
interrogative ending. Recognisers drop question marks, so the words and endings are what count;
anything unsure is treated as a question (a card too many costs less than a question missed).
No regular expressions: plain suffix and substring tests on a bounded text.
"""

from __future__ import annotations

MAX_CHARS = 400  # a closing is short; a longer turn is never treated as one

# the turn ends with one of these (after trailing punctuation and fillers are stripped)
_CLOSING_ENDS = (
    "감사합니다",
    "감사해요",
    "감사드려요",
    "감사드립니다",
    "고맙습니다",
    "고마워요",
    "수고하세요",
    "수고하십시오",
    "수고하셨습니다",
    "수고 많으세요",
    "알겠습니다",
    "알겠어요",
    "알았어요",
    "그럴게요",
)
# interrogative words: their presence anywhere makes the turn a question
_QUESTION_WORDS = (
    "어떻게",
    "어떡",
    "어디",
    "언제",
    "얼마",
    "왜",
    "뭐",
    "뭘",
    "무엇",
    "무슨",
    "누가",
    "누구",
    "몇",
    "어느",
    "어떤",
    "어때",
)
# interrogative endings (with or without a question mark)
# (…ㄹ지 after any ㄹ-final syllable, 을지 included, is _rieul_question's)
_QUESTION_ENDINGS = ("나요", "까요", "가요", "는지", "죠", "을까", "습니까", "니까요")
_TRAILING = " \t\r\n.,!~…·-ㅎㅋ"


def _has_final_rieul(syllable: str) -> bool:
    """Whether a precomposed Hangul syllable ends in ㄹ (할, 볼, 줄, 드릴 …)."""
    code = ord(syllable) - 0xAC00
    return 0 <= code < 11172 and code % 28 == 8


def _ends_with_promise(t: str) -> bool:
    """…ㄹ게요 / …ㄹ게: the caller says what they will do (할게요, 내 볼게요, 전할게요)."""
    for tail in ("게요", "께요", "게"):
        if t.endswith(tail) and len(t) > len(tail) and _has_final_rieul(t[-len(tail) - 1]):
            return True
    return False


def _rieul_question(t: str) -> bool:
    """…ㄹ까 / …ㄹ지 (할까, 될지): a syllable ending in ㄹ before 까 (not 까지, "until") or 지."""
    for i in range(1, len(t)):
        if not _has_final_rieul(t[i - 1]):
            continue
        if t[i] == "지" or (t[i] == "까" and t[i + 1 : i + 2] != "지"):
            return True
    return False


def is_question(text: str) -> bool:
    """Any sign of a question: a question mark, an interrogative word or ending."""
    if "?" in text or "？" in text:
        return True
    if any(w in text for w in _QUESTION_WORDS):
        return True
    return any(e in text for e in _QUESTION_ENDINGS) or _rieul_question(text)


def is_closing(text: str) -> bool:
    """The caller closes (thanks, acknowledges, says what they will do) and asks nothing."""
    t = text.strip()
    if not t or len(t) > MAX_CHARS or is_question(t):
        return False
    t = t.rstrip(_TRAILING)
    return t.endswith(_CLOSING_ENDS) or _ends_with_promise(t)
