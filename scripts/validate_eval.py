#!/usr/bin/env python3
"""Check the project's own labelled evaluation data (``eval/``) against the corpus.

Standard library only, so it runs anywhere the data is edited. Checks:

- ``eval/calls.jsonl`` (required): one JSON object per line with ``id``, ``topic``, ``category`` (one of
  the 20 taxonomy categories), ``source`` (``{"type": "self_written"}``), ``turns`` and
  ``reference_summary`` (``call_reason``, ``key_facts``, ``action_taken``, ``regulations_cited``);
  unique ids; 12-20 turns whose speakers strictly alternate with the counselor first; every citizen
  turn carries ``relevant_article_ids`` (a list of 0-3 distinct ids), counselor turns carry none.
- ``eval/utterances.jsonl`` (checked only if it exists): ``id``, ``utterance``, ``topic`` (a category
  or ``범위외``), ``relevant_article_ids`` (1-3 ids in scope, ``[]`` for ``범위외``), 3-6 ``keywords``,
  ``source``; unique ids.
- ``eval/utterances_noisy.jsonl`` (checked only if it exists): the same rules, plus ``variant_of``
  naming an utterance in ``utterances.jsonl`` whose topic and labels it repeats.
- Every article id (turn labels, ``regulations_cited``, utterance labels) exists in the corpus,
  ``../shared/corpus/regulations.jsonl`` relative to the repository (``$DASAN_SHARED_DIR`` overrides
  the shared folder, ``--corpus`` the file).

Prints counts and exits 1 when anything is wrong (every problem is listed, not just the first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TypeGuard

REPO = Path(__file__).resolve().parents[1]

CATEGORIES = (
    "불법주정차",
    "과태료_의견진술",
    "대형폐기물",
    "생활폐기물",
    "무단투기",
    "층간소음",
    "공동주택",
    "생활소음",
    "지방세",
    "상수도요금",
    "택시_버스",
    "대중교통",
    "동물",
    "복지",
    "주민등록",
    "여권",
    "도로파손",
    "주차",
    "개인정보",
    "민원처리",
)
OUT_OF_SCOPE = "범위외"
SPEAKERS = ("counselor", "citizen")
MIN_TURNS, MAX_TURNS = 12, 20
MAX_TURN_IDS = 3
SUMMARY_FIELDS = ("call_reason", "key_facts", "action_taken", "regulations_cited")


def default_corpus() -> Path:
    shared = Path(os.environ.get("DASAN_SHARED_DIR", REPO.parent / "shared"))
    return shared / "corpus" / "regulations.jsonl"


def load_corpus_ids(path: Path) -> set[str]:
    ids: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ids.add(json.loads(line)["id"])
    return ids


def read_jsonl(path: Path, errors: list[str]) -> list[tuple[int, dict]]:
    """Parsed objects with their line numbers; unparsable or non-object lines become errors."""
    rows: list[tuple[int, dict]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                errors.append(f"{path.name}:{lineno}: empty line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{path.name}:{lineno}: not JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                errors.append(f"{path.name}:{lineno}: not a JSON object")
                continue
            rows.append((lineno, obj))
    return rows


def _is_str(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _check_id_list(
    value: object, where: str, corpus: set[str], errors: list[str], lo: int, hi: int
) -> list[str]:
    """A list of lo..hi distinct corpus ids; returns the valid ids it holds."""
    if not isinstance(value, list):
        errors.append(f"{where}: must be a list of article ids")
        return []
    if not lo <= len(value) <= hi:
        errors.append(f"{where}: has {len(value)} ids, expected {lo}-{hi}")
    good: list[str] = []
    for art in value:
        if not _is_str(art):
            errors.append(f"{where}: id {art!r} is not a string")
        elif art not in corpus:
            errors.append(f"{where}: {art} is not in the corpus")
        else:
            good.append(art)
    strings = [v for v in value if isinstance(v, str)]
    if len(set(strings)) != len(strings):
        errors.append(f"{where}: repeated id")
    return good


def check_calls(path: Path, corpus: set[str], errors: list[str]) -> dict:
    rows = read_jsonl(path, errors)
    seen: set[str] = set()
    stats: dict = {
        "calls": 0,
        "turns": 0,
        "citizen_turns": 0,
        "labelled": 0,
        "empty": 0,
        "categories": Counter(),
        "turn_ids": set(),
        "summary_ids": set(),
    }
    for lineno, call in rows:
        cid = call.get("id")
        where = f"{path.name}:{lineno} ({cid})"
        if not _is_str(cid):
            errors.append(f"{where}: missing id")
        elif cid in seen:
            errors.append(f"{where}: duplicate id")
        else:
            seen.add(cid)
        if not _is_str(call.get("topic")):
            errors.append(f"{where}: missing topic")
        category = call.get("category")
        if category not in CATEGORIES:
            errors.append(f"{where}: category {category!r} is not one of the 20 categories")
        else:
            stats["categories"][category] += 1
        if call.get("source") != {"type": "self_written"}:
            errors.append(f'{where}: source must be {{"type": "self_written"}}')
        turns = call.get("turns")
        if not isinstance(turns, list):
            errors.append(f"{where}: turns must be a list")
            turns = []
        if not MIN_TURNS <= len(turns) <= MAX_TURNS:
            errors.append(f"{where}: {len(turns)} turns, expected {MIN_TURNS}-{MAX_TURNS}")
        for i, turn in enumerate(turns):
            twhere = f"{where} turn {i}"
            if not isinstance(turn, dict):
                errors.append(f"{twhere}: not an object")
                continue
            expected = SPEAKERS[i % 2]
            if turn.get("speaker") != expected:
                errors.append(
                    f"{twhere}: speaker {turn.get('speaker')!r}, expected {expected} (strict alternation)"
                )
            if not _is_str(turn.get("text")):
                errors.append(f"{twhere}: empty text")
            if turn.get("speaker") == "citizen":
                stats["citizen_turns"] += 1
                if "relevant_article_ids" not in turn:
                    errors.append(f"{twhere}: citizen turn without relevant_article_ids")
                    continue
                ids = _check_id_list(
                    turn["relevant_article_ids"],
                    f"{twhere} relevant_article_ids",
                    corpus,
                    errors,
                    0,
                    MAX_TURN_IDS,
                )
                stats["turn_ids"].update(ids)
                if turn["relevant_article_ids"]:
                    stats["labelled"] += 1
                else:
                    stats["empty"] += 1
            elif "relevant_article_ids" in turn:
                errors.append(f"{twhere}: counselor turns carry no relevant_article_ids")
        stats["turns"] += len(turns)
        summary = call.get("reference_summary")
        if not isinstance(summary, dict):
            errors.append(f"{where}: missing reference_summary")
        else:
            for field in SUMMARY_FIELDS:
                if field not in summary:
                    errors.append(f"{where}: reference_summary has no {field}")
            if "call_reason" in summary and not _is_str(summary["call_reason"]):
                errors.append(f"{where}: reference_summary.call_reason must be a non-empty string")
            for field in ("key_facts", "action_taken"):
                value = summary.get(field)
                if field in summary and (not isinstance(value, list) or not all(_is_str(v) for v in value)):
                    errors.append(f"{where}: reference_summary.{field} must be a list of strings")
            if "regulations_cited" in summary:
                stats["summary_ids"].update(
                    _check_id_list(
                        summary["regulations_cited"],
                        f"{where} regulations_cited",
                        corpus,
                        errors,
                        1,
                        len(corpus),
                    )
                )
        stats["calls"] += 1
    return stats


def check_utterances(
    path: Path, corpus: set[str], errors: list[str], originals: dict[str, dict] | None = None
) -> dict:
    """Utterance rules; with ``originals`` (clean items by id) every item must be a ``variant_of`` one."""
    rows = read_jsonl(path, errors)
    seen: set[str] = set()
    stats: dict = {
        "utterances": 0,
        "in_scope": 0,
        "out_of_scope": 0,
        "topics": Counter(),
        "ids": set(),
        "items": {},
    }
    for lineno, item in rows:
        uid = item.get("id")
        where = f"{path.name}:{lineno} ({uid})"
        if not _is_str(uid):
            errors.append(f"{where}: missing id")
        elif uid in seen:
            errors.append(f"{where}: duplicate id")
        else:
            seen.add(uid)
            stats["items"][uid] = item
        if originals is not None:
            clean = originals.get(item.get("variant_of", ""))
            if clean is None:
                errors.append(f"{where}: variant_of {item.get('variant_of')!r} is not an utterance id")
            elif (clean.get("topic"), clean.get("relevant_article_ids")) != (
                item.get("topic"),
                item.get("relevant_article_ids"),
            ):
                errors.append(f"{where}: topic or labels differ from {clean.get('id')}")
        if not _is_str(item.get("utterance")):
            errors.append(f"{where}: missing utterance")
        topic = item.get("topic")
        if topic != OUT_OF_SCOPE and topic not in CATEGORIES:
            errors.append(f"{where}: topic {topic!r} is neither a category nor {OUT_OF_SCOPE}")
        else:
            stats["topics"][topic] += 1
        if item.get("source") != {"type": "self_written"}:
            errors.append(f'{where}: source must be {{"type": "self_written"}}')
        if "relevant_article_ids" not in item:
            errors.append(f"{where}: missing relevant_article_ids")
        elif topic == OUT_OF_SCOPE:
            stats["out_of_scope"] += 1
            if item["relevant_article_ids"] != []:
                errors.append(f"{where}: {OUT_OF_SCOPE} items must have relevant_article_ids []")
        else:
            stats["in_scope"] += 1
            stats["ids"].update(
                _check_id_list(
                    item["relevant_article_ids"], f"{where} relevant_article_ids", corpus, errors, 1, 3
                )
            )
        keywords = item.get("keywords")
        if not isinstance(keywords, list) or not all(_is_str(k) for k in keywords):
            errors.append(f"{where}: keywords must be a list of strings")
        elif not 3 <= len(keywords) <= 6:
            errors.append(f"{where}: {len(keywords)} keywords, expected 3-6")
        stats["utterances"] += 1
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Validate eval/calls.jsonl (and the utterance files if present)."
    )
    parser.add_argument(
        "--calls", type=Path, default=REPO / "eval" / "calls.jsonl", help="calls file to check"
    )
    parser.add_argument(
        "--utterances",
        type=Path,
        default=REPO / "eval" / "utterances.jsonl",
        help="utterances file to check (skipped when it does not exist)",
    )
    parser.add_argument(
        "--noisy",
        type=Path,
        default=REPO / "eval" / "utterances_noisy.jsonl",
        help="noisy utterance variants to check (skipped when it does not exist)",
    )
    parser.add_argument(
        "--corpus", type=Path, default=None, help="regulations.jsonl (default: shared corpus)"
    )
    args = parser.parse_args(argv)

    corpus_path = args.corpus or default_corpus()
    if not corpus_path.is_file():
        print(f"corpus not found: {corpus_path} (set DASAN_SHARED_DIR or --corpus)", file=sys.stderr)
        return 2
    if not args.calls.is_file():
        print(f"calls file not found: {args.calls}", file=sys.stderr)
        return 2
    corpus = load_corpus_ids(corpus_path)
    errors: list[str] = []

    calls = check_calls(args.calls, corpus, errors)
    print(
        f"{args.calls}: {calls['calls']} calls, {calls['turns']} turns, {calls['citizen_turns']} citizen turns"
    )
    print(f"  citizen turns with ids: {calls['labelled']}, with []: {calls['empty']}")
    print(
        f"  distinct ids: {len(calls['turn_ids'])} on turns, {len(calls['summary_ids'])} in summaries, "
        f"{len(calls['turn_ids'] | calls['summary_ids'])} together"
    )
    print(
        f"  categories ({len(calls['categories'])}/{len(CATEGORIES)}): "
        + ", ".join(f"{c} {calls['categories'][c]}" for c in CATEGORIES)
    )
    missing = [c for c in CATEGORIES if not calls["categories"][c]]
    if missing:
        print(f"  categories without a call: {', '.join(missing)}")

    originals: dict[str, dict] = {}
    if args.utterances.is_file():
        utt = check_utterances(args.utterances, corpus, errors)
        originals = utt["items"]
        print(
            f"{args.utterances}: {utt['utterances']} utterances ({utt['in_scope']} in scope, "
            f"{utt['out_of_scope']} {OUT_OF_SCOPE}), {len(utt['ids'])} distinct ids"
        )
        print("  topics: " + ", ".join(f"{t} {n}" for t, n in sorted(utt["topics"].items())))
    else:
        print(f"{args.utterances}: not present, skipped")
    if args.noisy.is_file():
        noisy = check_utterances(args.noisy, corpus, errors, originals=originals)
        print(f"{args.noisy}: {noisy['utterances']} noisy variants")
    else:
        print(f"{args.noisy}: not present, skipped")

    if errors:
        print(f"\n{len(errors)} error(s):", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
