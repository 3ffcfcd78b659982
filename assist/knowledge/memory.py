"""A memory of questions already answered: the labelled questions' vectors and the articles that
answered them (or none: out of scope), read by the second stage as evidence of its own.

Citizens ask the same things in different words. The first stage compares a question with the
regulations' wording, which a caller rarely uses; the memory compares it with questions whose right
article is known. For each candidate article the ranker reads how close the nearest remembered
question answered by that article is (``mem_sim``) and how far that is below the nearest remembered
in-scope question at all (``mem_rel``); the abstention model reads whether the nearest remembered
questions were out of scope (``MEMORY_ABSTAIN_FEATURES``).

The vectors are the query encoder's vectors of the caller's words (the ``T`` variant, which every
suggestion embeds anyway), so reading the memory costs one matrix-vector product (~1,400 × 768).
The shipped memory (``rerank_memory.npz``) holds the vectors and article ids of every labelled
example the models learned from, written by ``dasan eval rerank --train`` beside the models; it holds
no text. During cross-validation the memory of a fold holds only the other folds' examples, and a
training example never sees its own group (its noisy rewrite, its call's other turns).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MEMORY_PATH = Path(__file__).with_name("rerank_memory.npz")
MEMORY_FEATURES = ("mem_sim", "mem_rel")
MEMORY_ABSTAIN_FEATURES = ("mem_oos_gap", "mem_best", "mem_oos_vote")
NEIGHBOURS = 50  # the nearest in-scope questions whose articles are read
VOTE = 5  # the nearest questions whose out-of-scope share is a feature
NO_MEMORY_REL = -1.0  # mem_rel of an article no remembered question was answered by


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


@dataclass
class QuestionMemory:
    """Remembered questions: unit vectors, the articles that answered each (doc ids; empty: out of
    scope) and, for leaving an example's own group out while training, each one's group."""

    vectors: np.ndarray  # (n, dim) float32, unit rows
    articles: list[tuple[str, ...]]
    groups: np.ndarray  # (n,) object: group names ("" in a loaded memory)
    oos: np.ndarray  # (n,) bool

    def __post_init__(self) -> None:
        # the labels as article indices of the last numbering asked for (held, so compared by identity)
        self._bound: tuple[dict[str, int], list[tuple[int, ...]]] | None = None

    def __len__(self) -> int:
        return len(self.articles)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    @classmethod
    def build(cls, vectors: np.ndarray, articles: list[list[str]], groups: list[str]) -> QuestionMemory:
        arts = [tuple(a) for a in articles]
        return cls(
            _unit(np.asarray(vectors)),
            arts,
            np.array(groups, dtype=object),
            np.array([not a for a in arts], dtype=bool),
        )

    def subset(self, keep: np.ndarray) -> QuestionMemory:
        keep = np.asarray(keep, dtype=bool)
        return QuestionMemory(
            self.vectors[keep],
            [a for a, k in zip(self.articles, keep, strict=True) if k],
            self.groups[keep],
            self.oos[keep],
        )

    # ------------------------------------------------------------------ file
    def save(self, path: Path = MEMORY_PATH, encoder: str = "") -> None:
        """Vectors (float16) and article ids; no text, no groups."""
        with path.open("wb") as fh:
            np.savez_compressed(
                fh,
                vectors=self.vectors.astype(np.float16),
                articles=np.array(json.dumps([list(a) for a in self.articles]), dtype=object),
                meta=np.array(json.dumps({"encoder": encoder, "n": len(self)}), dtype=object),
            )

    @classmethod
    def load(cls, path: Path = MEMORY_PATH) -> QuestionMemory | None:
        if not path.exists():
            log.warning("no question memory at %s: the ranker reads none", path)
            return None
        with np.load(path, allow_pickle=True) as z:
            vectors = z["vectors"].astype(np.float32)
            articles = json.loads(str(z["articles"]))
        return cls.build(vectors, articles, [""] * len(articles))

    # ------------------------------------------------------------------ features
    def _labels(self, doc_index: dict[str, int]) -> list[tuple[int, ...]]:
        if self._bound is None or self._bound[0] is not doc_index:
            labels = [tuple(doc_index[d] for d in a if d in doc_index) for a in self.articles]
            self._bound = (doc_index, labels)
        return self._bound[1]

    def features(
        self,
        q: np.ndarray | None,
        arts: np.ndarray,
        doc_index: dict[str, int],
        exclude_group: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``MEMORY_FEATURES`` per candidate article (``arts``: article indices of ``doc_index``'s
        numbering) and ``MEMORY_ABSTAIN_FEATURES`` of a question with (unit) vector ``q``; the
        remembered questions of ``exclude_group`` are not read (training)."""
        n = len(arts)
        if q is None or not len(self) or q.shape[-1] != self.dim:
            return empty_features(n)
        s = self.vectors @ _unit(q).astype(np.float32)
        ok = np.ones(len(self), dtype=bool)
        if exclude_group is not None:
            ok &= self.groups != exclude_group
        ins = ok & ~self.oos
        out = ok & self.oos
        best_in = float(s[ins].max()) if ins.any() else 0.0
        best_out = float(s[out].max()) if out.any() else 0.0
        labels = self._labels(doc_index)
        idx = np.flatnonzero(ins)
        near = idx[np.argsort(-s[idx], kind="stable")[:NEIGHBOURS]]
        best: dict[int, float] = {}
        for m in near:
            for a in labels[m]:
                best.setdefault(a, float(s[m]))
        sim = np.array([best.get(int(a), 0.0) for a in arts], dtype=np.float32)
        rel = np.where(sim > 0, sim - best_in, NO_MEMORY_REL).astype(np.float32)
        allowed = np.flatnonzero(ok)
        vote_idx = allowed[np.argsort(-s[allowed], kind="stable")[:VOTE]]
        vote = float(self.oos[vote_idx].mean()) if len(vote_idx) else 0.0
        ab = np.array([best_out - best_in, best_in, vote], dtype=np.float32)
        return np.column_stack([sim, rel]).astype(np.float32), ab


def empty_features(n: int) -> tuple[np.ndarray, np.ndarray]:
    """What a question reads without a memory."""
    cols = np.zeros((n, len(MEMORY_FEATURES)), dtype=np.float32)
    cols[:, 1] = NO_MEMORY_REL
    return cols, np.zeros(len(MEMORY_ABSTAIN_FEATURES), dtype=np.float32)


def describe(memory: QuestionMemory | None) -> dict[str, Any]:
    if memory is None:
        return {"questions": 0}
    return {"questions": len(memory), "out_of_scope": int(memory.oos.sum()), "dim": memory.dim}
