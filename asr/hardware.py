"""Where and how Whisper runs on this machine: device, CTranslate2 compute type and threads.

Chosen at start from what the machine has (``streaming.hardware``: ``/proc/cpuinfo`` flags; the CUDA
devices CTranslate2 sees), logged with the reason; every part can be set instead
(``DASAN_ASR_DEVICE``, ``DASAN_ASR_COMPUTE_TYPE``, ``DASAN_ASR_CPU_THREADS``). :func:`choose_placement`
is pure: the facts come in as arguments.

Why int8 only with VNNI (measured, docs/asr.md "Which CPU"): without VNNI (AVX2-only CPUs such as
AMD EPYC Zen 2/3, or AVX-512 without VNNI) CTranslate2's int8 products go through 16-bit
intermediate sums that saturate, and beam search then goes wrong on some utterances: on the
2.5-minute test call one utterance came out at CER 0.51 (0.42 on the machine that reported it)
where float32 and int8 with VNNI give 0.15 or better. float32 costs about twice the compute of
int8 there; ``DASAN_ASR_COMPUTE_TYPE=int8`` buys the capacity back at that accuracy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from streaming.hardware import CpuInfo

MAX_AUTO_THREADS = 8


@dataclass(frozen=True)
class Placement:
    device: str  # cpu | cuda
    compute_type: str
    cpu_threads: int  # CTranslate2 intra-op threads (0: all)
    reason: str
    cpu: str  # the CPU family, for reports


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup cpusets, unlike ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cuda_device_count() -> int:
    """CUDA devices CTranslate2 can see (0 when it has no CUDA runtime or no driver)."""
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:
        return 0


def auto_threads(cpus: int) -> int:
    """Half the usable CPUs, 1 to 8: the consumer thread (VAD, Kafka) and the machine's other
    services need the rest, and Whisper base gains little from more intra-op threads."""
    return max(1, min(MAX_AUTO_THREADS, cpus // 2))


def choose_cpu(compute_type: str, threads: int | str, cpu: CpuInfo, cpus: int) -> Placement:
    """The CPU placement: ``compute_type`` and ``threads`` as set, or chosen (``auto``)."""
    n = auto_threads(cpus) if threads == "auto" else int(threads)
    why_threads = f"threads: {n} of {cpus} CPUs" if threads == "auto" else f"threads: {n or 'all'} as set"
    if compute_type != "auto":
        return Placement(
            "cpu", compute_type, n, f"compute type {compute_type} as set; {why_threads}", cpu.family
        )
    if cpu.vnni:
        why = "the CPU has VNNI (int8 dot products in hardware): int8 is as accurate as float32 and faster"
        return Placement("cpu", "int8", n, f"{why}; {why_threads}", cpu.family)
    why = (
        "the CPU lacks VNNI: int8 sums saturate in 16 bits and some utterances decode badly "
        "(docs/asr.md), so float32 (about twice the compute of int8)"
    )
    return Placement("cpu", "float32", n, f"{why}; {why_threads}", cpu.family)


def choose_placement(
    device: str, compute_type: str, threads: int | str, *, cpu: CpuInfo, cuda_devices: int, cpus: int
) -> Placement:
    """Device, compute type and threads for the settings given (``auto`` parts chosen here)."""
    if device == "auto":
        device = "cuda" if cuda_devices > 0 else "cpu"
        found = f"{cuda_devices} CUDA device(s)" if cuda_devices else "no CUDA device"
    else:
        found = f"device {device} as set"
    if device == "cpu":
        p = choose_cpu(compute_type, threads, cpu, cpus)
        return Placement(p.device, p.compute_type, p.cpu_threads, f"{found}; {p.reason}", p.cpu)
    ct = "float16" if compute_type == "auto" else compute_type
    why = "float16, the windows of many streams batched in one forward pass" if compute_type == "auto" else ct
    n = auto_threads(cpus) if threads == "auto" else int(threads)
    return Placement("cuda", ct, n, f"{found}: {why}", cpu.family)
