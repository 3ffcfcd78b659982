"""The out-of-scope probe: a linear model on the caller's-words vector (issue #13, abstention).

The abstention model reads scores: how well the best candidate matches, its margin, how near the
nearest remembered questions are. A question about a matter whose agency or law the corpus does not
hold (종합부동산세 is 국세, 등기부등본 is 법원's, KTX, 국민연금) still finds an article that matches it
well — its *area* is in the corpus — so by the scores it looks answerable. What tells such a question
apart is what it is about, and the query vector carries that: a logistic regression over the unit
vector of the caller's words, fitted on every labelled single question (in scope vs out of scope),
gives ``oos_probe``, one more feature the abstention model weighs (``rerank.ABSTAIN_FEATURES``).

Out-of-fold by construction: the abstention model learns from probe probabilities of questions the
probe did not see (:func:`out_of_fold`, grouped so an item and its rewrite stay together), as a served
question's probability comes from a probe that never saw it. The shipped probe (``abstain_probe.npz``
beside the models) holds 768 weights and a bias, no text; serving it is one dot product.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBE_FILE = "abstain_probe.npz"
# The same kind of probe for caller turns inside a call (the *turn probe*): fitted on labelled call
# turns, those labelled with articles against those that need no card (a statement, an address, a
# question the corpus cannot answer; closings are the tracker's business), it gives ``turn_probe``,
# a feature of the in-call abstention model (``rerank.CALL_ABSTAIN_FEATURES``)
TURN_PROBE_FILE = "abstain_turn_probe.npz"
# inverse regularisation strength (scikit-learn's C), chosen by cross-validation (docs/knowledge.md,
# session 17: C 0.1-10 over the pooled single questions' held-out folds)
PROBE_C = 1.0
INNER_FOLDS = 5  # the folds of the out-of-fold probabilities a model learns from


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class OosProbe:
    """P(out of scope) of a question from its caller's-words vector."""

    coef: np.ndarray  # (dim,)
    intercept: float

    @property
    def dim(self) -> int:
        return int(self.coef.shape[0])

    def p_many(self, vectors: np.ndarray) -> np.ndarray:
        z = _unit(np.atleast_2d(vectors)) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def p(self, vector: np.ndarray | None) -> float:
        """The probability for one vector; 0.0 for no vector or one of another width (no evidence)."""
        if vector is None or np.asarray(vector).shape[-1] != self.dim:
            return 0.0
        return float(self.p_many(np.asarray(vector))[0])

    @classmethod
    def fit(cls, vectors: np.ndarray, oos: np.ndarray, c: float = PROBE_C) -> OosProbe | None:
        """Fitted on these vectors and labels (True: out of scope); None when one class is missing."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(oos, dtype=bool)
        if len(y) == 0 or y.all() or not y.any():
            return None
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        model.fit(_unit(vectors), y)
        return cls(np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0]))

    def save(self, path: Path, encoder: str = "") -> None:
        np.savez(path, coef=self.coef, intercept=np.array([self.intercept]), encoder=np.array([encoder]))

    @classmethod
    def load(cls, path: Path) -> OosProbe | None:
        """The probe saved at ``path``; None when there is none."""
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            return cls(np.asarray(z["coef"], dtype=np.float64), float(z["intercept"][0]))


def inner_fold(group: str, folds: int = INNER_FOLDS) -> int:
    """The inner fold of a group (an item and its rewrites, or a call's turns, go together)."""
    return int(hashlib.sha256(f"probe:{group}".encode()).hexdigest(), 16) % folds


def out_of_fold(
    vectors: np.ndarray, oos: np.ndarray, groups: list[str], folds: int = INNER_FOLDS, c: float = PROBE_C
) -> np.ndarray:
    """Each question's probability from a probe fitted on the other inner folds (grouped)."""
    y = np.asarray(oos, dtype=bool)
    fold = np.array([inner_fold(g, folds) for g in groups])
    p = np.zeros(len(y))
    whole: OosProbe | None = None
    for k in range(folds):
        te = fold == k
        if not te.any():
            continue
        probe = OosProbe.fit(vectors[~te], y[~te], c)
        if probe is None:  # a fold without both classes to learn from: the whole set's probe
            whole = whole or OosProbe.fit(vectors, y, c)
            probe = whole
        p[te] = probe.p_many(vectors[te]) if probe is not None else 0.0
    return p
