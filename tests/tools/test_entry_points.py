"""``python -m <package>`` works for every package, and no package below ``dasan`` imports it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("streaming", "asr", "assist", "console")


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("package", [*PACKAGES, "dasan"])
def test_python_m_package_help(package: str) -> None:
    r = run_module(package, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:") and "COMMAND" in r.stdout


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (("asr", "gateway", "--help"), "usage: python -m asr asr gateway"),  # the namesake's subcommand
        (("asr", "asr", "worker", "--help"), "usage: python -m asr asr worker"),
        (("assist", "kb", "build", "--help"), "usage: python -m assist kb build"),
        (("console", "users", "add", "--help"), "usage: python -m console users add"),
        (("streaming", "topics", "create", "--help"), "usage: python -m streaming topics create"),
    ],
)
def test_python_m_package_subcommand_help(args: tuple[str, ...], usage: str) -> None:
    r = run_module(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(usage), r.stdout


def test_python_m_package_refuses_an_unknown_command() -> None:
    r = run_module("asr", "no-such-command")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_streaming(package: str) -> None:
    """docs/CONVENTIONS.md: a package imports only ``streaming`` (``dasan`` is the top layer)."""
    others = {"dasan", *PACKAGES} - {package, "streaming"}
    bad = {
        f"{path.relative_to(REPO)}: {sorted(_imports(path) & others)}"
        for path in (REPO / package).rglob("*.py")
        if _imports(path) & others
    }
    assert not bad, sorted(bad)
