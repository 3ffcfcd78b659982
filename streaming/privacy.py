"""Masking of personal data in Korean call text — the privacy contract every package applies.

Two ways in:

- ``mask_text(text)`` (stateless) returns the text, normalised (:func:`normalize`), with each piece
  of personal data replaced by its kind (``[주민번호]``, ``[전화번호]``, ``[이름]`` …). Use it for one
  self-contained text: a summary field, a typed comment, a query. ``find_pii(text)`` returns the
  spans (on the normalised text) it would replace.
- :class:`ConversationMasker` (stateful) masks a call's transcript segment by segment with memory
  of the recent finals of the same call and channel, so a number said in pieces is masked in every
  piece: ``앞자리는 900101이고요`` … ``뒤에는 1234567이에요``; ``공일공 일이삼사`` … ``오육칠팔이요``.
  Keep one per service (it holds the state of every open call, bounded) and call
  ``masker.mask(call_id, channel, text, at=end_s, key=segment_id)`` for each final segment, in
  order, and ``masker.end_call(call_id)`` when the call ends.

What is detected, in the forms a caller says them and a recogniser writes them:

- numbers written as digits (``010-1234-5678``, full-width ``０１０``, en/em dashes), read out digit
  by digit in Sino-Korean (``공일공 일이삼사에 오육칠팔``) or native Korean (``하나 둘 셋``), with the
  spoken separators ``에``/``다시``, fillers between the groups (``그리고``, ``음``, ``뒤에는``) and a
  trailing copula (``…팔이에요``);
- 주민등록번호 / 외국인등록번호 (13 digits with a valid birth date; checksum, or a ``6-7`` grouping
  for numbers issued since October 2020 without one; a front half next to 주민/앞자리/생년월일, a
  back half next to 뒷자리 or after a front half earlier in the call);
- mobile and landline numbers (also a mobile number's first 6–10 digits: a number said in pieces
  is masked from its first pieces on), card numbers (Luhn), bank accounts, passports
  (``M12345678``, ``M123A4567``, ``여권번호 엠 일이삼…``), driver licences (``11-12-345678-90``,
  ``서울 12-345678-90``), health-insurance numbers (next to 건강보험/보험증), other long
  identifiers (``[번호]``);
- e-mail, written or spoken (``hong 골뱅이 naver 점 com``, ``hong at gmail dot com``, ``홍길동 골뱅이
  네이버 닷컴``), vehicle plates, dates of birth, street addresses at the level of road + building
  number, lot number (``산 12번지``) or apartment unit (동·호);
- personal names (:mod:`streaming.pii_names`): self-introductions, ``~씨``/``~님``/``고객님``, the
  counselor's greeting, and (model mode) proper nouns shaped like a full name.

Never masked: districts and neighbourhoods (``송파구``, ``상도동``: they route the call and
identify no one), laws and articles (``「도로교통법」 제32조제1항``), institutions
(``120다산콜센터``), dates, times, amounts, percentages, counts, business numbers (1588-…).

Every pattern is bounded (no nested quantifiers, explicit length caps, possessive where a
pattern could backtrack) and the text is processed in pieces of at most :data:`MAX_CHUNK`
characters, so masking time grows linearly with the text (tests/security/test_masking_redos.py).

Why one module of ~940 lines: every detector writes into one span list over the same normalised
text, and the conversation masker carries the number detector's pending state from segment to
segment; the part that stands alone, names, is :mod:`streaming.pii_names`.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from itertools import product
from typing import Literal

from . import pii_names

MASK_RRN = "[주민번호]"
MASK_FRN = "[외국인등록번호]"
MASK_PHONE = "[전화번호]"
MASK_CARD = "[카드번호]"
MASK_ACCOUNT = "[계좌번호]"
MASK_EMAIL = "[이메일]"
MASK_ADDRESS = "[주소]"
MASK_VEHICLE = "[차량번호]"
MASK_BIRTH = "[생년월일]"
MASK_PASSPORT = "[여권번호]"
MASK_LICENSE = "[운전면허번호]"
MASK_HEALTH = "[건강보험번호]"
MASK_NAME = "[이름]"
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
    MASK_PASSPORT,
    MASK_LICENSE,
    MASK_HEALTH,
    MASK_NAME,
    MASK_NUMBER,
)

MAX_CHUNK = 2000
"""Characters analysed in one pass; longer text is cut at a sentence or word boundary."""

NamesMode = Literal["model", "rules"]


@dataclass(frozen=True)
class MaskSpan:
    start: int
    end: int
    kind: str
    digits: str = field(default="", compare=False)  # the digits of a number span (for the masker)


# ----------------------------------------------------------------------------- normalisation

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d"
_TRANSLATE = {ord(c): "-" for c in _DASHES} | dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_EU_DASH = re.compile(r"(?<=[0-9０-９])[ \t]?[ㅡᅳ][ \t]?(?=[0-9０-９])")  # 010ㅡ1234: ㅡ typed as a dash
_COMPAT_JAMO = re.compile(r"[\u3131-\u318e]{1,64}")  # ㅋㅋ, ㅠㅠ: kept as typed (NFKC would decompose them)
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")


def normalize(text: str) -> str:
    """NFKC (full-width digits and letters, circled numbers …), every dash as ``-``, no zero-width
    characters, any script's decimal digits as ASCII. Hangul compatibility jamo stay as typed."""
    text = _EU_DASH.sub("-", text.translate(_TRANSLATE))
    parts, pos = [], 0
    for m in _COMPAT_JAMO.finditer(text):
        parts.append(unicodedata.normalize("NFKC", text[pos : m.start()]))
        parts.append(m.group())
        pos = m.end()
    parts.append(unicodedata.normalize("NFKC", text[pos:]))
    out = "".join(parts).translate(_TRANSLATE)
    return _NON_ASCII_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group(), 0)), out)


