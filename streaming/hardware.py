"""What this machine can do, read at run time (never assumed from the developer's machine).

Machines the project runs on differ: the CPU of one 2-core server has AVX512-BF16 and AMX (bfloat16
matrix work in hardware), another only AVX2/FMA, where bfloat16 is emulated and 3-5x *slower* than
fp32. Services choose their numeric backends from these facts (``assist.knowledge.dense`` for the
encoder, ``asr`` for Whisper) and log the choice with its reason.

``DASAN_CPU_FLAGS`` (space-separated) overrides what ``/proc/cpuinfo`` says: a way to check the
choice a machine of another kind would make, and what the tests use.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags (``avx2``, ``avx512_bf16``, ``amx_bf16`` …) of the first processor."""
    override = os.environ.get("DASAN_CPU_FLAGS")
    if override is not None:
        return frozenset(override.split())
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class CpuInfo:
    machine: str
    flags: frozenset[str]

    @property
    def bf16(self) -> bool:
        """bfloat16 matrix work in hardware (AVX512-BF16 or AMX-BF16)."""
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def vnni(self) -> bool:
        """int8 dot products in hardware (AVX512-VNNI or AVX-VNNI)."""
        return bool({"avx512_vnni", "avx_vnni"} & self.flags)

    @property
    def family(self) -> str:
        """A short name for reports: the widest vector extension and the matrix units present."""
        if "amx_bf16" in self.flags:
            return f"{self.machine} AVX-512 + AMX"
        if self.avx512:
            return f"{self.machine} AVX-512" + (" BF16" if self.bf16 else "")
        if "avx2" in self.flags:
            return f"{self.machine} AVX2"
        return self.machine


def cpu_info() -> CpuInfo:
    return CpuInfo(platform.machine() or "unknown", cpu_flags())


def cuda_usable() -> tuple[bool, str]:
    """Whether a CUDA device can really be used by torch (present *and* a kernel runs), and why not.

    ``torch.cuda.is_available()`` can be true while the first kernel fails (driver/runtime mismatch),
    so a tiny operation is run. ``DASAN_DISABLE_CUDA=1`` turns the GPU path off."""
    if os.environ.get("DASAN_DISABLE_CUDA", "").strip() in ("1", "true", "yes"):
        return False, "DASAN_DISABLE_CUDA is set"
    try:
        import torch
    except Exception as exc:  # pragma: no cover - torch is a dependency
        return False, f"torch not importable: {exc!r}"
    try:
        if not torch.cuda.is_available():
            return False, "no CUDA device"
        x = torch.ones(4, device="cuda")
        float((x * 2).sum().item())
        return True, f"CUDA device {torch.cuda.get_device_name(0)}"
    except Exception as exc:
        return False, f"CUDA present but unusable: {exc!r}"


def configure_threading() -> None:
    """Make OpenMP worker threads (torch's encoder, CTranslate2) *sleep* while they wait for work.

    By default libgomp spins waiting threads. On a machine whose cores are shared (the broker, the
    console, ASR and the assist on two cores; a test suite; another tenant's load) a spinning team
    fights the processes it waits for: measured on the 2-core machine under load (load average 5),
    one EmbeddingGemma query with 2 torch threads took 1.4-1.6 s spinning and 0.11-0.22 s passive
    (1 thread: 0.10 s). ``OMP_WAIT_POLICY`` is read when the OpenMP runtime starts, so this must run
    before torch or CTranslate2 is imported: every command line calls it first
    (:func:`streaming.cmdline.run`). An explicit setting in the environment wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
