"""Which regulations a call summary cites: articles of the cards shown during the call that the
counselor's answer after each card confirms. Precision first: a summary that names a law the call
was not about misleads whoever reads it later, and searching every sentence of a call for articles
(the earlier way) cited mostly irrelevant ones.

A card's article is confirmed when the counselor's next turns (up to ``ANSWER_TURNS``) are close to
it: the cosine between those turns, embedded as a query, and the article's best passage vector
(the dense side); on an index without one, the share of the article title's nouns the answer says.
The threshold is the assist setting ``summary_confirm_min``, chosen by cross-validation over labelled
calls (``dasan eval assist`` reports the held-out figures).

Since session 19 a small learned model (:class:`ConfirmModel`, ``summary_confirm.json``) reads more
than the best closeness: per article of the call's cards, the closeness of the best and of the mean
answer, how far the best is below the call's best-confirmed article, its best rank on a card (the
primary citation or a related one), and how many of the call's cards showed it. It is a logistic
regression fitted on the out-of-fold evidence of every labelled call (``dasan eval rerank
--live-summaries --train``: each fold's calls played with models that never saw them); its
probability threshold is the most recall at precision ≥ 0.80 where the held-out folds kept that
promise, else the best F0.5 (precision first). Without the file, or on an index without a dense side,
the single closeness threshold.

Since session 20 its candidates also include, per law a card showed, the ``LAW_NEIGHBOURS`` articles
of that law the card did not show that are closest to the counselor's answer after the card: 72 % of
the labelled calls' reference regulations were ever on a card, 98 % in a law a card showed. The model
file records how many neighbours its evidence had, and the summary asks for as many; the closeness
threshold reads the shown articles only.

Since session 21 it also reads what the **whole call's counselor turns** say of each article, not only
the two turns after a card: the closeness of the closest counselor turn (``call_answer_best``), the
share of the article title's nouns they say (``title_said``) and whether they name its law
(``law_named``). The counselor often explains the provision a card was about later in the call, or
before the caller's follow-up puts it on a card. Its threshold is the most recall at the lowest
precision floor whose thresholds kept P ≥ 0.80 on every held-out fold (``eval_assist.shipped_floor``).
Labelled plays record up to ``EVIDENCE_NEIGHBOURS`` neighbours, so ``dasan eval confirm`` can refit
and cross-validate the confirmation from a recorded file (``dasan eval rerank --summary-evidence``)
in seconds, as a regression or as boosted trees.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from streaming.events import Channel

log = logging.getLogger(__name__)

ANSWER_TURNS = 2  # counselor turns after a card that may confirm it
MAX_REGS = 10  # most regulations a summary cites
CONFIRM_MODEL_PATH = Path(__file__).with_name("summary_confirm.json")
# the articles of a card's laws, not on the card, closest to the counselor's answer after it, that
# the learned confirmation may also cite (the answer names the provision the card's law was about)
LAW_NEIGHBOURS = 2
# the law neighbours a labelled play records (``dasan eval rerank --summary-evidence``), so that a
# confirmation with fewer can be fitted from it offline (:func:`with_neighbours`)
EVIDENCE_NEIGHBOURS = 5
NOT_SHOWN_RANK = 3  # the ``best_rank`` of an article no card showed (cards show ranks 0–2)
UNRANKED = 50  # the ``law_rank`` of a card's article when no answer followed the card
# what the learned confirmation reads per article of the call's cards (:func:`article_rows`)
CONFIRM_FEATURES = (
    "answer_best",
    "answer_mean",
    "below_call_best",
    "best_rank",
    "cards",
    "cards_share",
    "shown",
    "law_rank",
    "law_cards_share",
    "above_law_shown",
    "law_first_cards",
    "call_answer_best",
    "title_said",
    "law_named",
)


def law_of(doc_id: str) -> str:
    """The law part of an article id (법률, 시행령, 시행규칙 and 조례 apart)."""
    return doc_id.split("/")[0]


@dataclass(frozen=True)
class CardEvidence:
    card: int  # index of the card in the call
    doc_id: str
    rank: int  # 0: the card's primary citation; NOT_SHOWN_RANK: a law neighbour the card did not show
    score: float
    shown: bool = True  # on the card (False: a neighbour in one of the card's laws)
    law_rank: int = 0  # its rank among its law's articles by closeness to the answer (0: closest)
    # what the whole call's counselor turns say of the article (the same on each of its cards): the
    # closeness of the closest turn, the share of its title's nouns they say, whether they name its law
    call_close: float = 0.0
    title_said: float = 0.0
    law_named: float = 0.0


def law_name_of(doc_id: str) -> str:
    """The name of an article's law as a counselor says it: 법률 and its 시행령/시행규칙 alike
    ("주민등록법_시행령/제42조" → "주민등록법")."""
    return law_of(doc_id).split("_시행")[0]


def _flat(text: str) -> str:
    """``text`` without spaces, underscores and middle dots, for finding a law's name in speech."""
    return text.replace(" ", "").replace("_", "").replace("ㆍ", "").replace("·", "")