def _chunks(text: str, limit: int = MAX_CHUNK) -> Iterator[tuple[int, str]]:
    """(offset, piece) pieces of at most ``limit`` characters, cut at a line or sentence end, else
    at a space, so a number is not split where it can be helped."""
    pos, n = 0, len(text)
    while n - pos > limit:
        window = text[pos : pos + limit]
        cut = max(window.rfind("\n"), window.rfind(". "), window.rfind("? "), window.rfind("! "))
        if cut < limit // 2:
            cut = window.rfind(" ")
        cut = cut + 1 if cut >= limit // 4 else limit
        yield pos, text[pos : pos + cut]
        pos += cut
    yield pos, text[pos:]


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
_PARTICLES = frozenset(
    (
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
        "이고요",
        "이었나",
        "인데",
        "인데요",
    )
)
_WORD = re.compile(r"[0-9]{1,32}|[가-힣]{1,32}|[-.·]")
_SEPARATOR_WORDS = frozenset({"다시", "-", ".", "·", "에"})
# Fillers a caller puts between the groups of one number (공일공 일이삼사 그리고 오육칠팔).
_BRIDGE_WORDS = pii_names.words(
    """그리고 그다음 그다음에 그다음은 다음 다음에 다음은 음 어 아 네 예 하고 또 그 저 뒤에 뒤에는 뒤는 뒷자리
    뒷자리는 뒷자리가 뒷번호 뒷번호는 끝에 끝자리 끝자리는 끝번호는 마지막 마지막은 마지막으로 중간 중간은
    중간에 가운데 가운데는 앞에 앞에는 나머지 나머지는"""
)
_GAP_CHARS = frozenset(" \t\n\r-.·,()")
_GAP_WORDS = re.compile("|".join(sorted(_BRIDGE_WORDS | {"다시", "에"}, key=len, reverse=True)))
_MAX_GAP = 24
_AFTER_NOT_ID = re.compile(
    r"\s{0,3}(?:원|만|억|천|년|월|일|시|분|초|개|명|세|살|층|호|번째|퍼센트|%|km|킬로|미터|m\b|조|항|목|회|대|장|건|배"
    r"|가구|세대|평|제곱|톤|리터|kg|g\b|cm|mm|주|박|일간|개월|차|등|위|점|단계|원짜리)"
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
    """The text as digit words, separators ('-', '에', bridge words as '~') and breaks ('|')."""
    items: list[_Digits | str] = []
    prev_end, prev_ascii = -1, False
    for m in _WORD.finditer(text):
        w = m.group()
        if w in _SEPARATOR_WORDS:
            items.append(w)
        elif w.isdigit():
            items.append(_Digits(w, m.start(), m.end()))
        elif w in _BRIDGE_WORDS:
            items.append("~")
        else:
            parsed = _parse_korean_digits(w)
            if parsed is not None and parsed[0]:
                digits, used, ambiguous = parsed
                if digits == "2" and ambiguous and prev_ascii and prev_end == m.start():
                    items.append("~")  # 5678이에요: the copula after written digits, not a 2
                else:
                    items.append(_Digits(digits, m.start(), m.start() + used, ambiguous, spoken=True))
                    if w[used:] == "에":
                        items.append("에")
            else:
                items.append("|")
        prev_end, prev_ascii = m.end(), w.isdigit()
    return items


def _gap_ok(text: str, a: int, b: int) -> bool:
    """Only spaces, hyphens, dots, spoken separators and a few fillers between two digit words."""
    if b - a > _MAX_GAP:
        return False
    gap = _GAP_WORDS.sub("", text[a:b])
    return all(c in _GAP_CHARS for c in gap)


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


def _variants(groups: list[_Digits]) -> Iterator[list[_Digits]]:
    """Readings of a run: each ambiguous trailing 이 as the copula (first) or as the digit 2."""
    amb = [i for i, g in enumerate(groups) if g.optional_last][-3:]  # at most 8 readings
    for choice in product((True, False), repeat=len(amb)):
        out: list[_Digits] = []
        for i, g in enumerate(groups):
            if i in amb and choice[amb.index(i)]:
                g = _Digits(g.digits[:-1], g.start, g.end - 1, False, g.spoken)
            if g.digits:
                out.append(g)
        if out:
            yield out


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
    re.compile(r"01[016789][0-9]{7,8}"),
    re.compile(r"02[0-9]{7,8}"),
    re.compile(r"0[3-6][1-5][0-9]{7,8}"),
    re.compile(r"0(?:70|50[0-9]?)[0-9]{7,8}"),
)
_MOBILE_PREFIX = re.compile(r"01[016789][0-9]{3,6}")  # a mobile number's first 6–9 digits


