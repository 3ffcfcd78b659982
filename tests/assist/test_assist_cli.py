"""The commands: dasan mask, dasan assist suggest, dasan summarize, dasan eval assist (on the slice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DASAN = str(Path(sys.executable).with_name("dasan"))


def _run(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    out = subprocess.run(
        [DASAN, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_mask_reads_lines_and_writes_one_line_per_line() -> None:
    text = "연락처는 공일공 사오육칠에 팔팔구구예요\n\n「도로교통법」 제32조, 5월 28일, 30만 원\nhong@example.com\n"
    out = _run(["mask"], stdin=text)
    lines = out.split("\n")
    assert lines[0] == "연락처는 [전화번호]예요"
    assert lines[1] == ""
    assert lines[2] == "「도로교통법」 제32조, 5월 28일, 30만 원"
    assert lines[3] == "[이메일]"
    assert out.count("\n") == text.count("\n")


def test_suggest_json(slice_kb: Any, kb_env: dict[str, str]) -> None:
    out = json.loads(
        _run(["assist", "suggest", "수도 계량기가 얼어서 터졌어요 교체 비용은 누가 내요?", "--json"], kb_env)
    )
    assert out["keywords"] and out["passages"] and not out["draft"]["abstained"]
    known = {p["passage_id"] for p in out["passages"]}
    assert all(set(s["citations"]) <= known for s in out["draft"]["sentences"])
    assert set(out["latency"]) >= {"masking_ms", "keywords_ms", "retrieval_ms", "draft_ms", "total_ms"}
    text = _run(["assist", "suggest", "여의도 불꽃축제 몇 시부터 해요?"], kb_env)
    assert "조문이 규정집에 없습니다" in text  # and says why: nothing matched


def test_summarize_and_eval(slice_kb: Any, kb_env: dict[str, str], shared_dir: Path, tmp_path: Path) -> None:
    calls = shared_dir / "eval-dev" / "calls.jsonl"
    out = json.loads(_run(["summarize", str(calls), "--call", "DCALL02", "--json"], kb_env))
    assert out["call_id"] == "DCALL02" and out["category"] == "주민등록"
    assert "삼칠이구" not in json.dumps(out, ensure_ascii=False)
    # eval on a few utterances of the slice's topics and one call
    items = [
        json.loads(line)
        for line in (shared_dir / "eval-dev" / "utterances.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    few = [i for i in items if i["topic"] in ("상수도요금", "범위외")][:6]
    sample = tmp_path / "few.jsonl"
    sample.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in few) + "\n", encoding="utf-8")
    one_call = tmp_path / "one-call.jsonl"
    one_call.write_text(calls.read_text(encoding="utf-8").splitlines()[2] + "\n", encoding="utf-8")
    res = json.loads(_run(["eval", "assist", str(sample), str(one_call), "--json"], kb_env))
    u = res["utterances"]
    assert u["items"] == len(few) and u["out_of_scope"]["n"] >= 1
    assert 0 <= u["keywords"]["f1"] <= 1 and u["unsupported_sentence_rate"] is not None
    assert res["calls"]["calls"] == 1 and res["calls"]["key_fact_recall"] is not None


def test_kb_memory_info_and_clear(tmp_path: Path) -> None:
    """`dasan kb memory info|clear`: the shipped memory's size, the site's (none yet), and clearing
    the site's file leaves the shipped one alone."""
    import numpy as np

    from assist.knowledge.memory import QuestionMemory

    site = tmp_path / "site.npz"
    env = {"DASAN_KB_MEMORY_SITE_PATH": str(site)}
    info = json.loads(_run(["kb", "memory", "info"], env=env))
    assert info["shipped"]["questions"] > 1000 and info["site"] == {"questions": 0, "path": str(site)}
    QuestionMemory.build(np.eye(2, 768, dtype=np.float32), [["도로교통법/제32조"], []], ["", ""]).save(site)
    info = json.loads(_run(["kb", "memory", "info"], env=env))
    assert info["site"]["questions"] == 2 and info["site"]["out_of_scope"] == 1
    assert "2 questions" in _run(["kb", "memory", "clear"], env=env)
    assert not site.exists()