def with_neighbours(evidence: Sequence[CardEvidence], k: int) -> list[CardEvidence]:
    """``evidence`` as :meth:`RegulationConfirmer.evidence` gives it with ``k`` law neighbours, from
    evidence recorded with at least as many (a card's neighbours of a law come closest first)."""
    seen: dict[tuple[int, str], int] = {}
    out = []
    for e in evidence:
        if not e.shown:
            key = (e.card, law_of(e.doc_id))
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > k:
                continue
        out.append(e)
    return out


def answer_after(turns: Sequence[Any], pos: int) -> str:
    """The counselor's turns that follow position ``pos`` (at most ``ANSWER_TURNS``)."""
    out: list[str] = []
    for t in turns[pos + 1 :]:
        if t.channel == Channel.counselor and t.text.strip():
            out.append(t.text.strip())
            if len(out) >= ANSWER_TURNS:
                break
    return " ".join(out)


class RegulationConfirmer:
    def __init__(self, kb: Any) -> None:
        self.kb = kb
        by_doc: dict[str, list[int]] = {}
        for i, p in enumerate(kb.passages):
            by_doc.setdefault(p.doc_id, []).append(i)
        self.passages_of = by_doc
        self.articles_of_law: dict[str, list[str]] = {}
        for doc in by_doc:
            self.articles_of_law.setdefault(law_of(doc), []).append(doc)
        self._law_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # law -> (dense rows, article of each)
        self._titles: dict[str, set[str]] = {}  # doc -> its title's nouns (read once)

    def evidence(
        self,
        turns: Sequence[Any],
        cards: Sequence[tuple[int, Sequence[str]]],
        neighbours: int = 0,
    ) -> list[CardEvidence]:
        """Every (card, article) pair with the closeness of the counselor's answer to the article;
        with ``neighbours`` (and a dense side) also that many articles of each of the card's laws, not
        on the card, closest to the answer (``shown=False``)."""
        answers = [answer_after(turns, pos) for pos, _docs in cards]
        out: list[CardEvidence] = []
        if not cards:
            return out
        if self.kb.dense is None:
            for k, ((_pos, docs), answer) in enumerate(zip(cards, answers, strict=True)):
                out.extend(
                    CardEvidence(k, doc, r, self._title_score(doc, answer)) for r, doc in enumerate(docs)
                )
            return out
        said = [t.text.strip() for t in turns if t.channel == Channel.counselor and t.text.strip()]
        todo = list(dict.fromkeys([*(a for a in answers if a), *said]))
        vecs = dict(zip(todo, self.kb.encode_queries(todo), strict=True)) if todo else {}
        for k, ((_pos, docs), answer) in enumerate(zip(cards, answers, strict=True)):
            close: dict[str, tuple[float, int]] = {}  # doc -> (closeness, rank in its law)
            extra: list[CardEvidence] = []  # per law, its closest articles the card did not show
            if answer:
                for law in dict.fromkeys(law_of(d) for d in docs):
                    ranked = self._law_closeness(law, vecs[answer])
                    close.update({d: (s, i) for i, (d, s) in enumerate(ranked)})
                    unshown = ((i, d, s) for i, (d, s) in enumerate(ranked) if d not in docs)
                    extra.extend(
                        CardEvidence(k, d, NOT_SHOWN_RANK, s, False, i)
                        for i, d, s in islice(unshown, neighbours)
                    )
            for r, doc in enumerate(docs):
                score, law_rank = close.get(doc, (0.0, UNRANKED))
                out.append(CardEvidence(k, doc, r, score, True, law_rank))
            out.extend(extra)
        return self._with_call(out, said, np.asarray([vecs[t] for t in said]) if said else None)

    def _with_call(
        self, evidence: list[CardEvidence], said: list[str], said_vecs: np.ndarray | None
    ) -> list[CardEvidence]:
        """``evidence`` with what the call's counselor turns ``said`` (their vectors ``said_vecs``;
        None without a dense side) say of each article: ``call_close``, ``title_said``, ``law_named``."""
        if not evidence or not said:
            return evidence
        text = " ".join(said)
        nouns = set(self.kb.analyzer.nouns(text))
        flat = _flat(text)
        per_doc: dict[str, tuple[float, float, float]] = {}
        for doc in dict.fromkeys(e.doc_id for e in evidence):
            close = 0.0
            rows = self.passages_of.get(doc, [])
            if said_vecs is not None and rows and self.kb.dense is not None:
                units = np.unique(self.kb.unit_of[rows])
                close = float(np.max(self.kb.dense.matrix[units] @ said_vecs.T))
            terms = self._title_terms(doc)
            title = len(terms & nouns) / len(terms) if terms else 0.0
            per_doc[doc] = (close, title, float(_flat(law_name_of(doc)) in flat))
        return [
            replace(e, call_close=c, title_said=t, law_named=n)
            for e in evidence
            for c, t, n in [per_doc[e.doc_id]]
        ]

    def _title_terms(self, doc: str) -> set[str]:
        """The nouns (of 2 characters or more) of the article's title, analysed once per article."""
        if doc not in self._titles:
            plist = self.passages_of.get(doc, [])
            title = self.kb.passages[plist[0]].article_title or "" if plist else ""
            self._titles[doc] = {t for t in self.kb.analyzer.nouns(title) if len(t) >= 2}
        return self._titles[doc]

    def _law_closeness(self, law: str, vec: np.ndarray) -> list[tuple[str, float]]:
        """The articles of ``law``, closest to ``vec`` first (an article scores as its best passage)."""
        docs = self.articles_of_law.get(law, [])
        if not docs:
            return []
        if law not in self._law_rows:
            rows = [np.unique(self.kb.unit_of[self.passages_of[d]]) for d in docs]
            owner = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
            self._law_rows[law] = (np.concatenate(rows), owner)
        flat, owner = self._law_rows[law]
        sims = np.asarray(self.kb.dense.matrix[flat] @ vec, dtype=np.float64)
        best = np.full(len(docs), -np.inf)
        np.maximum.at(best, owner, sims)
        order = np.argsort(-best, kind="stable")
        return [(docs[i], float(best[i])) for i in order]

    def _title_score(self, doc: str, answer: str) -> float:
        """Without a dense side: the share of the article title's nouns the answer says."""
        if not answer:
            return 0.0
        terms = self._title_terms(doc)
        said = set(self.kb.analyzer.nouns(answer))
        return len(terms & said) / len(terms) if terms else 0.0

    @staticmethod
    def confirmed(evidence: Sequence[CardEvidence], threshold: float, max_regs: int = MAX_REGS) -> list[str]:
        docs = [e.doc_id for e in evidence if e.shown and e.score >= threshold]
        return list(dict.fromkeys(docs))[:max_regs]


