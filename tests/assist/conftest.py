"""Fixtures for the assist tests: a small slice of the real corpus and a BM25-only knowledge base.

Drafts, keywords, summaries and the service do not measure retrieval quality here, so the index is
lexical only (no embedding model) and holds ~150 articles from the laws the test calls talk about.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# law → article ids kept (None: every article of that law)
ASSIST_SLICE: dict[str, set[str] | None] = {
    "도로교통법": {f"제{n}조" for n in range(32, 37)},
    "도로교통법 시행령": {f"제{n}조" for n in range(10, 16)},
    "서울특별시 수도 조례": None,
    "주민등록법": None,
    "기초연금법": None,
    "서울특별시 강남구 폐기물 관리 조례": None,
    "서울특별시 폐기물 관리 조례": None,
}
# BM25 scores of this slice: in-scope questions score well above 10, small talk below
BM25_CONFIDENCE = 8.0


@pytest.fixture(scope="session")
def assist_slice(shared_dir: Path) -> list[dict[str, Any]]:
    out = []
    with (shared_dir / "corpus" / "regulations.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            keep = ASSIST_SLICE.get(rec["law_name"], set())
            if keep is None or rec["article_no"] in (keep or ()):
                out.append(rec)
    assert 80 < len(out) < 400
    return out


@pytest.fixture(scope="session")
def assist_slice_file(assist_slice: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("assist-corpus") / "slice.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in assist_slice) + "\n", encoding="utf-8"
    )
    return path


@pytest.fixture(scope="session")
def kb_env(assist_slice_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a subprocess (the CLI, a service instance) to open the same slice index."""
    return {
        "DASAN_KB_CORPUS_PATHS": json.dumps([str(assist_slice_file)]),
        "DASAN_KB_DENSE_ENABLED": "false",
        "DASAN_KB_INDEX_DIR": str(tmp_path_factory.mktemp("assist-kb")),
        "DASAN_KB_ABSTAIN_BM25_THRESHOLD": str(BM25_CONFIDENCE),
    }


@pytest.fixture(scope="session")
def slice_kb(kb_env: dict[str, str]) -> Any:
    """The slice index, built once and saved where ``kb_env`` points (subprocesses load it)."""
    from assist.knowledge import KnowledgeBase, KnowledgeSettings

    settings = KnowledgeSettings(
        corpus_paths=json.loads(kb_env["DASAN_KB_CORPUS_PATHS"]),
        dense_enabled=False,
        index_dir=Path(kb_env["DASAN_KB_INDEX_DIR"]),
        abstain_bm25_threshold=BM25_CONFIDENCE,
    )
    return KnowledgeBase.open(settings, progress=False)


@pytest.fixture(scope="session")
def assistant(slice_kb: Any) -> Any:
    from assist.assistant import Assistant
    from assist.settings import AssistSettings

    return Assistant(slice_kb, AssistSettings())