def phone_complete(digits: str) -> bool:
    return any(p.fullmatch(digits) for p in _PHONE_RES)


def _phone_may_continue(digits: str) -> bool:
    """Digits that are a mobile number's beginning and could still grow into one."""
    return digits.startswith(("010", "011", "016", "017", "018", "019")) and 3 <= len(digits) < 11


_ACCOUNT_CONTEXT = re.compile(r"계좌|통장|은행|입금|이체|송금|뱅크|농협|신협|우체국|새마을금고")
_PHONE_CONTEXT = re.compile(r"번호|연락처|전화|핸드폰|휴대폰|폰|연락")
_RRN_CONTEXT = re.compile(r"주민|등록번호|외국인|앞자리|앞번호|뒷자리|뒷번호")
_BIRTH_CONTEXT = re.compile(r"생년월일|생일")
_BACK_CONTEXT = re.compile(r"뒷자리|뒷번호|뒤에는|뒤는|뒤 번호")
_PASSPORT_CONTEXT = re.compile(r"여권")
_LICENSE_CONTEXT = re.compile(r"면허")
_HEALTH_CONTEXT = re.compile(r"건강보험|보험증|건보|의료보험")
_CARD_CONTEXT = re.compile(r"카드")


def _classify(digits: str, groups: list[str], before: str) -> str | None:
    n = len(digits)
    if _PASSPORT_CONTEXT.search(before) and n == 8:
        return MASK_PASSPORT
    if _LICENSE_CONTEXT.search(before) and 10 <= n <= 12:
        return MASK_LICENSE
    if _HEALTH_CONTEXT.search(before) and 8 <= n <= 13:
        return MASK_HEALTH
    if phone_complete(digits):
        return MASK_PHONE
    if n == 13 and _valid_yymmdd(digits[:6]) and digits[6] in "12345678":
        foreign = digits[6] in "5678"
        if rrn_checksum_ok(digits) or (groups and len(groups[0]) == 6):
            return MASK_FRN if foreign else MASK_RRN
    if n == 12 and [len(g) for g in groups] == [2, 2, 6, 2]:
        return MASK_LICENSE
    if 14 <= n <= 16 and (luhn_ok(digits) or _CARD_CONTEXT.search(before)):
        return MASK_CARD
    if 8 <= n < 14 and _CARD_CONTEXT.search(before) and not _ACCOUNT_CONTEXT.search(before):
        return MASK_CARD  # the first groups of a card number (the rest may come later)
    if 10 <= n <= 14 and (len(groups) >= 2 or _ACCOUNT_CONTEXT.search(before)):
        return MASK_ACCOUNT
    if n >= 9:
        return MASK_NUMBER
    if _MOBILE_PREFIX.fullmatch(digits):
        return MASK_PHONE  # the first pieces of a mobile number (the rest may come later)
    return None


_LETTER_NAMES = "더블유|에이치|에이|에스|에프|에프|제이|케이|브이|엑스|와이|제트|엠|엔|엘|알|디|티|피|비|씨|지|오|아이|큐|유"
_LETTER_BEFORE = re.compile(rf"(?:(?<![A-Za-z])[A-Za-z]|(?<![가-힣])(?:{_LETTER_NAMES}))\s{{0,2}}$")


@dataclass(frozen=True)
class _Pending:
    """What an earlier segment left open: the rest of a 주민번호, a phone number said so far."""

    rrn_back: int = 0  # digits of the back half still to come (1–7)
    rrn_kind: str = MASK_RRN  # or MASK_FRN when the front was a 외국인등록번호
    phone: str = ""  # digits of a mobile number said so far
    cue: str = ""  # recent words of the conversation (both channels), for context


