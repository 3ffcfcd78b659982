"""Files the assist writes beside an index (vectors, tables): written whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temporary name beside ``path``, then rename it over ``path``, so a reader
    (another process loading the same index) never sees half a file; the temporary file is removed
    if ``write`` fails. ``write`` must write to the name it is given, not add a suffix to it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
