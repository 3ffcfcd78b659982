"""Built indexes on disk: their keys, manifests, saving and loading, the latest vectors (reuse by
``dasan kb update``) and provisional indexes.

An index lives in ``<index_dir>/<key>/``. The key hashes everything that changes what the index
holds: the corpus records, the analyser (user dictionary, variants, version), the passage settings
(the *content key*) and everything that changes a vector (the *dense key*: model, concrete backend,
token cap, title in prompt, unit). Keys are computed from the records and settings alone, without
building the analyser (kiwipiepy) or loading the model, so finding an index costs a corpus read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .analyzer import analyzer_fingerprint
from .corpus import load_records, record_hash, topic_terms
from .dense import model_fingerprint
from .records import Passage, Record
from .settings import KnowledgeSettings

INDEX_FORMAT = "1"
MANIFEST = "manifest.json"
# settings recorded in the manifest (what the vectors and passages were built with)
BUILT_WITH = {
    "dense_backend",
    "max_seq_length",
    "doc_title_in_prompt",
    "dense_unit",
    "passage_max_chars",
    "passage_min_chars",
    "embedding_model_path",
}


class IndexNotFound(FileNotFoundError):
    """No built index matches the corpus, models and settings."""


def sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()


# -- keys ---------------------------------------------------------------------------------------
def dense_key(settings: KnowledgeSettings) -> str:
    """Everything that changes a passage vector (reuse of vectors across builds is keyed on it)."""
    if not settings.dense_enabled:
        return "none"
    settings = settings.resolved()
    return sha(
        model_fingerprint(settings.embedding_model_path),
        settings.dense_backend,
        str(settings.max_seq_length),
        str(settings.doc_title_in_prompt),
        settings.dense_unit,
    )[:16]


def _content_parts(
    records: Sequence[Record], settings: KnowledgeSettings, analyzer: str | None
) -> tuple[str, str]:
    corpus = sha(*sorted(record_hash(r) for r in records))
    fingerprint = analyzer or analyzer_fingerprint(topic_terms(records), settings.typo_tolerant)
    lexical = sha(fingerprint, str(settings.passage_max_chars), str(settings.passage_min_chars))
    return corpus, lexical


def content_key(records: Sequence[Record], settings: KnowledgeSettings, analyzer: str | None = None) -> str:
    """Everything but the dense side: the corpus, the analyser and the passage settings. Two indexes
    with the same content key differ only in their vectors (a provisional index and the full one).
    ``analyzer``: the analyser's fingerprint when one is built (else derived without building it)."""
    return sha(INDEX_FORMAT, *_content_parts(records, settings, analyzer))[:20]


def index_key(records: Sequence[Record], settings: KnowledgeSettings, analyzer: str | None = None) -> str:
    # the formula from before the content key existed, so indexes built then are found again
    return sha(INDEX_FORMAT, *_content_parts(records, settings, analyzer), dense_key(settings))[:20]


# -- what an index holds --------------------------------------------------------------------------
@dataclass(frozen=True)
class Vectors:
    """Unit vectors and the hash of the text each was embedded from (reused where a text is unchanged)."""

    dense_key: str
    matrix: np.ndarray
    hashes: list[str]


@dataclass
class StoredIndex:
    """The contents of a built index: what :class:`IndexStore` writes and reads."""

    key: str
    settings: KnowledgeSettings
    records: list[Record]
    passages: list[Passage]
    tokens: list[list[str]]
    embeddings: np.ndarray | None = None
    unit_of: np.ndarray | None = None  # dense row of each passage (its article's with dense_unit=article)
    embed_hashes: list[str] = field(default_factory=list)
    provisional: dict[str, Any] | None = None  # vectors embedded at a shorter cap to fit a budget
    build_stats: dict[str, Any] = field(default_factory=dict)


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / MANIFEST).read_text())