_NO_PENDING = _Pending()


def _number_spans(text: str, pending: _Pending = _NO_PENDING) -> list[MaskSpan]:
    spans: list[MaskSpan] = []
    for run in _runs(text):
        before = pending.cue + " " + text[max(0, run.start - 24) : run.start]
        found: MaskSpan | None = None
        fallback: MaskSpan | None = None
        for groups in _variants(run.groups):
            digits = "".join(g.digits for g in groups)
            start, end = groups[0].start, groups[-1].end
            after = text[end : end + 12]
            spoken = any(g.spoken for g in groups)
            if _AFTER_NOT_ID.match(after) and not spoken and len(digits) < 13:
                continue
            sub = _Run(groups, start, end)
            partial = _partial_spans(text, sub, before, pending)
            kind = _classify(digits, [g.digits for g in groups], before)
            if kind == MASK_PASSPORT:
                letter = _LETTER_BEFORE.search(text[max(0, start - 8) : start])
                if letter:
                    start -= len(letter.group())
            if partial and kind in (None, MASK_NUMBER, MASK_ACCOUNT):
                found = partial
                break
            if kind and kind != MASK_NUMBER:
                found = MaskSpan(start, end, kind, digits)
                break
            if kind and fallback is None:
                fallback = MaskSpan(start, end, kind, digits)
        if chosen := found or fallback:
            spans.append(chosen)
    return spans


def _partial_spans(text: str, run: _Run, before: str, pending: _Pending) -> MaskSpan | None:
    """Pieces of an identifier: the front of a 주민번호 and the start of its back; the back half
    after a front said earlier; NNN(N)-NNNN next to 번호/연락처; a mobile number's continuation."""
    gs = run.groups
    digits = run.digits
    if pending.phone:
        joined = pending.phone + digits
        if phone_complete(joined) or _phone_may_continue(joined):
            return MaskSpan(run.start, run.end, MASK_PHONE, joined)
    back_ok = pending.rrn_back < 7 or digits[:1] in ("1", "2", "3", "4", "5", "6", "7", "8")
    if pending.rrn_back and len(digits) <= pending.rrn_back and back_ok:
        kind = MASK_FRN if pending.rrn_back == 7 and digits[:1] in ("5", "6", "7", "8") else pending.rrn_kind
        return MaskSpan(run.start, run.end, kind, "R" * (13 - pending.rrn_back) + digits)
    for i, g in enumerate(gs):
        if len(g.digits) == 6 and _valid_yymmdd(g.digits):
            nxt = gs[i + 1] if i + 1 < len(gs) else None
            gap = text[g.end : nxt.start] if nxt else ""
            starts_back = (
                nxt is not None
                and nxt.digits[:1] in set("12345678")
                and (("-" in gap or "다시" in gap) or _BACK_CONTEXT.search(gap) is not None)
            )
            ctx = text[max(0, g.start - 24) : g.start] if i else before
            if starts_back or _RRN_CONTEXT.search(ctx):
                end = nxt.end if starts_back and nxt else g.end
                back = nxt.digits if starts_back and nxt else ""
                # a back half spoken after the front, e.g. 구공공삼일오에 다시 이공사…
                foreign = back[:1] in ("5", "6", "7", "8") or (not back and "외국인" in ctx)
                kind = MASK_FRN if foreign else MASK_RRN
                return MaskSpan(g.start, end, kind, g.digits + back)
            if _BIRTH_CONTEXT.search(ctx):
                return MaskSpan(g.start, g.end, MASK_BIRTH, "")
    if (
        len(gs) == 2
        and len(gs[0].digits) in (3, 4)
        and len(gs[1].digits) == 4
        and not re.fullmatch(r"1[5-9][0-9]{2}", gs[0].digits)
        and _PHONE_CONTEXT.search(before)
        and not _AFTER_NOT_ID.match(text[run.end : run.end + 12])
    ):
        return MaskSpan(run.start, run.end, MASK_PHONE, "")
    if (
        len(digits) == 7
        and digits[0] in "12345678"
        and _BACK_CONTEXT.search(before)
        and _RRN_CONTEXT.search(before)
    ):
        return MaskSpan(run.start, run.end, MASK_RRN, "R" * 6 + digits)
    return None


