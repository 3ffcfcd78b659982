"""Keywords, grounded drafts (citations, register, abstention) and the llm path with its citation check.

The llm path talks to a tiny OpenAI-compatible HTTP server on a loopback port that returns scripted
completions (a fake LLM, as DESIGN.md endorses for deterministic pipeline tests); the citation
checker that judges those completions is the real one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from assist.citations import CitationChecker
from assist.drafts import GroundedGenerator, LlmGenerator, parse_cited_sentences
from assist.settings import AssistSettings
from assist.text import split_units, to_counselor_register
from streaming.events import Suggestion

PARKING = "저기요, 아파트 정문 앞 인도에 차가 바퀴 두 개를 올려놓고 세워 놨어요. 이것도 불법주차 맞죠?"
METER = "밤새 추워서 그런지 수도 계량기가 얼어서 터졌어요, 물이 안 나와요. 교체 비용은 제가 내야 돼요?"
ID_CARD = "주민등록증을 잃어버렸는데 재발급 받으려면 어떻게 해야 돼요?"
OUT_OF_SCOPE = "이번 토요일 여의도 불꽃축제 몇 시부터 해요?"


@pytest.mark.parametrize(
    ("legal", "spoken"),
    [
        ("차를 정차하거나 주차하여서는 아니 된다.", "차를 정차하거나 주차하시면 안 됩니다."),
        ("시장에게 신고하여야 한다.", "시장에게 신고하셔야 합니다."),
        ("재발급을 신청할 수 있다.", "재발급을 신청할 수 있습니다."),
        ("그러하지 아니하다.", "그렇지 않습니다."),
        ("사용자가 부담한다.", "사용자가 부담합니다."),
        ("수수료는 시장이 정한다.", "수수료는 시장이 정합니다."),
        ("이 조례는 공포한 날부터 시행된다.", "이 조례는 공포한 날부터 시행됩니다."),
        ("이 법의 목적은 안전이다.", "이 법의 목적은 안전입니다."),
        ("교부(交付)를 받는다.", "교부를 받습니다."),
    ],
)
def test_counselor_register(legal: str, spoken: str) -> None:
    assert to_counselor_register(legal) == spoken


def test_a_full_stop_inside_brackets_ends_no_sentence() -> None:
    """지방세법 제20조 ④: the bracketed "[등재(登載)를 포함한다. 이하 같다]" is inside one sentence."""
    text = (
        "④ 신고ㆍ납부기한 이내에 공부(公簿)에 등기하거나 등록[등재(登載)를 포함한다. 이하 같다]하려는 경우에는 "
        "접수하는 날까지 취득세를 신고ㆍ납부하여야 한다. 이 경우 확인서를 발급받을 수 있다."
    )
    units = split_units(text)
    assert len(units) == 2 and units[1].text.startswith("이 경우"), units
    assert "포함한다. 이하 같다]하려는" in units[0].text and units[0].text.endswith("신고ㆍ납부하여야 한다")
    # an unbalanced bracket never swallows more than the line it is on
    assert len(split_units("① 가[나. 다는 한다.\n② 라는 한다.")) == 2


def test_split_units_keeps_items_under_their_sentence() -> None:
    text = (
        "① 모든 차의 운전자는 다음 각 호의 곳에서는 주차하여서는 아니 된다. <개정 2020.5.26>\n"
        "  1. 터널 안 및 다리 위\n  2. 소방용수시설로부터 5미터 이내인 곳\n"
        "② 시장은 필요하다고 인정하면 정할 수 있다."
    )
    units = split_units(text)
    assert [u.kind for u in units] == ["sentence", "item", "item", "sentence"]
    assert units[1].parent == 0 and units[2].parent == 0
    assert "개정" not in units[0].text


def test_keywords_are_domain_nouns(assistant: Any) -> None:
    for text, expected in ((METER, "계량기"), (PARKING, "주차"), (ID_CARD, "주민등록증")):
        kws = assistant.keywords.terms([text])
        assert 3 <= len(kws) <= 8 or len(kws) == len(set(kws)) < 3
        assert any(expected in k for k in kws), kws
        assert not {"저기요", "저기", "거", "제"} & set(kws)


def test_keywords_skip_the_wrap_up_words_of_any_call(assistant: Any) -> None:
    """A caller summing up ("정리하면 …") tags the call with what was summed up, not with 정리."""
    kws = assistant.keywords.terms(["네 알겠습니다. 정리하면 취득세는 60일 안에, 재산세는 7월이랑 9월."])
    assert "취득세" in kws and "재산세" in kws
    assert not {"정리", "요약"} & set(kws)


def test_keywords_never_show_masked_data(assistant: Any) -> None:
    from streaming.privacy import mask_text

    kws = assistant.keywords.terms([mask_text("연락처는 공일공 사오육칠에 팔팔구구예요, 계량기가 터졌어요")])
    assert kws and not any("전화" in k or "[" in k for k in kws)
    assert assistant.keywords.terms([""]) == []
    assert assistant.keywords.terms(["ㅋㅋㅋ ... ?? 123"]) == []


def test_grounded_draft_cites_retrieved_passages_in_counselor_register(assistant: Any) -> None:
    for text in (PARKING, METER, ID_CARD):
        res = assistant.suggest_text(text)
        assert res.confident and not res.draft.abstained
        assert res.draft.generator == "grounded"
        known = {p.passage_id for p in res.passages}
        for s in res.draft.sentences:
            assert s.citations and set(s.citations) <= known
            assert s.text.endswith(("니다.", "됩니다.")), s.text
            assert "아니 된다" not in s.text and not s.text.rstrip(".").endswith("한다")
        # the event contract itself checks that citations resolve
        Suggestion(
            call_id="c1",
            suggestion_id="s1",
            trigger_segment_ids=["seg1"],
            query=res.query,
            passages=res.passages,
            draft=res.draft,
        )


def test_grounded_draft_is_supported_by_its_passages(assistant: Any) -> None:
    checker = CitationChecker.for_kb(assistant.kb)
    res = assistant.suggest_text(METER)
    hits = {h.passage_id: h for h in res.hits}
    for s in res.draft.sentences:
        h = hits[s.citations[0]]
        assert checker.check(s.text, h.text, h.passage_id, h.citation).supported, s.text


def test_grounded_draft_is_deterministic(assistant: Any) -> None:
    a = assistant.suggest_text(ID_CARD)
    b = assistant.suggest_text(ID_CARD)
    assert a.draft == b.draft and [p.passage_id for p in a.passages] == [p.passage_id for p in b.passages]


def test_abstains_out_of_scope_and_on_garbage(assistant: Any) -> None:
    for text in (OUT_OF_SCOPE, "", "   ", "ㅋㅋㅋㅋ", "네네 네 감사합니다"):
        res = assistant.suggest_text(text)
        assert res.draft.abstained and not res.draft.sentences
        assert res.passages == []
        assert res.draft.abstain_reason


def test_prohibition_becomes_spoken_prohibition(assistant: Any) -> None:
    kb = assistant.kb
    gen = GroundedGenerator(kb.analyzer.content_morphemes_many, kb.idf, AssistSettings(draft_passages=1))
    hits = [
        h
        for h in kb.search("보도에 주차하면 안 되나요 정차 주차 금지 장소", 10)
        if h.doc_id == "도로교통법/제32조"
    ]
    assert hits, "도로교통법 제32조 is in the slice"
    draft = gen.draft("보도에 차를 주차해도 되나요?", hits[:1], True)
    assert any("주차하시면 안 됩니다" in s.text for s in draft.sentences), draft
    assert draft.sentences[0].text.startswith("도로교통법 제32조에 따르면")


# --------------------------------------------------------------------------- llm path


class FakeLLM:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 answering from a script."""

    def __init__(self) -> None:
        self.script: list[tuple[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                kind, payload = fake.script.pop(0) if fake.script else ("text", "")
                if kind == "sleep":
                    time.sleep(float(payload))
                    payload, kind = "늦은 답변입니다 [1]", "text"
                if kind == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                raw = (
                    payload
                    if kind == "raw"
                    else json.dumps(
                        {"choices": [{"message": {"role": "assistant", "content": payload}}]},
                        ensure_ascii=False,
                    )
                )
                data = raw.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fake_llm() -> Iterator[FakeLLM]:
    f = FakeLLM()
    yield f
    f.close()


def _llm(assistant: Any, url: str, timeout: float = 5.0) -> LlmGenerator:
    kb = assistant.kb
    settings = AssistSettings(generator="llm", llm_base_url=url, llm_timeout_s=timeout, llm_model="fake")
    grounded = GroundedGenerator(kb.analyzer.content_morphemes_many, kb.idf, settings)
    return LlmGenerator(settings, CitationChecker.for_kb(kb), grounded)


def test_parse_cited_sentences() -> None:
    out = parse_cited_sentences(
        "계량기는 사용자가 관리합니다 [1]. 비용은 구청이 냅니다.\n둘 다 해당합니다 [1][2]", 2
    )
    assert out == [
        ("계량기는 사용자가 관리합니다.", [1]),
        ("비용은 구청이 냅니다.", []),
        ("둘 다 해당합니다", [1, 2]),
    ]


def test_llm_keeps_supported_and_drops_unsupported_sentences(assistant: Any, fake_llm: FakeLLM) -> None:
    hits = assistant.kb.search(METER, 3)
    top = hits[0]
    # a sentence made of the passage's own words (supported) and an invented one (unsupported)
    words = top.text.split("\n")[0].lstrip("①②③ ").split()[:12]
    supported = " ".join(words).rstrip(".") + "."
    fake_llm.script.append(
        (
            "text",
            f"{supported} [1]\n수도 계량기 교체는 무조건 무료이고 3일 안에 120만 원을 드립니다 [1]\n근거 없는 문장입니다.",
        )
    )
    gen = _llm(assistant, fake_llm.url)
    draft = gen.draft(METER, hits, True)
    assert draft.generator == "llm"
    assert [s.text for s in draft.sentences] == [supported]
    assert draft.sentences[0].citations == [top.passage_id]
    assert gen.dropped_sentences == 2 and gen.model_sentences == 3 and gen.kept_sentences == 1
    msg = fake_llm.requests[0]["messages"][1]["content"]
    assert "[1]" in msg and top.citation in msg and fake_llm.requests[0]["model"] == "fake"


def test_llm_drops_a_copied_heading_as_a_sentence(assistant: Any, fake_llm: FakeLLM) -> None:
    # small models copy the passage's heading back with its marker: it names the source, claims nothing
    hits = assistant.kb.search(METER, 3)
    fake_llm.script.append(("text", f"[1] {hits[0].citation}\n{hits[1].citation} [2]"))
    gen = _llm(assistant, fake_llm.url)
    draft = gen.draft(METER, hits, True)
    assert draft.generator == "grounded(llm-fallback)"
    assert gen.model_sentences == 2 and gen.kept_sentences == 0
    assert gen.fallback_reasons == {"check_failed": 1}


def test_llm_falls_back_to_grounded(assistant: Any, fake_llm: FakeLLM) -> None:
    hits = assistant.kb.search(ID_CARD, 3)
    grounded = GroundedGenerator(
        assistant.kb.analyzer.content_morphemes_many, assistant.kb.idf, AssistSettings()
    )
    expected = grounded.draft(ID_CARD, hits, True).sentences
    fake_llm.script += [
        ("error", None),
        ("raw", "{not json"),
        ("text", "아무 근거 없는 말입니다 [1]"),
        ("sleep", 1.5),
    ]
    gen = _llm(assistant, fake_llm.url, timeout=0.5)
    for _ in range(4):
        draft = gen.draft(ID_CARD, hits, True)
        assert draft.generator == "grounded(llm-fallback)"
        assert draft.sentences == expected
    assert gen.fallbacks == 4
    assert gen.fallback_reasons == {"http_error": 1, "unparsable": 1, "check_failed": 1, "timeout": 1}


def test_llm_abstains_below_threshold_without_calling(assistant: Any, fake_llm: FakeLLM) -> None:
    gen = _llm(assistant, fake_llm.url)
    draft = gen.draft(OUT_OF_SCOPE, assistant.kb.search(OUT_OF_SCOPE, 3), False)
    assert draft.abstained and not fake_llm.requests


def test_llm_unreachable_endpoint_falls_back(assistant: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = _llm(assistant, f"http://127.0.0.1:{port}/v1", timeout=1.0)
    hits = assistant.kb.search(METER, 3)
    assert gen.draft(METER, hits, True).generator == "grounded(llm-fallback)"


def test_llm_writes_the_summary_reason_and_falls_back(slice_kb: Any, fake_llm: FakeLLM) -> None:
    from assist.assistant import Assistant
    from assist.summary import Summarizer, Turn
    from streaming.events import Channel

    settings = AssistSettings(generator="llm", llm_base_url=fake_llm.url, llm_timeout_s=2.0)
    summarizer = Summarizer(Assistant(slice_kb, settings))
    turns = [
        Turn(Channel.counselor, "120다산콜센터입니다."),
        Turn(Channel.caller, "연락처는 공일공 사오육칠에 팔팔구구예요. " + METER),
        Turn(Channel.counselor, "계량기 동파는 관할 수도사업소에 신고하시면 교체해 드립니다."),
    ]
    fake_llm.script += [("text", "수도 계량기 동파 교체 비용 부담 문의"), ("error", None)]
    first = summarizer.summarize(turns)
    assert first.generator == "llm" and first.call_reason == "수도 계량기 동파 교체 비용 부담 문의"
    sent = json.dumps(fake_llm.requests[0], ensure_ascii=False)
    assert "팔팔구구" not in sent and "[전화번호]" in sent  # the model only ever sees masked text
    second = summarizer.summarize(turns)
    assert second.generator == "grounded(llm-fallback)" and second.call_reason
    assert second.category == first.category and second.regulations_cited == first.regulations_cited


def _words(texts: list[str]) -> list[list[str]]:
    return [[w.strip(".,?①②") for w in t.split() if w.strip(".,?①②")] for t in texts]


def test_sentence_choice_leans_on_what_the_counselor_just_said() -> None:
    """A follow-up ("그 60일을 넘기면요?") shares few words with the article; the counselor's last
    words (the 60-day duty to report and pay) pick the sentence the conversation is about."""
    from types import SimpleNamespace

    idf = {"등기": 2.0}.get
    text = "① 취득세 60일 신고 납부하여야 한다.\n② 채권자 등기 대위하여 취득세를 낼 수 있다."
    hit = SimpleNamespace(
        passage_id="p1",
        doc_id="지방세법/제20조",
        citation="c",
        law_name="지방세법",
        article_no="제20조",
        article_title=None,
        text=text,
        score=1.0,
    )
    query = "60일 넘기면 등기"
    context = "취득세 60일 이내 신고 납부하셔야 합니다"

    def chosen(weight: float, ctx: str) -> str:
        gen = GroundedGenerator(_words, lambda t: idf(t, 1.0), AssistSettings(draft_context_weight=weight))
        return gen.select(query, [hit], ctx)[0][1][0]

    assert chosen(0.0, context).startswith("채권자")  # the question alone: 등기 outweighs 60일
    assert chosen(0.5, "").startswith("채권자")  # no context, no change
    assert chosen(0.5, context).startswith("취득세 60일")
    # the question's own terms keep their full weight; context adds only what the question lacks
    gen = GroundedGenerator(_words, lambda t: idf(t, 1.0), AssistSettings(draft_context_weight=0.5))
    terms = gen.terms(query, context)
    assert terms["60일"] == 1.0 and terms["등기"] == 2.0 and terms["신고"] == 0.5


def test_an_in_call_withholding_says_no_card_is_needed_not_out_of_scope() -> None:
    """The in-call model withholds statements and answers as well as unanswerable questions: its
    card says so, where a single question's says the question is outside the regulations."""
    from types import SimpleNamespace

    from assist.assistant import Assistant

    hit = SimpleNamespace(
        law_name="지방세법", article_no="제115조", scores={"out_of_scope": 0.62, "in_call": 1.0}
    )
    with_model: Any = SimpleNamespace(reranker=SimpleNamespace(call_abstainer=object()))
    reason = Assistant.abstain_reason(with_model, [hit], False)
    assert "카드가 필요해 보이지 않습니다" in reason and "62%" in reason and "제115조" in reason
    single = SimpleNamespace(
        law_name="지방세법", article_no="제115조", scores={"out_of_scope": 0.62, "in_call": 0.0}
    )
    assert "규정집 밖의 질문" in Assistant.abstain_reason(with_model, [single], False)
    without: Any = SimpleNamespace(reranker=SimpleNamespace(call_abstainer=None))
    assert "규정집 밖의 질문" in Assistant.abstain_reason(without, [hit], False)
