"""The encoder backend is chosen from what the machine has, never from the developer's CPU."""

from __future__ import annotations

import logging

import pytest

from assist.knowledge.dense import choose_backend
from assist.knowledge.settings import KnowledgeSettings
from streaming.hardware import CpuInfo, cpu_flags, cuda_usable

AVX2_EPYC = frozenset(["fpu", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"])  # the machine in issue 12
SAPPHIRE = AVX2_EPYC | {"avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"}
ZEN4 = AVX2_EPYC | {"avx512f", "avx512_bf16", "avx512_vnni"}
NO_CUDA = (False, "no CUDA device")


@pytest.mark.parametrize(
    ("flags", "cuda", "backend"),
    [
        (AVX2_EPYC, NO_CUDA, "torch"),
        (SAPPHIRE, NO_CUDA, "bf16"),
        (ZEN4, NO_CUDA, "bf16"),
        (frozenset({"avx512f"}), NO_CUDA, "torch"),  # AVX-512 without BF16: bf16 is still emulated
        (AVX2_EPYC, (True, "CUDA device H200"), "cuda"),
        (AVX2_EPYC, (False, "CUDA present but unusable: RuntimeError('driver')"), "torch"),
    ],
)
def test_choice_follows_the_hardware(flags: frozenset[str], cuda: tuple[bool, str], backend: str) -> None:
    choice = choose_backend(CpuInfo("x86_64", flags), cuda)
    assert choice.backend == backend
    assert choice.reason  # always says why
    if backend == "torch" and not cuda[0]:
        # fp32, not the faster int8: the calibrated thresholds and models hold (and it says so)
        assert "emulated" in choice.reason and "calibrated" in choice.reason and cuda[1] in choice.reason


def test_auto_resolves_from_the_flags_the_process_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    from assist.knowledge import dense

    for flags, want in ((AVX2_EPYC, "torch"), (SAPPHIRE, "bf16")):
        monkeypatch.setenv("DASAN_CPU_FLAGS", " ".join(sorted(flags)))
        monkeypatch.setenv("DASAN_DISABLE_CUDA", "1")
        cpu_flags.cache_clear()
        dense.backend_choice.cache_clear()
        s = KnowledgeSettings(dense_backend="auto").resolved()
        assert s.dense_backend == want
        report = s.backend_report()
        assert report["requested"] == "auto" and report["backend"] == want and report["reason"]
        # an explicit choice is kept as it is, whatever the machine
        assert KnowledgeSettings(dense_backend="torch").resolved().dense_backend == "torch"
        # cuda asked for on a machine without a usable GPU: the CPU choice, not an exception
        assert KnowledgeSettings(dense_backend="cuda").resolved().dense_backend == want
    cpu_flags.cache_clear()
    dense.backend_choice.cache_clear()


def test_index_key_differs_by_concrete_backend(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """An index built with one backend is never found by settings that resolve to another."""
    from assist.knowledge import dense
    from assist.knowledge.store import dense_key

    model = tmp_path / "model"
    model.mkdir()
    (model / "modules.json").write_text("[]")
    keys = {}
    for backend in ("bf16", "int8", "torch"):
        s = KnowledgeSettings(dense_backend=backend, embedding_model_path=model)
        keys[backend] = dense_key(s)
    assert len(set(keys.values())) == 3
    monkeypatch.setenv("DASAN_CPU_FLAGS", " ".join(sorted(AVX2_EPYC)))
    monkeypatch.setenv("DASAN_DISABLE_CUDA", "1")
    cpu_flags.cache_clear()
    dense.backend_choice.cache_clear()
    try:
        auto = dense_key(KnowledgeSettings(dense_backend="auto", embedding_model_path=model))
        assert auto == keys["torch"]
    finally:
        cpu_flags.cache_clear()
        dense.backend_choice.cache_clear()


@pytest.mark.skipif(cuda_usable()[0], reason="needs a machine where CUDA cannot load a model")
@pytest.mark.parametrize(("flags", "fallback"), [(SAPPHIRE, "bf16"), (AVX2_EPYC, "torch")])
def test_a_model_that_fails_to_load_on_cuda_runs_on_the_cpu(
    flags: frozenset[str], fallback: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The index was keyed ``cuda`` (the probe said yes) and the model then fails to go onto the GPU:
    torch really fails here (no CUDA in this build or no device), and the encoder loads on the CPU
    with vectors of the GPU's numerics (bf16/fp32, never int8), logged once with its reason."""
    import torch

    from assist.knowledge.dense import load_with_cuda_fallback

    loaded: list[str] = []

    def load(backend: str) -> torch.nn.Module:
        loaded.append(backend)
        dtype = torch.float32 if backend == "torch" else torch.bfloat16
        return torch.nn.Linear(4, 4).to(device="cuda" if backend == "cuda" else "cpu", dtype=dtype)

    with caplog.at_level(logging.INFO, logger="assist.knowledge.dense"):
        model, backend, device = load_with_cuda_fallback("cuda", load, CpuInfo("x86_64", flags))
    assert (backend, device, loaded) == (fallback, "cpu", ["cuda", fallback])
    assert next(model.parameters()).device.type == "cpu"
    assert model(torch.ones(1, 4, dtype=next(model.parameters()).dtype)).shape == (1, 4)  # it runs
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert getattr(warning, "event", None) == "encoder_cuda_fallback"
    assert getattr(warning, "backend", None) == fallback and getattr(warning, "device", None) == "cpu"
    assert "CUDA" in getattr(warning, "error", "")
    # a CPU backend is loaded as asked, with no warning and no second try
    caplog.clear()
    loaded.clear()
    _, backend, device = load_with_cuda_fallback("int8", load, CpuInfo("x86_64", flags))
    assert (backend, device, loaded) == ("int8", "cpu", ["int8"]) and not caplog.records