# ----------------------------------------------------------------------------- other patterns

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}+@[A-Za-z0-9\-]{1,63}+(?:\.[A-Za-z0-9\-]{1,63}+){1,6}+"
)
_SPOKEN_DOMAINS = (
    "네이버|다음|한메일|지메일|구글|카카오|네이트|핫메일|야후|아웃룩|naver|gmail|daum|hanmail|kakao|nate"
)
_LOCAL_LETTERS = rf"(?:(?:{_LETTER_NAMES}|[0-9])\s{{0,2}}){{1,16}}+"  # 에이치 오 엔 지 (spelled out)
_DOT = r"\s{0,3}(?:\.|점|쩜|닷|dot)\s{0,3}"
_TLD = r"(?:com|net|org|kr|co|go|ac|or|컴|넷|오알지|케이알|씨오|지오|에이씨)(?![A-Za-z])"
_EMAIL_SPOKEN = re.compile(
    r"(?:(?<![A-Za-z0-9._\-])[A-Za-z0-9._\-]{1,64}+(?:\s{1,3}dot\s{1,3}[A-Za-z0-9_\-]{1,64}+){0,3}+"
    r"|(?<![가-힣])" + _LOCAL_LETTERS + r")"
    r"(?:\s{0,3}(?:골뱅이|앳)\s{0,3}|\s{1,3}at\s{1,3})"
    rf"(?:[A-Za-z0-9\-]{{1,63}}+|{_SPOKEN_DOMAINS})(?:{_DOT}{_TLD}){{1,3}}+",
    re.IGNORECASE,
)
# 골뱅이 alone marks an e-mail: the word before it and the word after it (아이디 골뱅이 네이버요).
_EMAIL_WORD_CHARS = re.compile(r"[A-Za-z0-9._\-가-힣]")
_TLD_AFTER = re.compile(rf"(?:{_DOT}{_TLD}){{1,3}}+")


def _at_word_spans(text: str) -> list[MaskSpan]:
    spans: list[MaskSpan] = []
    pos = text.find("골뱅이")
    while pos >= 0 and len(spans) < 64:
        s = pos
        while s > 0 and text[s - 1] == " " and pos - s < 3:
            s -= 1
        left = s
        while left > 0 and s - left < 64 and _EMAIL_WORD_CHARS.match(text[left - 1]):
            left -= 1
        e = pos + 3
        while e < len(text) and text[e] == " " and e - pos < 6:
            e += 1
        right = e
        while right < len(text) and right - e < 63 and _EMAIL_WORD_CHARS.match(text[right]):
            right += 1
        tld = _TLD_AFTER.match(text, right)
        if tld:
            right = tld.end()
        if left < s and right > e:
            spans.append(MaskSpan(left, right, MASK_EMAIL))
        pos = text.find("골뱅이", pos + 3)
    return spans


_PLATE_CHARS = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주아바사자배하허호"
_REGIONS = "서울|부산|대구|인천|광주|대전|울산|세종|경기|강원|충북|충남|전북|전남|경북|경남|제주"
_SINO_CHARS = "공영일이삼사오육륙칠팔구"
_PLATE = re.compile(
    rf"(?:(?:{_REGIONS})\s{{0,2}})?(?<![0-9])[0-9]{{2,3}}\s{{0,2}}[{_PLATE_CHARS}]\s{{0,2}}[0-9]{{4}}(?![0-9])"
    rf"|(?:(?:{_REGIONS})\s{{0,2}})?(?<![가-힣])[{_SINO_CHARS}]{{2,3}}[{_PLATE_CHARS}]\s{{1,2}}[{_SINO_CHARS}]{{4}}"
    r"(?=[^가-힣]|$|이|요|예|에|입|번)"
)
_LICENSE_REGIONS = (
    "경기북부|서울|부산|경기|강원|충북|충남|전북|전남|경북|경남|제주|대구|인천|광주|대전|울산|세종"
)
_LICENSE = re.compile(
    rf"(?:{_LICENSE_REGIONS})\s{{0,2}}[0-9]{{2}}\s{{0,2}}-\s{{0,2}}[0-9]{{6}}\s{{0,2}}-\s{{0,2}}[0-9]{{2}}(?![0-9])"
)
_PASSPORT = re.compile(r"(?<![A-Za-z0-9])[A-Za-z](?:\s?[0-9]{8}|[0-9]{3}[A-Za-z][0-9]{4})(?![0-9A-Za-z])")
_KNUM = (
    r"(?>[0-9]{1,6}+|[일이삼사오육칠팔구십백천]{1,8}+|(?:열|스물|서른|마흔|쉰)?(?:하나|한|둘|두|셋|세|넷|네|다섯|여섯|"
    r"일곱|여덟|아홉)|열|스물|서른|마흔|쉰)"
)
_ROAD = re.compile(
    rf"(?<![가-힣])[가-힣0-9]{{1,12}}(?<!으)(?:대로|로|길)\s{{0,2}}(?:{_KNUM}\s{{0,2}}번?\s{{0,2}}길\s{{0,2}})?{_KNUM}"
    rf"(?:\s{{0,2}}-\s{{0,2}}{_KNUM})?(?:\s{{0,2}}번지)?"
    rf"(?!\s{{0,2}}(?:분|원|년|월|일|시|개|명|살|층|미터|km|킬로|번째|퍼센트|%|대|회|가지|번\s))"
)
_LOT = re.compile(
    rf"(?:(?<=[동리가])|(?<![가-힣0-9]))\s{{0,2}}(?:산\s{{0,2}})?{_KNUM}(?:\s{{0,2}}-\s{{0,2}}{_KNUM})?\s{{0,2}}번지"
    rf"(?:\s{{0,2}}{_KNUM}\s{{0,2}}호)?"
    r"|(?<=[동리])\s{1,2}산\s{0,2}[0-9]{1,5}(?:\s{0,2}-\s{0,2}[0-9]{1,5})?(?![0-9])"
)
_UNIT = re.compile(rf"(?<![가-힣0-9]){_KNUM}\s{{0,2}}동\s{{0,2}}{_KNUM}\s{{0,2}}호")
_KNUM_BT = r"(?:[0-9]{1,2}|[일이삼사오육칠팔구십]{1,4})"
_DATE = (
    rf"(?:(?:19|20)?[0-9]{{2}}|[일이삼사오육칠팔구천백십]{{1,8}})\s{{0,2}}년\s{{0,2}}{_KNUM_BT}\s{{0,2}}월"
    rf"\s{{0,2}}{_KNUM_BT}\s{{0,2}}일"
)
_BIRTH = re.compile(
    rf"{_DATE}\s{{0,2}}생"
    r"|(?<![0-9])[0-9]{2}(?:[0-9]{2})?[.\-/][0-9]{1,2}[.\-/][0-9]{1,2}\s{0,2}생(?![가-힣]{0,3}활)"
)
# 생년월일은 1990년 1월 1일이에요: the date after the word (group d)
_BIRTH_AFTER = re.compile(
    rf"(?:생년월일|생일)(?:은|이|는|이요)?\s{{0,3}}(?P<d>{_DATE}|(?:19|20)[0-9]{{2}}[.\-/][0-9]{{1,2}}[.\-/][0-9]{{1,2}})"
)


