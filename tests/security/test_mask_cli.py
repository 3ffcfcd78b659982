"""``dasan mask``: line mode (stateless) and ``--jsonl`` (state per call and channel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DASAN = str(Path(sys.executable).with_name("dasan"))


def run(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DASAN, "mask", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ,
    )


def test_line_mode_masks_each_line_on_its_own() -> None:
    out = run(["--names", "rules"], "앞자리는 900101이고요\n1234567이에요\n제 이름은 김철수입니다\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n") == [
        "앞자리는 [주민번호]이고요",
        "1234567이에요",
        "제 이름은 [이름]입니다",
        "",
    ]


def test_jsonl_carries_state_per_call_and_channel() -> None:
    lines: list[dict[str, object]] = [
        {
            "call_id": "c1",
            "channel": "caller",
            "text": "앞자리는 900101이고요",
            "segment_id": "s1",
            "at": 1.5,
        },
        {"call_id": "c2", "channel": "caller", "text": "1234567이에요"},
        {"call_id": "c1", "channel": "counselor", "text": "1234567이에요"},
        {"call_id": "c1", "channel": "caller", "text": "뒤에는 1234567이에요", "at": 4.0},
        {"call_id": "c3", "channel": "caller", "text": "공일공 일이삼사", "is_final": False},
        {"call_id": "c3", "channel": "caller", "text": "오육칠팔이요"},
    ]
    out = run(
        ["--jsonl", "--names", "rules"], "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
    )
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert [g["text"] for g in got] == [
        "앞자리는 [주민번호]이고요",
        "1234567이에요",  # another call
        "1234567이에요",  # the other channel
        "뒤에는 [주민번호]이에요",
        "[전화번호]",
        "오육칠팔이요",  # the partial before it was not remembered
    ]
    assert got[0] == {**lines[0], "text": "앞자리는 [주민번호]이고요"}  # other fields unchanged


def test_jsonl_reports_bad_lines_without_echoing_them() -> None:
    stdin = '{"call_id": "c", "channel": "caller", "text": "010-1234-5678"}\nnot json 010-9999-8888\n{"call_id": "c"}\n'
    out = run(["--jsonl", "--names", "rules"], stdin)
    assert out.returncode == 2
    assert json.loads(out.stdout)["text"] == "[전화번호]"
    assert "line 2" in out.stderr and "line 3" in out.stderr and "missing 'channel'" in out.stderr
    assert "9999" not in out.stderr
