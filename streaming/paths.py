"""Where things live on a machine (the deployment layout every service shares).

- ``DASAN_SHARED_DIR``: the read-only data folder (corpus, eval sets, audio); default ``<repo>/../shared``.
- ``DASAN_MODEL_DIR``: models assembled from registry packages; default ``<repo>/.models``.
- ``DASAN_VAR_DIR``: state written at run time (indexes, SQLite, logs); default ``<repo>/var``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("DASAN_SHARED_DIR", REPO_ROOT.parent / "shared"))


def model_dir() -> Path:
    return Path(os.environ.get("DASAN_MODEL_DIR", REPO_ROOT / ".models"))


def var_dir() -> Path:
    path = Path(os.environ.get("DASAN_VAR_DIR", REPO_ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path