def _regex_spans(text: str) -> list[MaskSpan]:
    spans: list[MaskSpan] = []
    for pattern, kind in (
        (_EMAIL, MASK_EMAIL),
        (_EMAIL_SPOKEN, MASK_EMAIL),
        (_BIRTH, MASK_BIRTH),
        (_BIRTH_AFTER, MASK_BIRTH),
        (_LICENSE, MASK_LICENSE),
        (_PASSPORT, MASK_PASSPORT),
        (_UNIT, MASK_ADDRESS),
        (_LOT, MASK_ADDRESS),
        (_ROAD, MASK_ADDRESS),
    ):
        for m in pattern.finditer(text):
            s, e = (m.start("d"), m.end("d")) if pattern is _BIRTH_AFTER else (m.start(), m.end())
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if kind == MASK_ADDRESS and pattern is _ROAD and not _looks_like_road(m.group(), text[:s]):
                continue
            if kind == MASK_PASSPORT and not (
                _PASSPORT_CONTEXT.search(text[max(0, s - 30) : s]) or m.group()[0] in "MmSsRrGgDdTt"
            ):
                continue
            spans.append(MaskSpan(s, e, kind))
    return spans + _at_word_spans(text)


_COMMON_RO = frozenset(
    (
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
        "이대로",
        "그대로",
    )
)


def _looks_like_road(s: str, before: str) -> bool:
    """A road name is a proper noun: reject common words that end in 로/길, and ask for a real
    address shape (a …길 part, a written building number, or 주소/살아요 close before)."""
    name = re.match(r"[가-힣0-9]{1,12}?(?:대로|로|길)", s)
    if not name:
        return False
    n = name.group()
    if n in _COMMON_RO or n.endswith(("으로", "에로", "부로", "와로")) or len(n) < 2:
        return False
    rest = s[len(n) :]
    has_gil = "길" in rest
    digit_no = re.match(r"\s{0,2}[0-9]", rest) is not None
    return has_gil or digit_no or re.search(r"주소|사는|살고|거주|번지|자택|집은", before[-30:]) is not None


def _plate_spans(text: str) -> list[MaskSpan]:
    return [MaskSpan(m.start(), m.end(), MASK_VEHICLE) for m in _PLATE.finditer(text)]


# ----------------------------------------------------------------------------- putting it together


@cache
def _default_names_mode() -> NamesMode:
    from .settings import PrivacySettings

    return PrivacySettings().names


