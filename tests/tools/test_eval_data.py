"""The project's own labelled evaluation data (``eval/``) passes ``scripts/validate_eval.py``, and the
validator really fails on broken data (each rule is exercised with one deliberately broken item)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "validate_eval.py"
CALLS = REPO / "eval" / "calls.jsonl"


def run_validator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def corpus(shared_dir: Path) -> Path:
    return shared_dir / "corpus" / "regulations.jsonl"


@pytest.fixture(scope="module")
def good_call() -> dict:
    return json.loads(CALLS.read_text(encoding="utf-8").splitlines()[0])


def write_jsonl(path: Path, items: list[dict | str]) -> Path:
    lines = [item if isinstance(item, str) else json.dumps(item, ensure_ascii=False) for item in items]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def only_calls(tmp_path: Path, calls: Path, corpus: Path) -> list[str]:
    """Arguments that check one calls file and no utterance files."""
    return [
        "--calls",
        str(calls),
        "--utterances",
        str(tmp_path / "absent.jsonl"),
        "--noisy",
        str(tmp_path / "absent_noisy.jsonl"),
        "--corpus",
        str(corpus),
    ]


def test_repo_eval_files_are_valid(corpus: Path) -> None:
    result = run_validator("--corpus", str(corpus))
    assert result.returncode == 0, result.stderr
    assert "categories (20/20)" in result.stdout
    assert result.stdout.rstrip().endswith("OK")


def test_corpus_path_follows_dasan_shared_dir(shared_dir: Path) -> None:
    env = {**os.environ, "DASAN_SHARED_DIR": str(shared_dir)}
    assert run_validator(env=env).returncode == 0
    env["DASAN_SHARED_DIR"] = str(shared_dir / "no-such-folder")
    result = run_validator(env=env)
    assert result.returncode == 2
    assert "corpus not found" in result.stderr


def test_a_copied_good_call_passes(tmp_path: Path, corpus: Path, good_call: dict) -> None:
    path = write_jsonl(tmp_path / "calls.jsonl", [good_call])
    result = run_validator(*only_calls(tmp_path, path, corpus))
    assert result.returncode == 0, result.stderr


def test_validator_fails_on_a_broken_line(tmp_path: Path, corpus: Path, good_call: dict) -> None:
    path = write_jsonl(tmp_path / "calls.jsonl", [good_call, '{"id": "ECALL99", "turns": ['])
    result = run_validator(*only_calls(tmp_path, path, corpus))
    assert result.returncode == 1
    assert "calls.jsonl:2: not JSON" in result.stderr


def _citizen(call: dict) -> dict:
    return call["turns"][1]


def _set(path: Callable[[dict], dict], key: str, value: object) -> Callable[[dict], None]:
    def mutate(call: dict) -> None:
        path(call)[key] = value

    return mutate


def _drop_label(call: dict) -> None:
    del _citizen(call)["relevant_article_ids"]


def _citizen_first(call: dict) -> None:
    call["turns"] = call["turns"][1:] + call["turns"][:1]


BROKEN_CALLS: dict[str, tuple[Callable[[dict], None], str]] = {
    "unknown article id": (
        _set(_citizen, "relevant_article_ids", ["도로교통법/제999조"]),
        "도로교통법/제999조 is not in the corpus",
    ),
    "four ids on one turn": (
        _set(
            _citizen,
            "relevant_article_ids",
            ["도로교통법/제32조", "도로교통법/제33조", "도로교통법/제34조", "도로교통법/제35조"],
        ),
        "has 4 ids, expected 0-3",
    ),
    "label is not a list": (_set(_citizen, "relevant_article_ids", "도로교통법/제32조"), "must be a list"),
    "citizen turn without labels": (_drop_label, "citizen turn without relevant_article_ids"),
    "citizen speaks first": (_citizen_first, "expected counselor (strict alternation)"),
    "labels on a counselor turn": (
        _set(lambda c: c["turns"][0], "relevant_article_ids", []),
        "counselor turns carry no relevant_article_ids",
    ),
    "too few turns": (lambda c: c.update(turns=c["turns"][:10]), "10 turns, expected 12-20"),
    "category outside the taxonomy": (lambda c: c.update(category="기타"), "is not one of the 20 categories"),
    "unknown id in the summary": (
        _set(lambda c: c["reference_summary"], "regulations_cited", ["주차장법/제0조"]),
        "주차장법/제0조 is not in the corpus",
    ),
    "summary field missing": (lambda c: c["reference_summary"].pop("action_taken"), "has no action_taken"),
    "source not self-written": (lambda c: c.update(source={"type": "dataset"}), "source must be"),
}


@pytest.mark.parametrize("case", list(BROKEN_CALLS), ids=list(BROKEN_CALLS))
def test_validator_fails_on_a_broken_call(case: str, tmp_path: Path, corpus: Path, good_call: dict) -> None:
    mutate, message = BROKEN_CALLS[case]
    broken = copy.deepcopy(good_call)
    mutate(broken)
    path = write_jsonl(tmp_path / "calls.jsonl", [good_call | {"id": "ECALL90"}, broken])
    result = run_validator(*only_calls(tmp_path, path, corpus))
    assert result.returncode == 1
    assert message in result.stderr, result.stderr


def test_validator_fails_on_a_duplicate_call_id(tmp_path: Path, corpus: Path, good_call: dict) -> None:
    path = write_jsonl(tmp_path / "calls.jsonl", [good_call, good_call])
    result = run_validator(*only_calls(tmp_path, path, corpus))
    assert result.returncode == 1
    assert "duplicate id" in result.stderr


GOOD_UTTERANCE = {
    "id": "T001",
    "utterance": "저기요, 소화전 앞에 차가 맨날 서 있는데 이거 주차하면 안 되는 거죠?",
    "topic": "불법주정차",
    "relevant_article_ids": ["도로교통법/제32조"],
    "keywords": ["소화전", "주정차금지", "5미터"],
    "source": {"type": "self_written"},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, None),
        (
            {"topic": "범위외", "keywords": ["날씨", "예보", "범위외"]},
            "범위외 items must have relevant_article_ids []",
        ),
        ({"relevant_article_ids": []}, "has 0 ids, expected 1-3"),
        ({"keywords": ["소화전", "주정차"]}, "2 keywords, expected 3-6"),
        ({"topic": "기타"}, "is neither a category nor 범위외"),
    ],
    ids=["good", "out-of-scope-with-ids", "in-scope-without-ids", "two-keywords", "unknown-topic"],
)
def test_utterance_rules_apply_when_the_file_exists(
    change: dict, message: str | None, tmp_path: Path, corpus: Path
) -> None:
    utterances = write_jsonl(tmp_path / "utterances.jsonl", [GOOD_UTTERANCE | change])
    noisy = write_jsonl(
        tmp_path / "utterances_noisy.jsonl",
        [
            GOOD_UTTERANCE
            | change
            | {"id": "T001N", "variant_of": "T001", "utterance": "소화전 앞에 차가 맨날"}
        ],
    )
    args = [
        "--calls",
        str(CALLS),
        "--utterances",
        str(utterances),
        "--noisy",
        str(noisy),
        "--corpus",
        str(corpus),
    ]
    result = run_validator(*args)
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1
        assert message in result.stderr, result.stderr


def test_noisy_variant_must_repeat_its_clean_labels(tmp_path: Path, corpus: Path) -> None:
    utterances = write_jsonl(tmp_path / "utterances.jsonl", [GOOD_UTTERANCE])
    noisy = write_jsonl(
        tmp_path / "utterances_noisy.jsonl",
        [
            GOOD_UTTERANCE
            | {"id": "T001N", "variant_of": "T001", "relevant_article_ids": ["도로교통법/제33조"]},
            GOOD_UTTERANCE | {"id": "T002N", "variant_of": "T002"},
        ],
    )
    args = [
        "--calls",
        str(CALLS),
        "--utterances",
        str(utterances),
        "--noisy",
        str(noisy),
        "--corpus",
        str(corpus),
    ]
    result = run_validator(*args)
    assert result.returncode == 1
    assert "topic or labels differ from T001" in result.stderr
    assert "variant_of 'T002' is not an utterance id" in result.stderr
