"""What the whole call's counselor turns say of a card's article (session 21): the closeness of the
closest turn, its title's nouns, its law's name — features the summary's confirmation reads."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from assist.summary import Turn
from assist.summary_regs import (
    CONFIRM_FEATURES,
    CardEvidence,
    RegulationConfirmer,
    article_rows,
    evidence_from_json,
    evidence_to_json,
    law_name_of,
)
from streaming.events import Channel


class _Analyzer:
    def nouns(self, text: str) -> list[str]:
        return [w.strip("?.,") for w in text.split() if len(w.strip("?.,")) >= 2]


def _kb() -> SimpleNamespace:
    docs = ["지방세법/제20조", "지방세법/제21조", "주민등록법_시행령/제42조"]
    titles = ["신고 납부", "가산세", "주민등록증 재발급"]
    vecs = np.eye(3, dtype=np.float32)
    passages = [SimpleNamespace(doc_id=d, article_title=t) for d, t in zip(docs, titles, strict=True)]
    encoded = {
        "취득세는 60일 안에 신고 납부 하셔야 합니다": vecs[0],
        "지방세법에 가산세가 붙습니다": 0.6 * vecs[0] + 0.8 * vecs[1],
    }

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray([encoded.get(t, np.zeros(3, dtype=np.float32)) for t in texts])

    return SimpleNamespace(
        passages=passages,
        unit_of=np.arange(3),
        dense=SimpleNamespace(matrix=vecs),
        analyzer=_Analyzer(),
        encode_queries=encode,
    )


def test_the_calls_counselor_turns_say_what_the_answer_after_a_card_may_not() -> None:
    turns = [
        Turn(Channel.counselor, "안녕하세요"),
        Turn(Channel.caller, "취득세 언제까지 내요?"),
        Turn(Channel.counselor, "취득세는 60일 안에 신고 납부 하셔야 합니다"),
        Turn(Channel.caller, "넘기면요?"),
        Turn(Channel.counselor, "지방세법에 가산세가 붙습니다"),
    ]
    ev = RegulationConfirmer(_kb()).evidence(turns, [(1, ["지방세법/제20조", "주민등록법_시행령/제42조"])])
    got = {e.doc_id: (e.call_close, e.title_said, e.law_named) for e in ev}
    assert got["지방세법/제20조"] == pytest.approx((1.0, 1.0, 1.0))  # its title said, its law named
    assert got["주민등록법_시행령/제42조"] == pytest.approx((0.0, 0.0, 0.0))
    docs, X = article_rows(ev)
    row = dict(zip(CONFIRM_FEATURES, X[docs.index("지방세법/제20조")], strict=True))
    assert row["call_answer_best"] == 1.0 and row["title_said"] == 1.0 and row["law_named"] == 1.0


def test_a_law_is_named_as_counselors_say_it() -> None:
    assert law_name_of("주민등록법_시행령/제42조") == "주민등록법"
    assert law_name_of("국민기초생활_보장법/제7조") == "국민기초생활_보장법"
    conf = RegulationConfirmer(_kb())
    ev = [CardEvidence(0, "주민등록법_시행령/제42조", 0, 0.5)]
    (e,) = conf._with_call(ev, ["주민 등록법 시행령에 따라 재발급 됩니다"], None)
    assert e.law_named == 1.0 and e.call_close == 0.0  # spaces apart; no vectors: no closeness


def test_evidence_files_of_before_the_call_fields_still_read() -> None:
    old = [{"id": "C1", "reference": ["법/제1조"], "evidence": [[0, "법/제1조", 0, 0.5, True, 0]]}]
    ((cid, (e,), gold),) = evidence_from_json(old)
    assert (cid, gold, e.call_close, e.title_said, e.law_named) == ("C1", {"법/제1조"}, 0.0, 0.0, 0.0)
    new = evidence_to_json(
        [("C1", [CardEvidence(0, "법/제1조", 0, 0.5, True, 0, 0.7, 0.5, 1.0)], {"법/제1조"})]
    )
    ((_c, (e2,), _g),) = evidence_from_json(new)
    assert (e2.call_close, e2.title_said, e2.law_named) == (0.7, 0.5, 1.0)
