"""Unit vectors embedded once per index: the dense side of the draft's sentence choice without an
encoder call at serving time.

The grounded draft chooses, in each passage, the statute sentence (or 호 item) it reads; with
``draft_dense_weight`` > 0 the choice also weighs the cosine of the question's vector and each unit's
document vector (:class:`assist.drafts.UnitVectors`). Embedding a card's units on demand costs a
few hundred milliseconds under the encoder's lock (docs/assist.md), so ``dasan kb units`` embeds
every unit of every passage once, with the index's own encoder and document format, and stores them
beside the index:

- ``<index>/unit_vectors.npy``: float16 rows, unit-normalised (cosines are taken in float32);
- ``<index>/unit_vectors.json``: what they were made with (index key, encoder fingerprint, document
  format) and, per passage id, ``[text hash, units hash, first row, row count]``.

A passage's rows are used only while its text *and* its split into units are what they were when
embedded (both hashed), so a changed article or a changed splitter never reads another unit's
vector: it reads none (lexical choice) until ``dasan kb units`` runs again. Files are written
atomically (a temporary name, then a rename), the vectors before the table that points into them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write
from .text import Unit, split_units

log = logging.getLogger("dasan.assist.unit_store")

FORMAT = "1"
MATRIX = "unit_vectors.npy"
TABLE = "unit_vectors.json"


def text_hash(text: str) -> str:
    """The key of a passage's text (the same as the on-demand cache's)."""
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def units_hash(units: Iterable[Unit]) -> str:
    """The key of a passage's split into units: a splitter change makes it differ."""
    return hashlib.sha1("\x1e".join(f"{u.kind}\x1f{u.text}" for u in units).encode()).hexdigest()[:16]


def passage_key(passage_id: str, text: str) -> str:
    """A passage's entry in the table: its id and text (two versions of an article may share an id)."""
    return f"{passage_id}@{text_hash(text)}"


def unit_title(law_name: str, article_title: str | None) -> str:
    """The title a unit is embedded under (the passage's law and article title)."""
    return f"{law_name} {article_title or ''}".strip()


