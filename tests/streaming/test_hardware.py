"""Machine facts read at run time, and the threading policy every command sets first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streaming.hardware import CpuInfo, configure_threading, cpu_flags, cpu_info


def test_cpu_flags_come_from_the_machine_or_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_flags.cache_clear()
    try:
        monkeypatch.setenv("DASAN_CPU_FLAGS", "avx2 fma")
        assert cpu_info().flags == {"avx2", "fma"}
        assert not cpu_info().bf16 and cpu_info().family.endswith("AVX2")
        cpu_flags.cache_clear()
        monkeypatch.delenv("DASAN_CPU_FLAGS")
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            line = next(x for x in fh if x.startswith(("flags", "Features")))
        assert cpu_flags() == frozenset(line.split(":", 1)[1].split())
    finally:
        cpu_flags.cache_clear()


def test_family_names_the_widest_extension() -> None:
    assert CpuInfo("x86_64", frozenset({"avx2", "avx512f", "amx_bf16"})).family == "x86_64 AVX-512 + AMX"
    assert CpuInfo("x86_64", frozenset({"avx2", "avx512f", "avx512_bf16"})).family == "x86_64 AVX-512 BF16"
    assert CpuInfo("aarch64", frozenset({"asimd"})).family == "aarch64"


def test_openmp_threads_sleep_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    configure_threading()

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    configure_threading()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_every_command_line_sets_the_policy_before_its_command_runs() -> None:
    code = (
        "import os, sys; os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "from streaming.cmdline import build_parser, run\n"
        "def reg(sub, groups):\n"
        "    p = sub.add_parser('show'); p.set_defaults(func=lambda a: print(os.environ['OMP_WAIT_POLICY']) or 0)\n"
        "run(build_parser('x', 'x', [reg]), ['show'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert out.stdout.strip() == "PASSIVE", out.stderr
