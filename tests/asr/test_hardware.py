"""Where Whisper runs: the per-machine choice (pure) and the CUDA → CPU fallback (real load)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from asr.hardware import Placement, auto_threads, choose_placement, cuda_device_count
from asr.settings import AsrSettings
from asr.types import DecodeRequest
from streaming.hardware import CpuInfo

AMD_EPYC_ZEN3 = CpuInfo("x86_64", frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"}))
SKYLAKE_SP = CpuInfo("x86_64", frozenset({"avx2", "fma", "avx512f", "avx512bw"}))
ICE_LAKE = CpuInfo("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}))
ALDER_LAKE = CpuInfo("x86_64", frozenset({"avx2", "avx_vnni"}))


def place(cpu: CpuInfo, device: str = "auto", compute: str = "auto", threads: int | str = "auto", **kw: int):
    return choose_placement(
        device, compute, threads, cpu=cpu, cuda_devices=kw.get("cuda", 0), cpus=kw.get("cpus", 2)
    )


@pytest.mark.parametrize(
    ("cpu", "compute_type"),
    [(AMD_EPYC_ZEN3, "float32"), (SKYLAKE_SP, "float32"), (ICE_LAKE, "int8"), (ALDER_LAKE, "int8")],
)
def test_cpu_compute_type_follows_int8_hardware(cpu: CpuInfo, compute_type: str) -> None:
    """int8 where the CPU multiplies int8 in hardware (VNNI); float32 where int8 saturates."""
    p = place(cpu)
    assert (p.device, p.compute_type) == ("cpu", compute_type)
    assert ("has VNNI" in p.reason) == (compute_type == "int8") and "no CUDA device" in p.reason


def test_cuda_gets_float16_and_explicit_settings_win() -> None:
    p = place(AMD_EPYC_ZEN3, cuda=1)
    assert (p.device, p.compute_type) == ("cuda", "float16") and "1 CUDA device" in p.reason
    assert place(ICE_LAKE, device="cpu", cuda=1).device == "cpu"  # the GPU is there, cpu was asked for
    p = place(AMD_EPYC_ZEN3, compute="int8", threads=3)
    assert (p.compute_type, p.cpu_threads) == ("int8", 3) and "as set" in p.reason
    assert place(AMD_EPYC_ZEN3, threads=0).cpu_threads == 0  # CTranslate2: all cores


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (4, 2), (16, 8), (64, 8)])
def test_auto_threads_leave_room_for_the_rest(cpus: int, threads: int) -> None:
    assert auto_threads(cpus) == threads
    assert place(ICE_LAKE, cpus=cpus).cpu_threads == threads


def test_settings_accept_auto_and_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (AsrSettings().device, AsrSettings().compute_type, AsrSettings().cpu_threads) == ("auto",) * 3
    monkeypatch.setenv("DASAN_ASR_CPU_THREADS", "4")
    assert AsrSettings().cpu_threads == 4
    with pytest.raises(ValueError):
        AsrSettings(cpu_threads=-1)


@pytest.mark.slow
@pytest.mark.skipif(cuda_device_count() > 0, reason="needs a machine where CUDA cannot load the model")
@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_cuda_that_fails_to_load_falls_back_to_the_cpu(device: str, caplog: pytest.LogCaptureFixture) -> None:
    """CUDA set, or ``auto`` on a machine whose CTranslate2 reports a device (the probe is told one
    is there): the real CUDA load fails here, and the worker gets a CPU model, a structured warning
    and a reason, never an error."""
    from asr.decoder import WhisperDecoder
    from asr.weights import load_whisper, warm_up

    tried: list[str] = []

    def loader(target: str, placement: Placement, index: int | None) -> Any:
        from asr.weights import _whisper

        tried.append(placement.device)
        return _whisper(target, placement, index)

    settings = AsrSettings(device=device, cpu_threads=1)
    with caplog.at_level(logging.INFO, logger="dasan.asr.weights"):
        model, name, placement = load_whisper(settings, loader=loader, cuda_devices=lambda: 1)
    assert tried == ["cuda", "cpu"] and placement.device == "cpu"
    assert placement.reason.startswith("CUDA failed to load")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "falling back to the CPU" in warned[0].getMessage()
    assert getattr(warned[0], "event", None) == "asr_cuda_fallback"
    assert getattr(warned[0], "requested", None) == device and getattr(warned[0], "device", None) == "cpu"
    assert getattr(warned[0], "compute_type", None) == placement.compute_type
    loaded = [r for r in caplog.records if r.getMessage() == "whisper loaded"]
    assert loaded and getattr(loaded[0], "reason", None) == placement.reason
    warm_up(model)  # the warm-up a CUDA load runs works on the real model
    dec = WhisperDecoder(model, name, settings.decoder_options(), placement)
    silence = DecodeRequest("s", "s:0", np.zeros(16_000, np.float32), True, 1, 0.0, 1.0, speech_s=1.0)
    assert len(dec.decode([silence])) == 1  # the CPU model works