def article_rows(evidence: Sequence[CardEvidence]) -> tuple[list[str], np.ndarray]:
    """The call's card articles and their law neighbours (first seen first) and their
    ``CONFIRM_FEATURES``: the closeness of the best and the mean answer, how far the best is below
    the call's best, its best rank on a card (``NOT_SHOWN_RANK`` when no card showed it), how many
    cards showed it and their share of the call's cards, whether any did, its best rank within its law
    by closeness to an answer, the share of the call's cards that showed its law, how far its best is
    above the best of its law's shown articles, how many cards' answers put it first in its law, and
    what the whole call's counselor turns say of it (closeness, its title's nouns, its law's name)."""
    docs: dict[str, list[CardEvidence]] = {}
    for e in evidence:
        docs.setdefault(e.doc_id, []).append(e)
    if not docs:
        return [], np.zeros((0, len(CONFIRM_FEATURES)), dtype=np.float64)
    n_cards = len({e.card for e in evidence})
    call_best = max(e.score for e in evidence)
    law_cards: dict[str, set[int]] = {}
    shown_best: dict[str, float] = {}
    for e in evidence:
        if e.shown:
            law = law_of(e.doc_id)
            law_cards.setdefault(law, set()).add(e.card)
            shown_best[law] = max(shown_best.get(law, e.score), e.score)
    rows = []
    for doc, evs in docs.items():
        scores = [e.score for e in evs]
        cards = len({e.card for e in evs if e.shown})
        law = law_of(doc)
        rows.append(
            [
                max(scores),
                float(np.mean(scores)),
                call_best - max(scores),
                float(min(e.rank for e in evs)),
                float(cards),
                cards / n_cards,
                float(cards > 0),
                float(min(e.law_rank for e in evs)),
                len(law_cards.get(law, ())) / n_cards,
                max(scores) - shown_best.get(law, max(scores)),
                float(len({e.card for e in evs if e.law_rank == 0})),
                max(e.call_close for e in evs),
                max(e.title_said for e in evs),
                max(e.law_named for e in evs),
            ]
        )
    return list(docs), np.asarray(rows, dtype=np.float64)