def _find_in_chunk(text: str, pending: _Pending, names: NamesMode | None, names_from: int) -> list[MaskSpan]:
    regex = _regex_spans(text)
    candidates = [s for s in regex if s.kind in (MASK_EMAIL, MASK_BIRTH, MASK_LICENSE, MASK_PASSPORT)]
    candidates += _number_spans(text, pending)
    candidates += _plate_spans(text)
    if names is not None:
        tail = text[names_from:]
        candidates += [
            MaskSpan(names_from + s, names_from + e, MASK_NAME)
            for s, e in pii_names.find_names(tail, model=names == "model")
        ]
    candidates += [s for s in regex if s.kind == MASK_ADDRESS]
    spans: list[MaskSpan] = []
    for c in candidates:
        if c.end > c.start and not any(s.start < c.end and c.start < s.end for s in spans):
            spans.append(c)
    return sorted(spans, key=lambda s: s.start)


def _find(
    text: str, pending: _Pending = _NO_PENDING, names: NamesMode | None = None, names_from: int = 0
) -> list[MaskSpan]:
    out: list[MaskSpan] = []
    for offset, piece in _chunks(text):
        first = offset == 0
        found = _find_in_chunk(piece, pending if first else _NO_PENDING, names, max(0, names_from - offset))
        out += [MaskSpan(s.start + offset, s.end + offset, s.kind, s.digits) for s in found]
    return out


def find_pii(text: str, *, names: NamesMode | None = None) -> list[MaskSpan]:
    """Spans of personal data in ``normalize(text)``, sorted and disjoint (earlier kinds win).

    ``names``: ``"model"`` or ``"rules"``; None: ``DASAN_PRIVACY_NAMES`` (default ``model``).
    """
    if not text:
        return []
    return _find(normalize(text), names=names or _default_names_mode())


def _apply(text: str, spans: list[MaskSpan]) -> str:
    out, pos = [], 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append(span.kind)
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def mask_text(text: str, *, names: NamesMode | None = None) -> str:
    """``text``, normalised, with every span of personal data replaced by its kind (``[전화번호]``).

    Stateless: for one self-contained text. A call's transcript goes through
    :class:`ConversationMasker`, which also masks numbers said across segments.
    """
    if not text:
        return text
    norm = normalize(text)
    return _apply(norm, _find(norm, names=names or _default_names_mode()))


# ----------------------------------------------------------------------------- conversations

_CONTEXT_CHARS = 300  # of earlier segments joined before the current one
_CUE_CHARS = 80  # of the other channel's recent speech, for context words only
_CUE_WORDS = re.compile(
    r"주민|등록번호|외국인|생년월일|생일|앞자리|뒷자리|여권|면허|건강보험|보험증|카드|계좌|통장|전화|연락처|핸드폰|휴대폰|번호"
)


@dataclass
class _Segment:
    at: float
    text: str  # normalised, unmasked (kept in memory only, for a bounded time)


@dataclass
class _Channel:
    recent: deque[_Segment]
    pending: _Pending = _NO_PENDING
    pending_at: float = 0.0
    done: OrderedDict[str, str] = field(default_factory=OrderedDict)  # key → masked, for redelivery


def _skip_gap(text: str, start: int, end: int) -> int:
    """Where a number's part in this segment starts: after leading spaces, 다시, 그리고 …
    (inside a number span only digits and gap words occur, so a gap word here is one)."""
    while start < end:
        m = _GAP_WORDS.match(text, start)
        if text[start] in _GAP_CHARS:
            start += 1
        elif m and m.end() < end:
            start = m.end()
        else:
            break
    return start


