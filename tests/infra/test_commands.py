"""Every `dasan …` command the images, compose file and operator guide run exists in the CLI."""

from __future__ import annotations

import re
import shlex

import pytest

from .manifests import DOCKERFILES, INFRA, compose

README = INFRA / "README.md"


def readme_commands() -> list[list[str]]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            m = re.search(r"(?:^|--\s|exec\s+\S+\s)dasan\s+(.*)$", line)
            if m and not line.startswith("#"):
                out.append(shlex.split(m.group(1)))
    return out


def dockerfile_commands() -> list[list[str]]:
    out = []
    for df in DOCKERFILES:
        text = df.read_text(encoding="utf-8")
        run_lines = [ln for ln in text.replace("\\\n", " ").splitlines() if ln.startswith("RUN ")]
        for line in run_lines:
            out += [shlex.split(m) for m in re.findall(r"\bdasan ([a-z][^;&\n]*)", line)]
        cmd = re.search(r"^CMD \[(.*)\]$", text, re.M)
        assert cmd
        args = [a.strip().strip('"') for a in cmd.group(1).split(",")]
        if args != ["--help"]:
            out.append(args)
    return out


def compose_commands() -> list[list[str]]:
    return [s["command"] for s in compose()["services"].values() if s.get("image", "").startswith("${DASAN_")]


def all_commands() -> list[list[str]]:
    return readme_commands() + dockerfile_commands() + compose_commands()


def test_commands_are_found() -> None:
    cmds = all_commands()
    assert ["users", "add", "admin", "--role", "admin"] in cmds
    assert ["models", "install", "--only", "whisper"] in cmds
    assert ["asr", "worker"] in cmds and ["topics", "create", "--replication-factor", "3"] in cmds


@pytest.mark.parametrize("args", all_commands(), ids=lambda a: " ".join(a)[:60])
def test_command_parses(args: list[str]) -> None:
    from dasan.cli import build_parser

    try:
        parsed = build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"`dasan {' '.join(args)}` is not a valid command of the dasan CLI", pytrace=False)
    assert callable(parsed.func)
