"""Text helpers: cleaning statute text, splitting it into answerable units, and turning the
written legal register into what a counselor says on the phone (존댓말, short sentences).

``to_counselor_register('차를 주차하여서는 아니 된다.')`` → ``'차를 주차하시면 안 됩니다.'``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_AMEND = re.compile(r"\s*[<\[](?:개정|신설|전문개정|본조신설|제목개정|종전|단서신설|후단신설)[^>\]]*[>\]]")
_PAREN = re.compile(r"\([^()]{0,80}\)")
_HANG = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳㉑㉒㉓㉔㉕㉖㉗㉘㉙㉚㉛㉜㉝㉞㉟"
_HO_LINE = re.compile(r"^\s*(\d+)(?:의\d+)?\.\s*(.+)$")
_MOK_LINE = re.compile(r"^\s*([가-하])\.\s*(.+)$")
_SENT_END = re.compile(r"(?<=[다요까죠])\.\s+|(?<=[.?!])\s+(?=[가-힣「])")


def clean_statute(text: str) -> str:
    """Statute text without amendment notes (<개정 …>) and with whitespace normalised."""
    text = _AMEND.sub("", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def drop_parentheticals(text: str) -> str:
    """Remove parenthesised asides (hanja, cross-references) that nobody reads aloud."""
    prev = None
    while prev != text:
        prev, text = text, _PAREN.sub("", text)
    return re.sub(r"\s{2,}", " ", text).strip()


@dataclass(frozen=True)
class Unit:
    """An answerable piece of a passage: a sentence of a 항 body, or one 호/목 item."""

    text: str
    kind: str  # "sentence" | "item"
    parent: int | None = None  # index of the sentence that introduces an item list


def split_units(passage_text: str) -> list[Unit]:
    """Sentences of the 항 bodies, and the 호 items under the sentence that lists them."""
    units: list[Unit] = []
    last_sentence: int | None = None
    for raw in clean_statute(passage_text).splitlines():
        line = raw.strip()
        if not line:
            continue
        line = line.lstrip(_HANG).strip()
        m = _HO_LINE.match(line) or _MOK_LINE.match(line)
        if m:
            body = m.group(2).strip()
            if body and body != "삭제":
                units.append(Unit(body, "item", last_sentence))
            continue
        line_first: int | None = None
        for sent in split_sentences(line):
            units.append(Unit(sent, "sentence"))
            if line_first is None:
                line_first = len(units) - 1
            # items belong to the sentence that announces them (다음 각 호), not to a later 다만-clause
            if "다음 각" in sent or last_sentence is None or line_first == len(units) - 1:
                last_sentence = len(units) - 1
    return units


def _open_brackets(text: str) -> int:
    return sum(text.count(o) - text.count(c) for o, c in ("()", "[]", "「」", "『』"))


def split_sentences(text: str) -> list[str]:
    pieces = [p.strip() for p in _SENT_END.split(text) if p and p.strip()]
    # a full stop inside brackets ("등록[등재(登載)를 포함한다. 이하 같다]하려는 경우") ends no sentence
    parts: list[str] = []
    for p in pieces:
        if parts and _open_brackets(parts[-1]) > 0:
            # the split took the full stop after 다/요/까/죠 with it: give it back
            sep = " " if parts[-1].endswith((".", "?", "!")) else ". "
            parts[-1] = f"{parts[-1]}{sep}{p}"
        else:
            parts.append(p)
    out = []
    for p in parts:
        if not p.endswith((".", "?", "!", "다", "요")):
            p = p.rstrip(",;: ")
        out.append(p)
    return out


# --------------------------------------------------------------------------- register

# Ordered (pattern, replacement) rewrites of sentence-final legal forms; the first that matches wins.
_FINAL_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\S*?)하여서는 아니 된다$"), r"\1하시면 안 됩니다"),
    (re.compile(r"(\S*?)해서는 아니 된다$"), r"\1하시면 안 됩니다"),
    (re.compile(r"(\S*?)여서는 아니 된다$"), r"\1시면 안 됩니다"),
    (re.compile(r"(\S*?)서는 아니 된다$"), r"\1시면 안 됩니다"),
    (re.compile(r"아니 된다$"), "안 됩니다"),
    (re.compile(r"그러하지 아니하다$"), "그렇지 않습니다"),
    (re.compile(r"(\S*?)하지 아니한다$"), r"\1하지 않습니다"),
    (re.compile(r"아니한다$"), "않습니다"),
    (re.compile(r"아니하다$"), "않습니다"),
    (re.compile(r"하여야 한다$"), "하셔야 합니다"),
    (re.compile(r"(\S*?)여야 한다$"), r"\1여야 합니다"),
    (re.compile(r"(\S*?)야 한다$"), r"\1야 합니다"),
    (re.compile(r"할 수 있다$"), "할 수 있습니다"),
    (re.compile(r"수 있다$"), "수 있습니다"),
    (re.compile(r"수 없다$"), "수 없습니다"),
    (re.compile(r"있다$"), "있습니다"),
    (re.compile(r"없다$"), "없습니다"),
    (re.compile(r"같다$"), "같습니다"),
    (re.compile(r"된다$"), "됩니다"),
    (re.compile(r"한다$"), "합니다"),
    (re.compile(r"본다$"), "봅니다"),
    (re.compile(r"이다$"), "입니다"),
    (re.compile(r"는다$"), "습니다"),
]


def _final_jong_n_to_b(word: str) -> str | None:
    """'간다' → '갑니다': a syllable with final ㄴ before 다 becomes final ㅂ + 니다."""
    if len(word) < 2 or not word.endswith("다"):
        return None
    ch = word[-2]
    code = ord(ch) - 0xAC00
    if not 0 <= code < 11172 or code % 28 != 4:  # 4 = ㄴ
        return None
    return word[:-2] + chr(ord(ch) - 4 + 17) + "니다"  # 17 = ㅂ


def to_counselor_register(sentence: str) -> str:
    """Written statute register → polite spoken register, one sentence."""
    s = drop_parentheticals(sentence).strip()
    s = s.rstrip(".").rstrip()
    if not s:
        return s
    # 'A하고, B하여야 한다' style mid-sentence forms stay; only the end changes.
    for pat, rep in _FINAL_RULES:
        if pat.search(s):
            s = pat.sub(rep, s)
            break
    else:
        last = s.split()[-1]
        conv = _final_jong_n_to_b(last)
        if conv:
            s = s[: -len(last)] + conv
        elif s.endswith("다") and not s.endswith("니다"):
            s = s[:-1] + "습니다"
    # mid-sentence obligation/prohibition forms addressed to the reader
    s = s.replace("하여서는 아니 되며", "하시면 안 되며").replace("하여서는 아니 되고", "하시면 안 되고")
    return s + "."


def mentions(law_name: str, article_no: str) -> str:
    """How a counselor names a source: '도로교통법 제32조에 따르면'."""
    return f"{law_name} {article_no}에 따르면"