# the learned confirmation's kinds: a logistic regression over standardised features, or small
# gradient-boosted trees (LightGBM) whose threshold is read off out-of-fold probabilities
CONFIRM_KINDS = ("logistic", "boosted")
CONFIRM_KIND = "logistic"  # what `dasan eval rerank --live-summaries --train` fits and ships
BOOSTED_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "n_estimators": 150,
    "num_leaves": 7,
    "learning_rate": 0.05,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "n_jobs": 1,
    "random_state": 13,
    "verbose": -1,
}


@dataclass(frozen=True)
class ConfirmModel:
    """P(the call was about this article) of a card article, from :func:`article_rows`: a logistic
    regression (``coef``, ``intercept``, ``mean``, ``scale``) or, with ``booster``, boosted trees."""

    coef: np.ndarray
    intercept: float
    threshold: float  # cite at or above
    mean: np.ndarray  # standardisation of the features (fitted with the model)
    scale: np.ndarray
    neighbours: int = 0  # the law neighbours per card law its evidence had (served with as many)
    booster: Any = None  # a lightgbm.Booster (kind "boosted"); None: the regression

    @property
    def kind(self) -> str:
        return "boosted" if self.booster is not None else "logistic"

    def p(self, X: np.ndarray) -> np.ndarray:
        if not len(X):
            return np.zeros(0)
        if self.booster is not None:
            return np.asarray(self.booster.predict(X), dtype=np.float64)
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)))

    def confirmed(self, evidence: Sequence[CardEvidence], max_regs: int = MAX_REGS) -> list[str]:
        """The articles at or above the threshold, most probable first."""
        docs, X = article_rows(with_neighbours(evidence, self.neighbours))
        return ranked_above(docs, self.p(X), self.threshold, max_regs)

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        threshold: float = 0.5,
        c: float = 1.0,
        neighbours: int = 0,
        kind: str = "logistic",
    ) -> ConfirmModel | None:
        """A model of ``kind`` on these rows (True: a reference regulation of the call), read from
        evidence with ``neighbours`` law neighbours per card law; None when one class is missing."""
        y = np.asarray(y, dtype=bool)
        if len(y) == 0 or y.all() or not y.any():
            return None
        if kind not in CONFIRM_KINDS:
            raise ValueError(f"confirmation kind {kind!r}: not one of {', '.join(CONFIRM_KINDS)}")
        if kind == "boosted":
            import lightgbm as lgb

            clf = lgb.LGBMClassifier(**BOOSTED_PARAMS)
            clf.fit(X, y.astype(int), feature_name=list(CONFIRM_FEATURES))
            n = X.shape[1]
            return cls(np.zeros(n), 0.0, threshold, np.zeros(n), np.ones(n), neighbours, clf.booster_)
        from sklearn.linear_model import LogisticRegression

        mean, std = X.mean(axis=0), X.std(axis=0)
        scale = np.where(std > 0, std, 1.0)
        model = LogisticRegression(C=c, max_iter=2000).fit((X - mean) / scale, y)
        return cls(
            np.asarray(model.coef_[0], dtype=np.float64),
            float(model.intercept_[0]),
            threshold,
            mean,
            scale,
            neighbours,
        )

    def with_threshold(self, threshold: float) -> ConfirmModel:
        return replace(self, threshold=threshold)

    def save(self, path: Path = CONFIRM_MODEL_PATH, **meta: Any) -> None:
        body: dict[str, Any] = {"features": list(CONFIRM_FEATURES), "kind": self.kind}
        if self.booster is not None:
            body["booster"] = self.booster.model_to_string()
        else:
            body.update(
                coef=self.coef.round(6).tolist(),
                intercept=round(self.intercept, 6),
                mean=self.mean.round(6).tolist(),
                scale=self.scale.round(6).tolist(),
            )
        body.update(threshold=self.threshold, neighbours=self.neighbours, **meta)
        path.write_text(json.dumps(body, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = CONFIRM_MODEL_PATH) -> ConfirmModel | None:
        """The model saved at ``path``; None when there is none or it reads other features."""
        if not path.exists():
            return None
        d = json.loads(path.read_text(encoding="utf-8"))
        if tuple(d.get("features", ())) != CONFIRM_FEATURES:
            log.warning("summary confirmation %s has other features than this code; not used", path)
            return None
        threshold, neighbours = float(d["threshold"]), int(d.get("neighbours", 0))
        if d.get("kind", "logistic") == "boosted":
            import lightgbm as lgb

            n = len(CONFIRM_FEATURES)
            booster = lgb.Booster(model_str=d["booster"])
            return cls(np.zeros(n), 0.0, threshold, np.zeros(n), np.ones(n), neighbours, booster)
        coef, mean, scale = (np.asarray(d[k], dtype=np.float64) for k in ("coef", "mean", "scale"))
        return cls(coef, float(d["intercept"]), threshold, mean, scale, neighbours)


def ranked_above(docs: Sequence[str], p: np.ndarray, threshold: float, max_regs: int = MAX_REGS) -> list[str]:
    """The ``docs`` whose probability is at least ``threshold``, most probable first."""
    order = sorted((i for i in range(len(docs)) if p[i] >= threshold), key=lambda i: -p[i])
    return [docs[i] for i in order][:max_regs]


def evidence_to_json(
    evidence: Sequence[tuple[str, Sequence[CardEvidence], set[str]]],
) -> list[dict[str, Any]]:
    """Labelled calls' evidence (call id, card evidence, reference regulations) as JSON rows: article
    ids and closeness only, nothing the caller said."""
    return [
        {
            "id": cid,
            "reference": sorted(gold),
            "evidence": [
                [
                    e.card,
                    e.doc_id,
                    e.rank,
                    round(e.score, 6),
                    e.shown,
                    e.law_rank,
                    round(e.call_close, 6),
                    round(e.title_said, 6),
                    e.law_named,
                ]
                for e in ev
            ],
        }
        for cid, ev, gold in evidence
    ]


def _card_evidence(row: Sequence[Any]) -> CardEvidence:
    """One row of an evidence file (files written before session 21 have no call-level fields)."""
    c, d, k, s, sh, lr, *call = row
    cc, ts, ln = (*(float(x) for x in call), 0.0, 0.0, 0.0)[:3]
    return CardEvidence(int(c), str(d), int(k), float(s), bool(sh), int(lr), cc, ts, ln)


def evidence_from_json(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[CardEvidence], set[str]]]:
    return [
        (
            str(r["id"]),
            [_card_evidence(row) for row in r["evidence"]],
            set(r["reference"]),
        )
        for r in rows
    ]
