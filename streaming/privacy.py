"""Masking of personal data in Korean call text — the privacy contract every package applies.

``mask_text(text)`` returns the text with each piece of personal data replaced by its kind
(``[주민번호]``, ``[전화번호]`` …). It runs before text is stored, indexed, logged or sent to a
model, and the console applies it on display to raw transcripts. ``find_pii(text)`` returns the
spans (start, end, kind) it would replace.

What is detected, in the forms a caller says them and a recogniser writes them:

- numbers written as digits (``010-1234-5678``, ``01012345678``, ``0 1 0 1 2 3 4 …``), read out
  digit by digit in Sino-Korean (``공일공 일이삼사에 오육칠팔``) or native Korean (``하나 둘 셋``),
  with the spoken separators ``에`` and ``다시`` and a trailing copula (``…팔이에요``);
- 주민등록번호 / 외국인등록번호 (13 digits with a valid birth date, checksum checked; numbers issued
  since October 2020 carry no checksum, so a ``6-7`` grouping with a valid date counts too; a
  6-digit birth date followed by ``-``/``다시`` and the start of the back half is a partial one);
- mobile and landline numbers (010…, 02…, 0XX…; a bare ``NNNN-NNNN`` only next to 번호/연락처);
- card numbers (14–16 digits passing the Luhn check), bank accounts (10–14 digits with account
  grouping or next to 계좌/통장/은행), other long identifiers (``[번호]``);
- e-mail (also ``골뱅이`` / ``점`` spoken), vehicle plates (``12가 3456``, ``삼사나 칠칠팔일``),
  dates of birth (``…생``), and street addresses at the level of road + building number, lot
  number (번지) or apartment unit (동·호). The district and neighbourhood (``성북구 정릉동``) are
  kept: they route the call and identify no one.

Never masked: dates, times, amounts (``30만 원``, ``1,200,000원``), counts, article numbers
(``제32조제1항``), business numbers (1588-…), short numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MASK_RRN = "[주민번호]"
MASK_FRN = "[외국인등록번호]"
MASK_PHONE = "[전화번호]"
MASK_CARD = "[카드번호]"
MASK_ACCOUNT = "[계좌번호]"
MASK_EMAIL = "[이메일]"
MASK_ADDRESS = "[주소]"
MASK_VEHICLE = "[차량번호]"
MASK_BIRTH = "[생년월일]"
MASK_NUMBER = "[번호]"

ALL_MASKS = (
    MASK_RRN,
    MASK_FRN,
    MASK_PHONE,
    MASK_CARD,
    MASK_ACCOUNT,
    MASK_EMAIL,
    MASK_ADDRESS,
    MASK_VEHICLE,
    MASK_BIRTH,
    MASK_NUMBER,
)


@dataclass(frozen=True)
class MaskSpan:
    start: int
    end: int
    kind: str


# ----------------------------------------------------------------------------- digit tokens

_SINO = {"공": "0", "영": "0", "일": "1", "이": "2", "삼": "3", "사": "4", "오": "5", "육": "6", "륙": "6"}
_SINO.update({"칠": "7", "팔": "8", "구": "9"})
_NATIVE = {
    "하나": "1",
    "둘": "2",
    "셋": "3",
    "넷": "4",
    "다섯": "5",
    "여섯": "6",
    "일곱": "7",
    "여덟": "8",
    "아홉": "9",
}
_KOREAN_DIGIT_WORDS = sorted(list(_NATIVE) + list(_SINO), key=len, reverse=True)
# What may follow digits inside one spoken word: separators and particles/copulas.
_PARTICLES = (
    "이에요",
    "이예요",
    "이고요",
    "이구요",
    "이거든요",
    "이요",
    "이고",
    "이랑",
    "이야",
    "입니다",
    "예요",
    "에요",
    "이죠",
    "고요",
    "구요",
    "요",
    "에",
    "고",
    "랑",
    "번",
    "번이요",
    "번이에요",
    "번입니다",
    "번이고",
    "로",
    "으로",
    "이라고",
    "라고",
)
_WORD = re.compile(r"[0-9]+|[가-힣]+|[-.·]")
_SEPARATOR_WORDS = {"다시", "-", ".", "·", "에"}
_AFTER_NOT_ID = re.compile(
    r"^\s*(?:원|만|억|천|년|월|일|시|분|초|개|명|세|살|층|호|번째|퍼센트|%|km|킬로|미터|m\b|조|항|목|회|대|장|건|배|가구|세대)"
)


@dataclass
class _Digits:
    """The digit tokens of one word: digits and where each came from."""

    digits: str
    start: int
    end: int
    optional_last: bool = False  # a trailing 이 that may be the copula rather than the digit 2
    spoken: bool = False


def _parse_korean_digits(word: str) -> tuple[str, int, bool] | None:
    """Digits read out in Korean: ``(digits, chars used, trailing 이 ambiguous)`` or None."""
    i, out, last_was_i = 0, [], False
    while i < len(word):
        for w in _KOREAN_DIGIT_WORDS:
            if word.startswith(w, i):
                out.append(_SINO.get(w) or _NATIVE[w])
                last_was_i = w == "이"
                i += len(w)
                break
        else:
            break
    if not out:
        return None
    rest = word[i:]
    if rest and rest not in _PARTICLES:
        # ``…이`` + a particle that itself starts after 이 (팔이에요 → 팔 + 이에요)
        if last_was_i and ("이" + rest) in _PARTICLES:
            return "".join(out[:-1]), i - 1, False
        return None
    ambiguous = last_was_i and rest in ("에요", "요", "고", "고요", "구요", "랑", "야", "죠", "")
    return "".join(out), i, ambiguous


def _digit_words(text: str) -> list[_Digits | str]:
    """The text as a list of digit words and separator markers ('|' breaks a run)."""
    items: list[_Digits | str] = []
    for m in _WORD.finditer(text):
        w = m.group()
        if w in _SEPARATOR_WORDS:
            items.append(w)
            continue
        if w.isdigit():
            items.append(_Digits(w, m.start(), m.end()))
            continue
        parsed = _parse_korean_digits(w)
        if parsed is not None and parsed[0]:
            digits, used, ambiguous = parsed
            items.append(_Digits(digits, m.start(), m.start() + used, ambiguous, spoken=True))
            if w[used:].endswith("에") and len(w[used:]) == 1:
                items.append("에")
            continue
        items.append("|")
    return items


def _gap_ok(text: str, a: int, b: int) -> bool:
    """Only spaces, hyphens, dots and spoken separators between two digit words."""
    gap = text[a:b]
    return re.fullmatch(r"[\s\-.·,()]*(?:(?:에|다시)[\s\-.·,()]*)*", gap) is not None


@dataclass
class _Run:
    groups: list[_Digits]
    start: int
    end: int

    @property
    def digits(self) -> str:
        return "".join(g.digits for g in self.groups)


def _runs(text: str) -> list[_Run]:
    runs: list[_Run] = []
    cur: list[_Digits] = []
    for item in _digit_words(text):
        if isinstance(item, str):
            if item == "|":
                if cur:
                    runs.append(_Run(cur, cur[0].start, cur[-1].end))
                cur = []
            continue
        if cur and not _gap_ok(text, cur[-1].end, item.start):
            runs.append(_Run(cur, cur[0].start, cur[-1].end))
            cur = []
        cur.append(item)
    if cur:
        runs.append(_Run(cur, cur[0].start, cur[-1].end))
    return runs


# ----------------------------------------------------------------------------- validators


def _valid_yymmdd(s: str) -> bool:
    if len(s) != 6 or not s.isdigit():
        return False
    mm, dd = int(s[2:4]), int(s[4:6])
    return 1 <= mm <= 12 and 1 <= dd <= 31


def rrn_checksum_ok(digits: str) -> bool:
    """주민등록번호 check digit (weights 2..9,2..5, mod 11); foreigner numbers add 2."""
    if len(digits) != 13 or not digits.isdigit():
        return False
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    total = sum(int(d) * w for d, w in zip(digits[:12], weights, strict=True))
    check = (11 - total % 11) % 10
    if int(digits[12]) == check:
        return True
    return digits[6] in "5678" and int(digits[12]) == (check + 2) % 10


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit() or len(digits) < 12:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_PHONE_RES = (
    re.compile(r"01[016789]\d{7,8}"),
    re.compile(r"02\d{7,8}"),
    re.compile(r"0[3-6][1-5]\d{7,8}"),
    re.compile(r"0(?:70|50\d?)\d{7,8}"),
)
_ACCOUNT_CONTEXT = re.compile(r"계좌|통장|은행|입금|이체|송금|뱅크|농협|신협|우체국|새마을금고")
_PHONE_CONTEXT = re.compile(r"번호|연락처|전화|핸드폰|휴대폰|폰|연락")
_RRN_CONTEXT = re.compile(r"주민|등록번호|외국인")


def _classify(digits: str, groups: list[str], before: str) -> str | None:
    n = len(digits)
    if any(p.fullmatch(digits) for p in _PHONE_RES):
        return MASK_PHONE
    if n == 13 and _valid_yymmdd(digits[:6]) and digits[6] in "12345678":
        foreign = digits[6] in "5678"
        if rrn_checksum_ok(digits) or (groups and len(groups[0]) == 6):
            return MASK_FRN if foreign else MASK_RRN
    if 14 <= n <= 16 and luhn_ok(digits):
        return MASK_CARD
    if 10 <= n <= 14 and (len(groups) >= 2 or _ACCOUNT_CONTEXT.search(before)):
        return MASK_ACCOUNT
    if n >= 9:
        return MASK_NUMBER
    return None


def _number_spans(text: str) -> list[MaskSpan]:
    spans: list[MaskSpan] = []
    for run in _runs(text):
        before = text[max(0, run.start - 20) : run.start]
        after = text[run.end :]
        variants = [run.groups]
        if run.groups[-1].optional_last:
            last = run.groups[-1]
            trimmed = _Digits(last.digits[:-1], last.start, last.end - 1, False, last.spoken)
            head = [*run.groups[:-1], trimmed] if trimmed.digits else run.groups[:-1]
            variants = [head, run.groups] if head else [run.groups]
        found: MaskSpan | None = None
        for groups in variants:
            digits = "".join(g.digits for g in groups)
            if _AFTER_NOT_ID.match(after) and not any(g.spoken for g in groups) and len(digits) < 13:
                break
            sub = _Run(groups, groups[0].start, groups[-1].end)
            partial = _partial_spans(text, sub, before)
            kind = _classify(digits, [g.digits for g in groups], before)
            if partial and kind in (None, MASK_NUMBER, MASK_ACCOUNT):
                spans.extend(partial)
                found = partial[0]
                break
            if kind:
                found = MaskSpan(sub.start, sub.end, kind)
                spans.append(found)
                break
    return spans


def _partial_spans(text: str, run: _Run, before: str) -> list[MaskSpan]:
    """Partial identifiers: the front of a 주민번호 and the start of its back; NNN(N)-NNNN numbers."""
    out: list[MaskSpan] = []
    gs = run.groups
    for i, g in enumerate(gs):
        if len(g.digits) == 6 and _valid_yymmdd(g.digits):
            nxt = gs[i + 1] if i + 1 < len(gs) else None
            gap = text[g.end : nxt.start] if nxt else ""
            starts_back = (
                nxt is not None
                and nxt.digits[:1] in set("12345678")
                and re.search(r"-|다시", gap) is not None
            )
            if starts_back or _RRN_CONTEXT.search(text[max(0, g.start - 20) : g.start]):
                end = nxt.end if starts_back and nxt else g.end
                # a back half spoken after the front, e.g. 구공공삼일오에 다시 이공사…
                if starts_back and nxt and len(nxt.digits) <= 7:
                    kind = MASK_FRN if nxt.digits[0] in "5678" else MASK_RRN
                    return [MaskSpan(g.start, end, kind)]
                return [MaskSpan(g.start, end, MASK_RRN)]
    digits = run.digits
    if (
        len(gs) == 2
        and len(gs[0].digits) in (3, 4)
        and len(gs[1].digits) == 4
        and not re.fullmatch(r"1[5-9]\d\d", gs[0].digits)
        and _PHONE_CONTEXT.search(before)
        and not _AFTER_NOT_ID.match(text[run.end :])
    ):
        out.append(MaskSpan(run.start, run.end, MASK_PHONE))
    elif len(digits) == 6 and _RRN_CONTEXT.search(before) and _valid_yymmdd(digits):
        out.append(MaskSpan(run.start, run.end, MASK_RRN))
    return out


# ----------------------------------------------------------------------------- other patterns

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_EMAIL_SPOKEN = re.compile(
    r"[A-Za-z0-9._\-]+\s*(?:골뱅이|앳|at)\s*[A-Za-z0-9\-]+(?:\s*(?:\.|점|닷)\s*(?:com|net|org|kr|co|go|ac|or|컴|넷|케이알))+",
    re.IGNORECASE,
)
_PLATE_CHARS = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주아바사자배하허호"
_REGIONS = "서울|부산|대구|인천|광주|대전|울산|세종|경기|강원|충북|충남|전북|전남|경북|경남|제주"
_SINO_CHARS = "공영일이삼사오육륙칠팔구"
_PLATE = re.compile(
    rf"(?:(?:{_REGIONS})\s*)?(?<![0-9])\d{{2,3}}\s*[{_PLATE_CHARS}]\s*\d{{4}}(?![0-9])"
    rf"|(?:(?:{_REGIONS})\s*)?(?<![가-힣])[{_SINO_CHARS}]{{2,3}}[{_PLATE_CHARS}]\s+[{_SINO_CHARS}]{{4}}(?=[^가-힣]|$|이|요|예|에|입|번)"
)
_KNUM = r"(?>[0-9]++|[일이삼사오육칠팔구십백천]++|(?:열|스물|서른|마흔|쉰)?(?:하나|한|둘|두|셋|세|넷|네|다섯|여섯|일곱|여덟|아홉)|열|스물|서른|마흔|쉰)"
_ROAD = re.compile(
    rf"(?<![가-힣])[가-힣0-9]{{1,12}}(?<!으)(?:대로|로|길)\s*(?:{_KNUM}\s*번?\s*길\s*)?{_KNUM}(?:\s*-\s*{_KNUM})?(?:\s*번지)?"
    rf"(?!\s*(?:분|원|년|월|일|시|개|명|살|층|미터|km|킬로|번째|퍼센트|%|대|회|가지|번\s))"
)
_LOT = re.compile(rf"(?<=[동리가])\s*{_KNUM}(?:\s*-\s*{_KNUM})?\s*번지(?:\s*{_KNUM}\s*호)?")
_UNIT = re.compile(rf"(?<![가-힣0-9]){_KNUM}\s*동\s*{_KNUM}\s*호")
_KNUM_BT = r"(?:[0-9]+|[일이삼사오육칠팔구십]+)"
_BIRTH = re.compile(
    rf"(?:(?:19|20)?\d{{2}}|[일이삼사오육칠팔구천백십]+)\s*년\s*{_KNUM_BT}\s*월\s*{_KNUM_BT}\s*일\s*생"
    r"|(?<!\d)\d{2}(?:\d{2})?[.\-/]\d{1,2}[.\-/]\d{1,2}\s*생(?!\w*활)"
)


def _regex_spans(text: str) -> list[MaskSpan]:
    spans: list[MaskSpan] = []
    for pattern, kind in (
        (_EMAIL, MASK_EMAIL),
        (_EMAIL_SPOKEN, MASK_EMAIL),
        (_BIRTH, MASK_BIRTH),
        (_UNIT, MASK_ADDRESS),
        (_LOT, MASK_ADDRESS),
        (_ROAD, MASK_ADDRESS),
    ):
        for m in pattern.finditer(text):
            s, e = m.start(), m.end()
            while s < e and text[s].isspace():
                s += 1
            if kind == MASK_ADDRESS and pattern is _ROAD and not _looks_like_road(m.group(), text[:s]):
                continue
            spans.append(MaskSpan(s, e, kind))
    return spans


def _looks_like_road(s: str, before: str) -> bool:
    """A road name is a proper noun: reject common words that end in 로/길, and ask for a real
    address shape (a …길 part, a written building number, or 주소/살아요 close before)."""
    name = re.match(r"[가-힣0-9]+?(?:대로|로|길)", s)
    if not name:
        return False
    n = name.group()
    common = (
        "그래서로",
        "대로",
        "새로",
        "바로",
        "서로",
        "별로",
        "스스로",
        "따로",
        "절로",
        "실로",
        "주로",
        "길",
    )
    if n in common or n.endswith(("으로", "에로", "부로", "와로")) or len(n) < 2:
        return False
    rest = s[len(n) :]
    has_gil = re.search(r"길", rest) is not None
    digit_no = re.match(r"\s*\d", rest) is not None
    return has_gil or digit_no or re.search(r"주소|사는|살고|거주|번지|자택|집은", before[-30:]) is not None


def _plate_spans(text: str) -> list[MaskSpan]:
    return [MaskSpan(m.start(), m.end(), MASK_VEHICLE) for m in _PLATE.finditer(text)]


def find_pii(text: str) -> list[MaskSpan]:
    """Spans of personal data in ``text``, sorted, non-overlapping (earlier kinds win)."""
    if not text:
        return []
    regex = _regex_spans(text)
    candidates = [s for s in regex if s.kind in (MASK_EMAIL, MASK_BIRTH)]
    candidates += _number_spans(text)
    candidates += _plate_spans(text)
    candidates += [s for s in regex if s.kind == MASK_ADDRESS]
    spans: list[MaskSpan] = []
    for c in candidates:
        if c.end > c.start and not any(s.start < c.end and c.start < s.end for s in spans):
            spans.append(c)
    return sorted(spans, key=lambda s: s.start)


def mask_text(text: str) -> str:
    """``text`` with every span of personal data replaced by its kind, e.g. ``[전화번호]``."""
    out, pos = [], 0
    for span in find_pii(text):
        out.append(text[pos : span.start])
        out.append(span.kind)
        pos = span.end
    out.append(text[pos:])
    return "".join(out)
