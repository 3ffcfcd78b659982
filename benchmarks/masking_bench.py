"""Masking quality and throughput: recall/precision of personal-data masks, leaks, false masks.

Sets:

- ``labelled``: tests/security/pii_cases.jsonl — spoken-Korean segments with the exact masked
  output expected (written with the masker: a development set) and sentences that must survive;
- ``unseen``: tests/security/pii_cases_unseen.jsonl — written after the masker, run once before any
  change for it (its first-run figure is in docs/security.md), then used as a check;
- ``eval-dev``: the PII-bearing items of ../shared/eval-dev (README: D002, D034, D038, D049, D057,
  DCALL02) with the raw fragments that must disappear, and every other utterance and call turn of
  eval-dev, where any mask is counted as a false mask (those items carry no labelled personal data).

Per set and names mode (``model`` = cue rules + kiwipiepy NNP, ``rules`` = cue rules only):
mask-token recall and precision (a segment's expected ``[KIND]`` tokens against the produced ones,
kind by kind), exact segments, leaked raw fragments, sentences changed that should not be.
Throughput: segments per second through :class:`ConversationMasker` and :func:`mask_text` over
every eval text (after one warm-up pass; Kiwi's load time is reported apart).

    .venv/bin/python benchmarks/masking_bench.py           # prints a table, writes results/masking.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine_info import machine  # noqa: E402

from streaming import paths, pii_names  # noqa: E402
from streaming.privacy import ALL_MASKS, ConversationMasker, NamesMode, mask_text, normalize  # noqa: E402

RESULTS = Path(__file__).parent / "results"
MASK_RE = re.compile("|".join(re.escape(m) for m in ALL_MASKS))
# eval-dev's PII items (its README) and the raw fragments of each (tests/security/test_masking.py too)
EVAL_DEV_PII: dict[str, list[str]] = json.loads(
    (REPO / "tests" / "security" / "eval_dev_pii.json").read_text(encoding="utf-8")
)
SPEAKER = {"citizen": "caller", "counselor": "counselor"}


def read_cases(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score_cases(cases: list[dict[str, Any]], names: NamesMode) -> dict[str, Any]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    exact = segments = leaks = raws = kept = keep_total = 0
    misses: list[str] = []
    for case in cases:
        if case.get("needs") == "model" and names != "model":
            continue
        masker = ConversationMasker(names=names)
        got = [masker.mask(case["id"], s["channel"], s["text"]) for s in case["segments"]]
        if not case["pii"]:
            keep_total += 1
            kept += got == case["expected"]
            for g in got:
                fp.update(MASK_RE.findall(g))
            if got != case["expected"]:
                misses.append(case["id"])
            continue
        for g, e in zip(got, case["expected"], strict=True):
            segments += 1
            exact += g == e
            want, have = Counter(MASK_RE.findall(e)), Counter(MASK_RE.findall(g))
            tp.update(want & have)
            fp.update(have - want)
            fn.update(want - have)
        joined = "\n".join(got)
        for raw in case["raw"]:
            raws += 1
            leaks += normalize(raw) in joined
        if got != case["expected"]:
            misses.append(case["id"])
    t, p, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    kinds = sorted(set(tp) | set(fp) | set(fn))
    return {
        "pii_segments": segments,
        "exact_segments": exact,
        "mask_recall": t / (t + n) if t + n else None,
        "mask_precision": t / (t + p) if t + p else None,
        "raw_fragments": raws,
        "leaked_fragments": leaks,
        "keep_sentences": keep_total,
        "keep_unchanged": kept,
        "per_kind": {k: {"tp": tp[k], "fp": fp[k], "fn": fn[k]} for k in kinds},
        "not_exact": misses,
    }


def eval_dev_items(shared: Path) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[tuple[str, str]]]]:
    """(PII items, all other items) as {id: [(channel, text), …]}."""
    items: dict[str, list[tuple[str, str]]] = {}
    for line in (shared / "eval-dev" / "utterances.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        items[d["id"]] = [("caller", d["utterance"])]
    for line in (shared / "eval-dev" / "calls.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        items[d["id"]] = [(SPEAKER[t["speaker"]], t["text"]) for t in d["turns"]]
    pii = {k: v for k, v in items.items() if k in EVAL_DEV_PII}
    rest = {k: v for k, v in items.items() if k not in EVAL_DEV_PII}
    return pii, rest


def score_eval_dev(shared: Path, names: NamesMode) -> dict[str, Any]:
    pii, rest = eval_dev_items(shared)
    masker = ConversationMasker(names=names)
    leaks, raws, clean_items, masks_on_pii = 0, 0, 0, 0
    leaked: list[str] = []
    for item, turns in pii.items():
        outs = [masker.mask(item, ch, t) for ch, t in turns]
        joined = "\n".join(outs)
        masks_on_pii += len(MASK_RE.findall(joined))
        item_leaks = [r for r in EVAL_DEV_PII[item] if r in joined]
        raws += len(EVAL_DEV_PII[item])
        leaks += len(item_leaks)
        clean_items += not item_leaks
        leaked += [f"{item}:{r}" for r in item_leaks]
    false_masks: list[str] = []
    segments = 0
    for item, turns in rest.items():
        for ch, t in turns:
            segments += 1
            out = masker.mask(item, ch, t)
            false_masks += [f"{item}:{m}" for m in MASK_RE.findall(out)]
        masker.end_call(item)
    return {
        "pii_items": len(pii),
        "pii_items_clean": clean_items,
        "raw_fragments": raws,
        "leaked_fragments": leaks,
        "leaked": leaked,
        "masks_on_pii_items": masks_on_pii,
        "other_segments": segments,
        "false_masks": len(false_masks),
        "false_mask_examples": false_masks[:10],
    }


def all_texts(shared: Path) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    pii, rest = eval_dev_items(shared)
    for item, turns in {**pii, **rest}.items():
        out += [(item, ch, t) for ch, t in turns]
    for name in ("utterances.jsonl", "utterances_noisy.jsonl"):
        path = REPO / "eval" / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                d = json.loads(line)
                out.append((d["id"], "caller", d["utterance"]))
    return out


def throughput(texts: list[tuple[str, str, str]], names: NamesMode, repeat: int) -> dict[str, Any]:
    ConversationMasker(names=names).mask("warm", "caller", "제 이름은 김철수입니다 010-1234-5678")
    for _, _, t in texts:
        mask_text(t, names=names)
    chars = sum(len(t) for _, _, t in texts) * repeat
    t0 = time.perf_counter()
    for _ in range(repeat):
        for _, _, t in texts:
            mask_text(t, names=names)
    stateless = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in range(repeat):
        masker = ConversationMasker(names=names)
        for item, ch, t in texts:
            masker.mask(f"{item}-{r}", ch, t)
    conv = time.perf_counter() - t0
    n = len(texts) * repeat
    return {
        "segments": n,
        "chars": chars,
        "mask_text_segments_per_s": n / stateless,
        "mask_text_ms_per_segment": 1000 * stateless / n,
        "conversation_segments_per_s": n / conv,
        "conversation_ms_per_segment": 1000 * conv / n,
        "conversation_chars_per_s": chars / conv,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="passes over the texts for throughput")
    ap.add_argument("--out", type=Path, default=RESULTS / "masking.json")
    args = ap.parse_args()
    shared = paths.shared_dir()
    t0 = time.perf_counter()
    pii_names.shared_kiwi().tokenize("모델 준비")
    kiwi_load_s = time.perf_counter() - t0
    result: dict[str, Any] = {"machine": machine(), "kiwi_load_s": kiwi_load_s, "sets": {}, "throughput": {}}
    texts = all_texts(shared)
    modes: tuple[NamesMode, ...] = ("model", "rules")
    for names in modes:
        result["sets"][f"labelled/{names}"] = score_cases(
            read_cases(REPO / "tests/security/pii_cases.jsonl"), names
        )
        result["sets"][f"unseen/{names}"] = score_cases(
            read_cases(REPO / "tests/security/pii_cases_unseen.jsonl"), names
        )
        result["sets"][f"eval-dev/{names}"] = score_eval_dev(shared, names)
        result["throughput"][names] = throughput(texts, names, args.repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    print(f"\nMasking — {result['machine'].get('cpu_model')} ({result['machine']['cpus']} cores, shared)")
    print(f"{'set / names':22s} {'recall':>7s} {'precis.':>7s} {'exact':>9s} {'leaks':>7s} {'kept':>7s}")
    for name, r in result["sets"].items():
        if name.startswith("eval-dev"):
            print(
                f"{name:22s} {'':>7s} {'':>7s} {r['pii_items_clean']:>4d}/{r['pii_items']:<4d}"
                f" {r['leaked_fragments']:>3d}/{r['raw_fragments']:<3d}"
                f" {r['other_segments'] - r['false_masks']:>4d}/{r['other_segments']:<4d}"
            )
        else:
            print(
                f"{name:22s} {pct(r['mask_recall']):>7s} {pct(r['mask_precision']):>7s}"
                f" {r['exact_segments']:>4d}/{r['pii_segments']:<4d} {r['leaked_fragments']:>3d}/{r['raw_fragments']:<3d}"
                f" {r['keep_unchanged']:>3d}/{r['keep_sentences']:<3d}"
            )
    print("(eval-dev: exact = PII items with no raw fragment left; kept = other segments with no mask)")
    print(
        f"\nthroughput over {len(texts)} eval texts x {args.repeat} (Kiwi load {kiwi_load_s:.1f} s, apart):"
    )
    for names, t in result["throughput"].items():
        print(
            f"  {names:6s} mask_text {t['mask_text_ms_per_segment']:.2f} ms/segment "
            f"({t['mask_text_segments_per_s']:.0f}/s); ConversationMasker {t['conversation_ms_per_segment']:.2f} "
            f"ms/segment ({t['conversation_segments_per_s']:.0f}/s, {t['conversation_chars_per_s'] / 1000:.0f}k chars/s)"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