@dataclass(frozen=True)
class UnitStore:
    """Precomputed unit vectors of one index, read-only."""

    matrix: np.ndarray  # float16, one unit-normalised row per unit
    table: dict[str, tuple[str, str, int, int]]  # passage key → (text hash, units hash, first row, rows)
    meta: dict[str, Any]

    @classmethod
    def load(cls, index_path: Path | None, fingerprint: str | None = None) -> UnitStore | None:
        """The store beside ``index_path``, or None when there is none (or it was made by another
        encoder than ``fingerprint``, or is unreadable: logged, never raised)."""
        if index_path is None:
            return None
        table_path, matrix_path = Path(index_path) / TABLE, Path(index_path) / MATRIX
        if not table_path.is_file() or not matrix_path.is_file():
            return None
        try:
            doc = json.loads(table_path.read_text())
            matrix = np.load(matrix_path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            log.warning("unit vectors unreadable: lexical sentence choice", extra={"error": repr(exc)[:300]})
            return None
        meta = {k: v for k, v in doc.items() if k != "passages"}
        if doc.get("format") != FORMAT or (fingerprint is not None and doc.get("encoder") != fingerprint):
            log.warning(
                "unit vectors made by another encoder or format: ignored (run `dasan kb units`)",
                extra={"found": doc.get("encoder"), "wanted": fingerprint, "format": doc.get("format")},
            )
            return None
        table = {pid: (str(t), str(u), int(a), int(n)) for pid, (t, u, a, n) in doc["passages"].items()}
        if any(a + n > len(matrix) for _, _, a, n in table.values()):
            log.warning("unit vectors truncated: ignored (run `dasan kb units`)", extra={"rows": len(matrix)})
            return None
        return cls(matrix, table, meta)

    def rows(self, passage_id: str, text: str, units: list[Unit]) -> np.ndarray | None:
        """The float32 rows of a passage's units, or None when this text or split was not embedded."""
        entry = self.table.get(passage_key(passage_id, text))
        if entry is None:
            return None
        th, uh, first, n = entry
        if n != len(units) or th != text_hash(text) or uh != units_hash(units):
            return None
        return np.asarray(self.matrix[first : first + n], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.table)

    def missing(self, passages: Iterable[Any]) -> int:
        """How many of ``passages`` (with units) have no rows for their current text and split (a
        corpus update, or a changed splitter, since the store was made)."""
        n = 0
        for p in passages:
            units = split_units(p.text)
            n += bool(units) and self.rows(p.passage_id, p.text, units) is None
        return n


def latest_store(index_dir: Path, fingerprint: str, exclude: Path | None = None) -> UnitStore | None:
    """The newest store of another index under ``index_dir`` made by the same encoder (a corpus
    update keeps the rows of unchanged passages), or None."""
    tables = sorted(Path(index_dir).glob(f"*/{TABLE}"), key=lambda t: t.stat().st_mtime, reverse=True)
    for t in tables:
        if exclude is not None and t.parent.resolve() == Path(exclude).resolve():
            continue
        found = UnitStore.load(t.parent, fingerprint)
        if found is not None:
            return found
    return None


def _save_npy(matrix: np.ndarray) -> Callable[[Path], None]:
    def write(p: Path) -> None:
        with p.open("wb") as fh:  # np.save on a name would add ".npy" to the temporary one
            np.save(fh, matrix)

    return write


def precompute(
    kb: Any,
    *,
    batch_size: int = 32,
    progress: bool = False,
    reuse: UnitStore | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Embed every unit of ``kb``'s passages with its encoder (document format, as the index embeds
    passages) and store them beside the index (``kb.path``). ``reuse``: an earlier store of the same
    encoder whose rows are kept where a passage's text and split are unchanged. Returns the figures."""
    from assist.knowledge.dense import document_text

    if kb.path is None:
        raise ValueError("the knowledge base has no folder: save it first (dasan kb build)")
    if kb.encoder is None or kb.dense is None:
        raise ValueError("the index has no dense side (built --bm25-only): nothing to embed units with")
    t0 = clock()
    with_title = bool(getattr(kb.settings, "doc_title_in_prompt", True))
    docs: list[str] = []
    owners: list[tuple[str, str, str, int]] = []  # passage key, text hash, units hash, units
    kept: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    n_units = 0
    for p in kb.passages:
        key = passage_key(p.passage_id, p.text)
        units = split_units(p.text)
        if not units or key in seen:
            continue  # nothing to say, or the same text under the same id again: one set of rows
        seen.add(key)
        n_units += len(units)
        old = reuse.rows(p.passage_id, p.text, units) if reuse is not None else None
        if old is not None:
            kept[key] = old
        else:
            title = unit_title(p.law_name, p.article_title)
            docs.extend(document_text(title, u.text, with_title) for u in units)
        owners.append((key, text_hash(p.text), units_hash(units), len(units)))
    fresh = (
        kb.encoder.encode_documents(docs, batch_size=batch_size, progress=progress)
        if docs
        else np.zeros((0, 0), dtype=np.float32)
    )
    dim = fresh.shape[1] if len(fresh) else next((m.shape[1] for m in kept.values()), 0)
    matrix = np.zeros((n_units, dim), dtype=np.float16)
    table: dict[str, list[Any]] = {}
    row = fresh_row = 0
    for pid, th, uh, n in owners:
        if pid in kept:
            matrix[row : row + n] = kept[pid]
        else:
            matrix[row : row + n] = fresh[fresh_row : fresh_row + n]
            fresh_row += n
        table[pid] = [th, uh, row, n]
        row += n
    seconds = clock() - t0
    meta = {
        "format": FORMAT,
        "index": kb.key,
        "encoder": kb.encoder.fingerprint,
        "backend": kb.encoder.backend,
        "title_in_prompt": with_title,
        "units": n_units,
        "passage_count": len(table),
        "embedded": len(docs),
        "reused": n_units - len(docs),
        "seconds": round(seconds, 1),
    }
    path = Path(kb.path)
    atomic_write(path / MATRIX, _save_npy(matrix))
    atomic_write(path / TABLE, lambda p: p.write_text(json.dumps({**meta, "passages": table})))
    log.info("unit vectors stored", extra={k: v for k, v in meta.items() if k != "passages"})
    return {**meta, "bytes": int(matrix.nbytes), "ms_per_embedded_unit": 1000 * seconds / max(len(docs), 1)}