class IndexStore:
    """The folder of built indexes (``KnowledgeSettings.index_dir``)."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)

    def path_for(self, key: str) -> Path:
        return self.base / key

    @staticmethod
    def is_built(path: Path) -> bool:
        return (Path(path) / MANIFEST).is_file()

    def save(self, index: StoredIndex, analyzer: str, content: str) -> Path:
        """Write ``index`` to ``<base>/<key>`` (atomically: a temporary folder, then a rename).
        ``analyzer``, ``content``: its analyser fingerprint and content key, for the manifest."""
        self.base.mkdir(parents=True, exist_ok=True)
        final = self.path_for(index.key)
        tmp = self.base / f".{index.key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with (tmp / "records.jsonl").open("w", encoding="utf-8") as fh:
            for r in index.records:
                fh.write(r.model_dump_json() + "\n")
        with (tmp / "passages.jsonl").open("w", encoding="utf-8") as fh:
            for p in index.passages:
                fh.write(p.model_dump_json() + "\n")
        (tmp / "tokens.json").write_text(json.dumps(index.tokens, ensure_ascii=False), encoding="utf-8")
        dense = index.embeddings is not None and index.unit_of is not None  # set together by build
        if index.embeddings is not None and index.unit_of is not None:
            np.save(tmp / "embeddings.npy", index.embeddings)
            np.save(tmp / "unit_of.npy", index.unit_of)
            (tmp / "embed_hashes.json").write_text(json.dumps(index.embed_hashes))
        manifest = {
            "key": index.key,
            "format": INDEX_FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "records": len(index.records),
            "passages": len(index.passages),
            "dense": dense,
            "dense_key": dense_key(index.settings),
            "settings": index.settings.model_dump(mode="json", include=BUILT_WITH),
            "analyzer": analyzer,
            "encoder": index.settings.backend_report() if dense else None,
            "content_key": content,
            "provisional": index.provisional,
            "build_stats": index.build_stats,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        return final

    @staticmethod
    def load(path: Path, settings: KnowledgeSettings) -> StoredIndex:
        """Read a saved index folder; its vectors only when it has them and ``settings`` wants them."""
        path = Path(path)
        if not IndexStore.is_built(path):
            raise IndexNotFound(f"no index at {path}")
        manifest = read_manifest(path)
        with (path / "passages.jsonl").open(encoding="utf-8") as fh:
            passages = [Passage.model_validate_json(line) for line in fh if line.strip()]
        index = StoredIndex(
            key=manifest["key"],
            settings=settings,
            records=load_records([path / "records.jsonl"]),
            passages=passages,
            tokens=json.loads((path / "tokens.json").read_text(encoding="utf-8")),
            provisional=manifest.get("provisional"),
            build_stats=manifest.get("build_stats", {}),
        )
        if manifest.get("dense") and settings.dense_enabled:
            index.embeddings = np.load(path / "embeddings.npy")
            index.unit_of = np.load(path / "unit_of.npy")
            index.embed_hashes = json.loads((path / "embed_hashes.json").read_text())
        return index

    def _built(self) -> list[Path]:
        if not self.base.is_dir():
            return []
        return [p for p in self.base.iterdir() if self.is_built(p)]

    def latest_vectors(self, settings: KnowledgeSettings) -> Vectors | None:
        """The vectors of the most recently built index (any corpus) embedded as ``settings`` would
        embed them (same dense key), for reuse; None when there is none (or it has no vectors)."""
        key = dense_key(settings)
        for p in sorted(self._built(), key=lambda p: (p / MANIFEST).stat().st_mtime, reverse=True):
            manifest = read_manifest(p)
            if manifest.get("dense_key") != key:
                continue
            if not manifest.get("dense"):
                return None
            hashes = json.loads((p / "embed_hashes.json").read_text())
            return Vectors(key, np.load(p / "embeddings.npy"), hashes)
        return None

    def provisional_for(self, settings: KnowledgeSettings, content: str) -> Path | None:
        """The best provisional index of this content, backend and model (the longest token cap), if any."""
        if not settings.dense_enabled:
            return None
        best: tuple[int, Path] | None = None
        for p in self.base.iterdir() if self.base.is_dir() else ():
            try:
                m = read_manifest(p)
            except (OSError, ValueError):
                continue
            built = m.get("settings", {})
            if (
                m.get("provisional")
                and m.get("content_key") == content
                and built.get("dense_backend") == settings.dense_backend
                and built.get("dense_unit") == settings.dense_unit
                and built.get("doc_title_in_prompt") == settings.doc_title_in_prompt
                and m["provisional"].get("target_max_seq_length") == settings.max_seq_length
                and (best is None or built.get("max_seq_length", 0) > best[0])
            ):
                best = (int(built.get("max_seq_length", 0)), p)
        return best[1] if best else None
