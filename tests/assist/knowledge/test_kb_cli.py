"""The `dasan kb` and `dasan eval retrieval` commands on a corpus slice (BM25 only)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from assist.knowledge import cli


@pytest.fixture()
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dasan")
    sub = p.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval")
    groups = {"eval": ev.add_subparsers(dest="eval_command", required=True)}
    cli.register(sub, groups)
    return p


@pytest.fixture()
def env(corpus_slice, tmp_path: Path, monkeypatch) -> Path:
    corpus = tmp_path / "slice.jsonl"
    corpus.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in corpus_slice), encoding="utf-8")
    monkeypatch.setenv("DASAN_KB_CORPUS_PATHS", json.dumps([str(corpus)]))
    monkeypatch.setenv("DASAN_KB_INDEX_DIR", str(tmp_path / "kb"))
    monkeypatch.setenv("DASAN_KB_DENSE_ENABLED", "false")
    return tmp_path


def test_build_search_info_and_eval(parser, env: Path, capsys) -> None:
    args = parser.parse_args(["kb", "build"])
    assert args.func(args) == 0
    assert "index:" in capsys.readouterr().out
    assert any((env / "kb").iterdir())

    args = parser.parse_args(
        ["kb", "build", "--units"]
    )  # the CPU image's build: no vectors without a dense side
    assert args.func(args) == 0
    assert "no statute-sentence vectors: a BM25-only index" in capsys.readouterr().out

    args = parser.parse_args(["kb", "build", "--if-missing"])  # what the demo runs on every start
    assert args.func(args) == 0
    assert "already built" in capsys.readouterr().out

    # statute-sentence vectors need the dense side: a clear error on a BM25-only index
    args = parser.parse_args(["kb", "units", "--if-missing"])
    assert args.func(args) == 1
    assert "no dense side" in capsys.readouterr().err

    args = parser.parse_args(["kb", "search", "불법주차 딱지", "--top-k", "3", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "불법주차 딱지" and 1 <= len(out["hits"]) <= 3
    assert {"citation", "snippet", "score", "ranks", "doc_id"} <= set(out["hits"][0])

    args = parser.parse_args(["kb", "search", "층간소음", "--topic", "층간소음"])
    assert args.func(args) == 0
    assert "층간소음" in capsys.readouterr().out

    args = parser.parse_args(["kb", "info", "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["records"] > 100

    labelled = env / "eval.jsonl"
    labelled.write_text(
        json.dumps(
            {"id": "T1", "utterance": "인도에 불법주차", "relevant_article_ids": ["도로교통법/제32조"]}
        )
        + "\n"
        + json.dumps({"id": "T2", "utterance": "오늘 날씨 어때요", "relevant_article_ids": []})
        + "\n",
        encoding="utf-8",
    )
    args = parser.parse_args(["eval", "retrieval", str(labelled), "--json"])
    assert args.func(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["methods"]) == {"bm25_ws", "bm25"}
    assert rep["in_scope"] == 1 and rep["out_of_scope"] == 1
    assert 0 <= rep["methods"]["bm25"]["MRR@10"] <= 1


def test_the_build_embeds_the_memory_with_the_encoder_services_query_with(monkeypatch) -> None:
    """An fp32 index is built with torch but queried through ONNX fp32 (``query_encoders``): the
    memory's vectors are keyed by the query encoder, so the build embeds them with the served one."""
    from types import SimpleNamespace

    from assist.knowledge import cli
    from assist.knowledge import kb as kb_module

    loaded: list[tuple[object, object]] = []

    def load(path: object, settings: object, analyzer: object = None) -> object:
        loaded.append((path, analyzer))
        return "served"

    monkeypatch.setattr(kb_module.KnowledgeBase, "load", staticmethod(load))

    def built(index_backend: str, query_backend: str) -> SimpleNamespace:
        settings = SimpleNamespace(query_encoders=lambda: (query_backend, None))
        return SimpleNamespace(
            encoder=SimpleNamespace(backend=index_backend), settings=settings, analyzer="kiwi"
        )

    same = built("bf16", "bf16")  # a bf16 index: its own encoder embeds queries (small batches aside)
    assert cli.served_for_queries(same, "p") is same and not loaded
    assert cli.served_for_queries(built("torch", "onnx-fp32"), "p") == "served"
    assert loaded == [("p", "kiwi")]  # loaded again, reusing the build's analyser
    lexical = SimpleNamespace(encoder=None)
    assert cli.served_for_queries(lexical, "p") is lexical


def test_eval_rerank_refuses_dropped_features_it_does_not_know_or_a_training_without_them(
    parser, capsys
) -> None:
    # refused before any index is opened: a typo would otherwise cost a featurising run
    args = parser.parse_args(["eval", "rerank", "--drop-features", "title_t,title_q"])
    assert args.func(args) == 2
    assert "not ranker features: title_q" in capsys.readouterr().err
    args = parser.parse_args(["eval", "rerank", "--drop-features", "title_t", "--train"])
    assert args.func(args) == 2
    assert "not with --train" in capsys.readouterr().err
    args = parser.parse_args(["eval", "rerank", "--drop-features", "mem_vote"])
    assert args.func(args) == 2
    assert "computed in every fold, use --no-memory" in capsys.readouterr().err


def test_eval_rerank_trains_a_second_model_set_only_for_composed_vectors(parser, capsys) -> None:
    # the shipped set learned from text vectors: another kind goes beside it (composed) or nowhere;
    # refused before any index is opened
    args = parser.parse_args(["eval", "rerank", "--train", "--context-vectors", "composed-h"])
    assert args.func(args) == 2
    assert "no model set is shipped for composed-h vectors" in capsys.readouterr().err
    args = parser.parse_args(
        ["eval", "rerank", "--train", "--live-summaries", "--context-vectors", "composed"]
    )
    assert args.func(args) == 2
    assert "the summary confirmation is the shipped set's" in capsys.readouterr().err


def test_eval_rerank_leaves_out_only_writers_it_knows(parser, capsys) -> None:
    args = parser.parse_args(["eval", "rerank", "--leave-writer-out", "46,450"])
    assert args.func(args) == 2
    assert "no held-out set 450" in capsys.readouterr().err
    assert parser.parse_args(["eval", "rerank", "--leave-writer-out"]).leave_writer_out == "all"