class ConversationMasker:
    """Masks the final segments of calls with memory of the recent ones, per call and channel.

    ``mask(call_id, channel, text)`` masks ``text`` as :func:`mask_text` does and also:

    - joins it to the last ``max_segments`` final segments of the same call and channel said within
      ``max_age_s`` (call time, ``at``), so digits said in pieces (with fillers such as 그리고 or
      뒤에는 between them) form one number, and masks the part of that number in this segment;
    - remembers what an earlier segment left open — the front half of a 주민번호 (the back half is
      masked when it comes, whatever is said in between), the first digits of a mobile number;
    - takes context words from the other channel (the counselor asks 주민번호 뒷자리요?, the caller
      answers with seven digits).

    Memory is bounded: ``max_segments`` segments (each analysed up to :data:`MAX_CHUNK`
    characters) per channel, ``max_conversations`` calls (least recently used dropped), and
    ``end_call`` forgets a call. The unmasked text of recent segments lives only in this memory.
    Idempotent with ``key`` (the segment id): a redelivered segment gets the same result.
    Thread-safe. Partial (not final) segments: pass ``remember=False`` — they use the memory but
    do not enter it.
    """

    def __init__(
        self,
        *,
        max_segments: int | None = None,
        max_age_s: float | None = None,
        max_conversations: int | None = None,
        names: NamesMode | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from .settings import PrivacySettings

        s = PrivacySettings()
        self.max_segments = s.context_segments if max_segments is None else max_segments
        self.max_age_s = s.context_seconds if max_age_s is None else max_age_s
        self.max_conversations = s.max_conversations if max_conversations is None else max_conversations
        self.names: NamesMode = names or s.names
        self.clock = clock
        self._calls: OrderedDict[str, dict[str, _Channel]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._calls)

    def end_call(self, call_id: str) -> None:
        """Forget everything about a call (call it when the call ends)."""
        with self._lock:
            self._calls.pop(call_id, None)

    def mask(
        self,
        call_id: str,
        channel: str,
        text: str,
        *,
        at: float | None = None,
        key: str | None = None,
        remember: bool = True,
    ) -> str:
        """``text`` (one final segment of ``channel`` in ``call_id``), normalised and masked."""
        channel = str(getattr(channel, "value", channel))
        now = self.clock() if at is None else float(at)
        with self._lock:
            chans = self._conversation(call_id)
            ch = chans.setdefault(channel, _Channel(deque(maxlen=max(self.max_segments, 1))))
            if key is not None and key in ch.done:
                return ch.done[key]
            norm = normalize(text)
            if not norm:
                return norm
            prev = self._context(ch, now)
            cue = self._cues(chans, channel, now)
            pending = _NO_PENDING
            if ch.pending != _NO_PENDING and abs(now - ch.pending_at) <= self.max_age_s:
                pending = _Pending(ch.pending.rrn_back, ch.pending.rrn_kind, ch.pending.phone, cue)
            elif cue:
                pending = _Pending(cue=cue)
            joined = f"{prev}\n{norm}" if prev else norm
            offset = len(joined) - len(norm)
            spans = _find(joined, pending, self.names, names_from=offset)
            # a number that began in an earlier segment: its part in this one
            own = [
                MaskSpan(
                    (_skip_gap(joined, offset, s.end) if s.start < offset else s.start) - offset,
                    s.end - offset,
                    s.kind,
                    s.digits,
                )
                for s in spans
                if s.end > offset
            ]
            masked = _apply(norm, own)
            if remember and self.max_segments > 0:
                ch.recent.append(_Segment(now, norm))
                if any(s.digits for s in own) or re.search(r"[0-9]", norm) or _runs(norm):
                    ch.pending = self._left_open(spans, joined, offset)
                    ch.pending_at = now
                # else: nothing numeric said (잠깐만요 …): what was open stays open, for max_age_s
                if key is not None:
                    ch.done[key] = masked
                    while len(ch.done) > 4 * self.max_segments:
                        ch.done.popitem(last=False)
            return masked

    # -- internals

    def _conversation(self, call_id: str) -> dict[str, _Channel]:
        chans = self._calls.get(call_id)
        if chans is None:
            chans = self._calls[call_id] = {}
            while len(self._calls) > self.max_conversations:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(call_id)
        return chans

    def _context(self, ch: _Channel, now: float) -> str:
        texts = [s.text for s in ch.recent if abs(now - s.at) <= self.max_age_s]
        prev = "\n".join(texts)[-_CONTEXT_CHARS:]
        if len(prev) == _CONTEXT_CHARS:  # start at a word, not inside one
            cut = prev.find(" ")
            prev = prev[cut + 1 :] if 0 <= cut < 40 else prev
        return prev

    def _cues(self, chans: dict[str, _Channel], channel: str, now: float) -> str:
        words: list[str] = []
        for name, other in chans.items():
            if name == channel:
                continue
            for s in other.recent:
                if abs(now - s.at) <= self.max_age_s:
                    words += _CUE_WORDS.findall(s.text[-_CUE_CHARS:])
        return " ".join(words[-6:])

    @staticmethod
    def _left_open(spans: list[MaskSpan], joined: str, offset: int) -> _Pending:
        """What the last number of this segment leaves open for the next one."""
        last = next((s for s in reversed(spans) if s.end > offset and s.digits), None)
        if last is None:
            return _NO_PENDING
        tail = joined[last.end :]
        if len(tail) > 16 or re.search(r"[0-9]", tail):
            return _NO_PENDING  # something else was said after it
        if last.kind in (MASK_RRN, MASK_FRN) and 6 <= len(last.digits) < 13:
            return _Pending(rrn_back=13 - len(last.digits), rrn_kind=last.kind)
        if last.kind == MASK_PHONE and _phone_may_continue(last.digits) and not phone_complete(last.digits):
            return _Pending(phone=last.digits)
        return _NO_PENDING
