"""Training and cross-validating the second stage (``dasan eval rerank``).

Labelled examples are what a retrieval is asked in the product: single utterances (the eval-dev set,
``eval/utterances.jsonl`` and its ASR-noisy rewrites) and caller turns of whole calls
(``eval/calls.jsonl``: each citizen turn carries the articles a card should cite), each turned into
a :class:`~.rerank.Conversation` exactly as the assist service builds one (masked; the caller's
recent turns; the counselor's last turn; the conversation so far; the district named).

Cross-validation is grouped: an utterance and its noisy rewrite, and all turns of one call, fall in
one fold (``sha256(group) % folds``), so nothing is scored by a model that saw its twin. The report
gives, per fold and as the mean of held-out folds, Hit@1 / Hit@5 / MRR@10 of the first stage (the
product's fused search) and of the reranked order, per set; and the abstention trade-off: out-of-scope
questions abstained at the threshold that withholds at most ``max_withheld`` of in-scope questions in
the training folds. ``--train`` then fits the model on every example and writes it beside this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .memory import (
    MEMORY_FEATURES,
    QuestionMemory,
    empty_features,
    shared_ref,
    store_vectors,
    write_questions,
)
from .oos_probe import PROBE_FILE, TURN_PROBE_FILE, OosProbe, out_of_fold
from .rerank import (
    ABSTAIN_FEATURES,
    CALL_ABSTAIN_FEATURES,
    CALL_MODEL_FILE,
    FEATURES,
    LAW_FEATURES,
    MEMORY_FILE,
    MODEL_PATH,
    MODEL_T_PATH,
    T_ONLY_DROP,
    Candidates,
    Conversation,
    Gated,
    Reranker,
    abstain_features,
    call_abstain_features,
)

log = logging.getLogger(__name__)

PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    # 15 leaves and 300 trees since session 30: on 8,167 examples, seeds 1-3, caller turns H@1 0.591 vs
    # 0.567 and single questions 0.701 vs 0.693 for 7 leaves and 200 trees (ranges apart; session 18,
    # on a quarter of the data, found no gain; docs/knowledge.md "Session 30")
    "num_leaves": 15,
    "learning_rate": 0.05,
    "n_estimators": 300,
    "min_child_samples": 10,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "n_jobs": 1,
    "random_state": 13,
    "verbose": -1,
}


# the labelled sets read from the shared folder (never copied into the repository), by name
SHARED_SETS = {"dev": "eval-dev/utterances.jsonl"}


def single_set(name: str) -> bool:
    """A labelled set of single questions, in scope and out of scope (what abstention learns from),
    by its name in ``default_sets``: eval-dev's, ours and every held-out set's (the noisy rewrites
    are their own kind)."""
    return name == "dev" or name.startswith("utterances")


def call_set(name: str) -> bool:
    """A labelled set of whole calls (caller turns labelled per turn)."""
    return name.startswith("turns")


# The sets the *reported* figures are pooled over (held-out single questions and caller turns,
# abstention, familiarity, the live run): fixed, so models trained with more held-out sets (5–7
# since session 15) are judged on the same test items. What a model learns from is every set of the
# kind (single_set, call_set).
UTTERANCE_SETS = ("dev", "utterances", "utterances_h1", "utterances_h2", "utterances_h3", "utterances_h4")
CALL_SETS = ("turns", "turns_h1", "turns_h2", "turns_h3", "turns_h4")
# the held-out sets that may join training (``--with-holdouts``), by number: their file suffix
# held-out sets a model may learn from once they have been measured (53 is blind: never a training
# set while blind; 10 was measured once in session 17, 17 in session 18, 24 in session 19, 25 in
# session 20, 26 in session 21, 27 in session 22, 28 in session 23, 29 in session 24, 37 in session
# 25, 38 in session 26, 45 in session 27, 49 in session 30, 53 in session 32; 11-16 were written in session 17, 18-23
# in session 18, 30-32 in session 23, 33-36 in session 24, 39-41 in session 25, 42-44 in session 26
# and 46-48 and 50-52 in session 27, 54-56 in session 31 (measured blind once with the shipped
# models first) as training data; 49 was written blind in session 27, 53 in session 30 (measured
# once in session 32), 57 in session 32)
BLIND_HOLDOUTS = ("57",)
HOLDOUT_SUFFIX = {
    "1": "_holdout",
    **{k: f"_holdout{k}" for k in (*"23456789", *(str(n) for n in range(10, 58))) if k not in BLIND_HOLDOUTS},
}


@dataclass
class Example:
    id: str
    group: str
    set: str  # a name of default_sets: dev | utterances | utterances_hN | noisy | turns | turns_hN
    conv: Conversation
    relevant: list[str]
    cand: Candidates | None = None
    first_stage: list[str] = field(default_factory=list)  # doc ids, the product's first-stage order
    trigger: str = ""  # a call turn's own words (masked): what decides whether it asks something

    @property
    def in_call_question(self) -> bool:
        """A caller turn that asks something (no closing) and is labelled with no article: a
        question inside a call that the corpus cannot answer."""
        from assist.dialogue import is_question

        return self.needs_no_card and is_question(self.trigger)

    @property
    def needs_no_card(self) -> bool:
        """A caller turn labelled with no article that is not a closing: an in-call question the
        corpus cannot answer, or a statement that asks nothing ("번호판은 제가 찍어 놨어요")."""
        from assist.dialogue import is_closing

        return (
            call_set(self.set) and not self.relevant and bool(self.trigger) and not is_closing(self.trigger)
        )

    @property
    def candidates(self) -> Candidates:
        """``cand``, which every example has once its candidates are built."""
        assert self.cand is not None, f"{self.id}: no candidates yet"
        return self.cand


def fold_of(group: str, folds: int) -> int:
    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % folds


def remembered(e: Example) -> bool:
    """Whether an example belongs in the question memory: a labelled question (in scope), an
    out-of-scope single question, or an in-call question the corpus cannot answer (not a closing or
    a statement: those say nothing about what a question asks)."""
    if e.relevant:
        return True
    return single_set(e.set) or e.set == "noisy" or e.in_call_question


def memory_rows(examples: list[Example]) -> list[Example]:
    """The examples a question memory of ``examples`` holds (remembered and embedded), in order."""
    return [e for e in examples if remembered(e) and e.cand is not None and e.cand.qvec is not None]


def remembered_as(e: Example) -> dict[str, str]:
    """How the questions file keeps an example: the words its vector embeds (what
    ``Reranker.candidates`` embedded: the ``t`` variant, or "-"), or — for an item of the shared
    labelled data, which is never copied into the repository — a reference to it."""
    text = e.conv.variants()["t"] or "-"
    if e.set in SHARED_SETS:
        return shared_ref(SHARED_SETS[e.set], e.id, text)
    return {"text": text}


def memory_of(examples: list[Example]) -> QuestionMemory:
    """The question memory of these (featurised) examples: their caller's-words vectors and labels."""
    rows = memory_rows(examples)
    if not rows:
        return QuestionMemory.build(np.zeros((0, 0), dtype=np.float32), [], [])
    return QuestionMemory.build(
        np.vstack([e.candidates.qvec for e in rows]),  # type: ignore[misc]
        [e.relevant for e in rows],
        [e.group for e in rows],
    )


def with_memory(
    reranker: Reranker,
    examples: list[Example],
    memory: QuestionMemory | None,
    leave_own_group_out: bool,
    unfamiliar_share: float = 0.0,
) -> list[Example]:
    """Copies of the examples whose memory features read ``memory`` (None: no memory). A training
    example must not find itself (or its rewrite, or its call's other turns) in the memory:
    ``leave_own_group_out``; a held-out example reads a memory without its fold anyway. A share
    ``unfamiliar_share`` of the labelled examples (:func:`unfamiliar`) reads the memory without the
    questions its own articles answered: a question on an article nobody has asked about yet."""
    cols = [FEATURES.index(f) for f in MEMORY_FEATURES]
    doc_index = getattr(reranker, "doc_index", None) or {d: i for i, d in enumerate(reranker.view.doc_id)}
    law_of = reranker.view.law if getattr(reranker, "law_vote", True) else None
    out = []
    for e in examples:
        c = e.candidates
        if memory is None:
            mem, ab = empty_features(len(c.articles))
        else:
            forget = frozenset(e.relevant) if unfamiliar(e, unfamiliar_share) else frozenset()
            mem, ab = memory.features(
                c.qvec,
                c.articles,
                doc_index,
                e.group if leave_own_group_out else None,
                forget,
                law_of=law_of,
            )
        X = c.X.copy()
        if len(X):
            X[:, cols] = mem
        out.append(replace(e, cand=replace(c, X=X, mem_ab=ab)))
    return out


# the share of labelled training rows that learn as if their articles were new (:func:`unfamiliar`)
UNFAMILIAR_SHARE = 0.0


def unfamiliar(e: Example, share: float) -> bool:
    """Whether a labelled training example is one of the ``share`` (by a hash of its group, so an
    item and its rewrite, or a call's turns, go together) that learn as if their articles were new.

    The memory only knows the articles somebody asked about. Where every training row finds
    questions on its own articles, the ranker learns that a right article has memory support, and
    demotes the right article nobody has asked about (session 13: the seventh held-out set, 21 % of
    its labels familiar, lost top cards where the sixth, 89 %, gained)."""
    if share <= 0 or not e.relevant:
        return False
    return int(hashlib.sha256(f"unfamiliar:{e.group}".encode()).hexdigest(), 16) % 1000 < share * 1000


def writer_of(e: Example) -> str:
    """Who wrote an example's set (:data:`WRITERS`; a set not listed there: its own writer)."""
    return next((w for w, names in WRITERS.items() if e.set in names), e.set)


def learning_rows(reranker: Reranker, rows: list[Example], unfamiliar_share: float = 0.0) -> list[Example]:
    """Training rows whose memory features read the other writers' questions only.

    A served question comes from a caller nobody has labelled; its nearest remembered questions were
    written by someone else. A training row that reads its own writer's other questions finds
    near-paraphrases a served question will not (the writer's habits, scenarios and chosen
    articles), and the ranker learns to trust the memory more than it earns on a new writer's
    questions (session 13: leaving one writer out, and the seventh held-out set, whose articles the
    memory mostly lacks, lost 6 of 61 top cards with a ranker that had learned that trust)."""
    out: list[Example] = []
    for w in sorted({writer_of(e) for e in rows}):
        mine = [e for e in rows if writer_of(e) == w]
        others = memory_of([e for e in rows if writer_of(e) != w])
        out += with_memory(reranker, mine, others, True, unfamiliar_share)
    order = {e.id: i for i, e in enumerate(rows)}
    return sorted(out, key=lambda e: order[e.id])


def fold_split(
    reranker: Reranker,
    examples: list[Example],
    f: int,
    folds: int,
    memory: bool = True,
    unfamiliar_share: float = 0.0,
    probe: bool = True,
    turn_probe: bool = False,
) -> tuple[list[Example], list[Example], QuestionMemory | None]:
    """Fold ``f``'s training and held-out examples, and the question memory its models may read:
    the training folds' questions (a training example reads the other writers' only:
    :func:`learning_rows`). Without ``memory``, the examples as they are (no memory) and None. With
    ``probe``, their out-of-scope probe probabilities (:func:`with_probe`); with ``turn_probe``, their
    turn probe probabilities (:func:`with_turn_probe`: only the in-call model reads them)."""
    train = [e for e in examples if fold_of(e.group, folds) != f]
    test = [e for e in examples if fold_of(e.group, folds) == f]
    mem = None
    if memory:
        mem = memory_of(train)
        train, test = (
            learning_rows(reranker, train, unfamiliar_share),
            with_memory(reranker, test, mem, False),
        )
    train, test, _probe = with_probe(train, test, probe)
    if turn_probe:
        train, test, _turn = with_turn_probe(train, test)
    return train, test, mem


def _learns_scope(e: Example) -> bool:
    """What the out-of-scope probe learns from: the single questions (in scope or out)."""
    return single_set(e.set)


def _learns_turn(e: Example) -> bool:
    """What the turn probe learns from: the caller turns of calls labelled with articles and those
    that need no card (:attr:`Example.needs_no_card`; closings are the tracker's business)."""
    return call_set(e.set) and bool(e.relevant or e.needs_no_card)


def _reads_turn(e: Example) -> bool:
    return call_set(e.set)


def _vectors_of(
    examples: list[Example], learns: Callable[[Example], bool]
) -> tuple[list[Example], np.ndarray, np.ndarray]:
    """The examples a probe learns from (those with a query vector), their vectors and labels
    (labelled with no article: out of scope, or no card needed)."""
    rows = [e for e in examples if learns(e) and e.cand is not None and e.cand.qvec is not None]
    if not rows:
        return rows, np.zeros((0, 0)), np.zeros(0, dtype=bool)
    vectors = np.vstack([e.candidates.qvec for e in rows])  # type: ignore[misc]
    return rows, vectors, np.array([not e.relevant for e in rows])


def fit_probe(train: list[Example]) -> OosProbe | None:
    """The out-of-scope probe fitted on these examples' single questions (None: nothing to learn)."""
    _rows, vectors, oos = _vectors_of(train, _learns_scope)
    return OosProbe.fit(vectors, oos)


def fit_turn_probe(train: list[Example]) -> OosProbe | None:
    """The turn probe fitted on these examples' call turns (None: nothing to learn)."""
    _rows, vectors, y = _vectors_of(train, _learns_turn)
    return OosProbe.fit(vectors, y)


def _with_a_probe(
    train: list[Example],
    test: list[Example],
    enabled: bool,
    learns: Callable[[Example], bool],
    reads: Callable[[Example], bool],
    field_name: Literal["p_probe", "p_turn"],
) -> tuple[list[Example], list[Example], OosProbe | None]:
    """Copies with a probe's probability in ``Candidates.<field_name>``, as the models reading it
    must see it: a held-out (or served) example's from the probe fitted on ``train``; a training
    example the probe ``learns`` from, from a probe that did not see it (inner folds grouped:
    :func:`oos_probe.out_of_fold`); any other that ``reads`` it, from the whole probe; the rest 0.
    Not ``enabled`` (or nothing to learn): every probability 0 (the feature says nothing), no probe."""

    def put(e: Example, p: float) -> Example:
        if e.cand is None:
            return e
        if field_name == "p_probe":
            return replace(e, cand=replace(e.cand, p_probe=float(p)))
        return replace(e, cand=replace(e.cand, p_turn=float(p)))

    rows, vectors, y = (
        _vectors_of(train, learns) if enabled else ([], np.zeros((0, 0)), np.zeros(0, dtype=bool))
    )
    probe = OosProbe.fit(vectors, y)
    if probe is None:
        return [put(e, 0.0) for e in train], [put(e, 0.0) for e in test], None
    inner = out_of_fold(vectors, y, [e.group for e in rows])
    own = {e.id: float(p) for e, p in zip(rows, inner, strict=True)}

    def served(e: Example) -> float:
        return probe.p(e.cand.qvec) if e.cand is not None and reads(e) else 0.0

    return (
        [put(e, own[e.id] if e.id in own else served(e)) for e in train],
        [put(e, served(e)) for e in test],
        probe,
    )


def with_probe(
    train: list[Example], test: list[Example], enabled: bool = True
) -> tuple[list[Example], list[Example], OosProbe | None]:
    """Copies with the out-of-scope probe's probability (``Candidates.p_probe``): a training single
    question's out of fold, a training call turn's from the whole probe (it never learns from call
    turns), a held-out one's from the probe fitted on ``train`` (:func:`_with_a_probe`)."""
    return _with_a_probe(train, test, enabled, _learns_scope, lambda e: True, "p_probe")


def with_turn_probe(
    train: list[Example], test: list[Example], enabled: bool = True
) -> tuple[list[Example], list[Example], OosProbe | None]:
    """Copies with the turn probe's probability (``Candidates.p_turn``) on call turns, as the in-call
    abstention model must see it: a training turn's from a probe that did not see its call, a
    closing's and a held-out (or served) turn's from the probe fitted on ``train``; a single
    question's is 0 (served questions outside a call get none)."""
    return _with_a_probe(train, test, enabled, _learns_turn, _reads_turn, "p_turn")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def conversations_of_call(assistant: Any, call: dict[str, Any]) -> list[tuple[int, Conversation]]:
    """For each citizen turn: the conversation the service would retrieve for (masked)."""
    from assist.assistant import conversation_for
    from streaming.privacy import mask_text

    turns = [
        ("caller" if t["speaker"] == "citizen" else "counselor", mask_text(t["text"])) for t in call["turns"]
    ]
    out = []
    for i, t in enumerate(call["turns"]):
        if t["speaker"] == "citizen":
            out.append((i, conversation_for(assistant, turns[: i + 1])))
    return out


def load_examples(assistant: Any, sets: dict[str, Path]) -> list[Example]:
    """Examples of every labelled set (an in-scope item has articles; out-of-scope ones have none)."""
    from assist.assistant import conversation_for
    from streaming.privacy import mask_text

    out: list[Example] = []
    for name, path in sets.items():
        if not path.exists():
            raise FileNotFoundError(f"labelled set {name} not found at {path}")
        for item in _jsonl(path):
            if "turns" in item:
                if not any("relevant_article_ids" in t for t in item["turns"]):
                    continue
                for i, conv in conversations_of_call(assistant, item):
                    t = item["turns"][i]
                    if "relevant_article_ids" not in t:
                        continue
                    out.append(
                        Example(
                            f"{item['id']}#{i}",
                            item["id"],
                            name,
                            conv,
                            list(t["relevant_article_ids"]),
                            trigger=mask_text(t["text"]),
                        )
                    )
            else:
                group = item.get("variant_of") or item["id"]
                conv = conversation_for(assistant, [("caller", mask_text(item["utterance"]))])
                out.append(Example(item["id"], group, name, conv, list(item.get("relevant_article_ids", []))))
    return out


def featurize(
    reranker: Reranker,
    examples: list[Example],
    batch: int = 64,
    done: Callable[[int], object] | None = None,
) -> None:
    """Candidates and features of every example, and the product's first-stage order beside them
    (``done(n)`` after each batch of ``n``: a progress bar)."""
    kb = reranker.kb
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        cands = reranker.candidates([e.conv for e in chunk])
        first = kb.search_many([e.conv.text for e in chunk], 10, [e.conv.filters for e in chunk])
        for e, c, hits in zip(chunk, cands, first, strict=True):
            e.cand = c
            e.first_stage = [h.doc_id for h in hits]
        log.info("features: %d/%d", min(i + batch, len(examples)), len(examples))
        if done is not None:
            done(len(chunk))


def labels(reranker: Reranker, e: Example) -> np.ndarray:
    assert e.cand is not None
    rel = set(e.relevant)
    return np.array([reranker.view.doc_id[a] in rel for a in e.cand.articles], dtype=np.int32)


def ranked_docs(reranker: Reranker, e: Example, scores: np.ndarray) -> list[str]:
    assert e.cand is not None
    order = np.argsort(-scores, kind="stable")
    return [reranker.view.doc_id[int(e.cand.articles[j])] for j in order]


def hit_metrics(ranked: list[list[str]], relevant: list[list[str]]) -> dict[str, float]:
    n = len(ranked)
    if not n:
        return {"n": 0}
    h1 = h5 = mrr = 0.0
    for docs, rel in zip(ranked, relevant, strict=True):
        rs = set(rel)
        pos = next((k for k, d in enumerate(docs[:10]) if d in rs), None)
        h1 += pos == 0
        h5 += pos is not None and pos < 5
        mrr += 1.0 / (pos + 1) if pos is not None else 0.0
    return {
        "n": n,
        "hit_at_1": round(h1 / n, 4),
        "hit_at_5": round(h5 / n, 4),
        "mrr_at_10": round(mrr / n, 4),
    }


def learnable(reranker: Reranker, train: list[Example]) -> list[Example]:
    """The examples a ranker learns from: labelled, with candidates, a right article among them."""
    rows = [e for e in train if e.relevant and e.cand is not None and len(e.cand.articles)]
    return [e for e in rows if labels(reranker, e).any()]


def fit(reranker: Reranker, train: list[Example]) -> Any:
    import lightgbm as lgb

    rows = learnable(reranker, train)
    X = np.vstack([e.candidates.X for e in rows])
    y = np.concatenate([labels(reranker, e) for e in rows])
    group = [len(e.candidates.articles) for e in rows]
    model = lgb.LGBMRanker(**PARAMS)
    model.fit(X, y, group=group, feature_name=list(FEATURES))
    return model.booster_


def fit_gated(reranker: Reranker, train: list[Example]) -> Gated:
    """The ranker over the whole conversation and the one over the caller's words alone (every
    example, its context features held constant). The first learns from the questions with a
    conversation before them only, the ones it serves (session 19: caller turns H@1 0.515 → 0.524
    in CV over 5 seeds, single questions unchanged; until then it also learned from every single
    question, whose context features merely repeat the caller's words); on data without such
    questions, from every example."""
    ctx = learnable(reranker, [e for e in train if e.conv.has_context])
    full = fit(reranker, ctx if ctx else train)
    return Gated(full, fit(reranker, ablated(train, T_ONLY_DROP)))


def _abstain_classifier(feats: np.ndarray, oos: np.ndarray, names: tuple[str, ...] = ABSTAIN_FEATURES) -> Any:
    import lightgbm as lgb

    clf = lgb.LGBMClassifier(
        n_estimators=100,
        num_leaves=4,
        learning_rate=0.05,
        min_child_samples=5,
        n_jobs=1,
        verbose=-1,
        random_state=13,
    )
    clf.fit(feats, oos.astype(int), feature_name=list(names))
    return clf.booster_


def fit_abstain(
    feats: np.ndarray,
    oos: np.ndarray,
    max_withheld: float,
    inner_folds: int = 5,
    names: tuple[str, ...] = ABSTAIN_FEATURES,
    groups: np.ndarray | None = None,
) -> tuple[Any, float]:
    """A small classifier of out-of-scope vs in-scope on the abstention features, and the threshold
    that withholds at most ``max_withheld`` of in-scope questions it has *not* seen: the threshold
    comes from inner out-of-fold probabilities (a classifier's probabilities on its own training
    rows are over-confident, and a threshold set on them withheld twice the share promised)."""
    clf = _abstain_classifier(feats, oos, names)
    idx = np.arange(len(oos)) if groups is None else np.asarray(groups)
    p = np.zeros(len(oos))
    for k in range(inner_folds):
        te = idx % inner_folds == k
        if te.all() or not oos[~te].any() or oos[~te].all():
            p[te] = clf.predict(feats[te], num_threads=1)
            continue
        p[te] = _abstain_classifier(feats[~te], oos[~te], names).predict(feats[te], num_threads=1)
    threshold = withholding_threshold(p[~oos], max_withheld) if (~oos).any() else 0.5
    return clf, threshold


def withholding_threshold(p_in_scope: np.ndarray, max_withheld: float) -> float:
    """The out-of-scope probability at or above which at most ``max_withheld`` of these in-scope
    probabilities fall."""
    p = np.sort(np.asarray(p_in_scope))
    k = int(np.floor((1 - max_withheld) * len(p)))
    return float(p[min(k, len(p) - 1)]) + 1e-6


def in_call_threshold(
    clf: Any, X_calls: np.ndarray, oos_calls: np.ndarray, max_withheld: float
) -> float | None:
    """The out-of-scope threshold for questions asked inside a call: the probability above which at
    most ``max_withheld`` of labelled caller turns fall. The model learned from single questions only,
    so its probabilities on call turns are out of sample; they run higher than on single questions
    (a caller turn is shorter and leans on the conversation), and the single questions' threshold
    withheld a quarter of labelled turns. None without labelled turns."""
    if not len(X_calls) or oos_calls.all():
        return None
    return withholding_threshold(clf.predict(X_calls[~oos_calls], num_threads=1), max_withheld)


def in_call_threshold_of(
    clf: Any, examples: list[Example], oof: dict[str, np.ndarray], max_withheld: float
) -> float | None:
    """:func:`in_call_threshold` over the call turns among ``examples`` (their out-of-fold scores)."""
    X, y = abstain_rows([e for e in examples if call_set(e.set)], oof, call_turns=True)
    return in_call_threshold(clf, X, y, max_withheld)


def predict(booster: Any, e: Example) -> np.ndarray:
    assert e.cand is not None
    if not len(e.cand.articles):
        return np.zeros(0, dtype=np.float32)
    return np.asarray(booster.predict(e.cand.X, num_threads=1), dtype=np.float32)


def abstain_rows(
    examples: list[Example], oof: dict[str, np.ndarray], call_turns: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Abstention features (from out-of-fold ranker scores) and labels (out of scope) of the
    single utterances; with ``call_turns`` also of the caller turns of calls: the labelled ones in
    scope, the questions labelled with no article (:attr:`Example.in_call_question`) out of scope
    (closings and plain statements are the tracker's business, not the out-of-scope model's)."""
    rows = [
        e
        for e in examples
        if single_set(e.set) or (call_turns and call_set(e.set) and (e.relevant or e.in_call_question))
    ]
    if not rows:
        return np.zeros((0, len(ABSTAIN_FEATURES)), dtype=np.float32), np.zeros(0, dtype=bool)
    X = np.vstack([abstain_features(e.candidates, oof[e.id]) for e in rows])
    return X, np.array([not e.relevant for e in rows])


# which caller turns the in-call abstention model learns to withhold a card from
CALL_MODEL_POSITIVES = ("questions", "no_card")


def _call_positive(e: Example, positives: str) -> bool:
    return e.in_call_question if positives == "questions" else e.needs_no_card


def call_abstain_rows(
    examples: list[Example],
    oof: dict[str, np.ndarray],
    positives: str = "questions",
    single: Any | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The in-call abstention model's rows: caller turns labelled with articles (in scope) and those
    that need no card (``positives``: the unanswerable in-call questions, or every non-closing turn
    labelled with none); features from out-of-fold ranker scores and the ``single`` question model's
    probability (it never learned from call turns, so that is out of sample too); and each row's call."""
    if positives not in CALL_MODEL_POSITIVES:
        raise ValueError(f"positives must be one of {CALL_MODEL_POSITIVES}")
    rows = [e for e in examples if call_set(e.set) and (e.relevant or _call_positive(e, positives))]
    if not rows:
        return (
            np.zeros((0, len(CALL_ABSTAIN_FEATURES)), dtype=np.float32),
            np.zeros(0, dtype=bool),
            np.zeros(0, dtype=np.int64),
        )
    X = np.vstack([call_abstain_features(e.candidates, oof[e.id], _p_single(single, e, oof)) for e in rows])
    groups = np.array([fold_of(e.group, 1 << 30) for e in rows], dtype=np.int64)
    return X, np.array([not e.relevant for e in rows]), groups


def _p_single(single: Any | None, e: Example, oof: dict[str, np.ndarray]) -> float:
    if single is None or not len(oof[e.id]):
        return 0.0
    return float(single.predict(abstain_features(e.candidates, oof[e.id])[None, :], num_threads=1)[0])


def fit_call_abstain(
    examples: list[Example],
    oof: dict[str, np.ndarray],
    max_withheld: float,
    positives: str = "questions",
    single: Any | None = None,
) -> tuple[Any, float] | None:
    """The in-call abstention model and its threshold (at most ``max_withheld`` of labelled caller
    turns withheld, from out-of-fold probabilities grouped by call); None without both kinds."""
    X, y, groups = call_abstain_rows(examples, oof, positives, single)
    if not y.any() or y.all():
        return None
    return fit_abstain(X, y, max_withheld, names=CALL_ABSTAIN_FEATURES, groups=groups)


def call_model_cv(
    reranker: Reranker,
    examples: list[Example],
    oof: dict[str, np.ndarray],
    folds: int = 5,
    max_withheld: float = 0.05,
    positives: str = "questions",
    memory: bool = True,
    unfamiliar_share: float = 0.0,
    probe: bool = True,
    turn_probe: bool = True,
    all_calls: bool = False,
) -> dict[str, Any]:
    """Per held-out fold of calls: the in-call model (fitted on the other folds) against the
    single-question model at its in-call threshold — in-call questions and no-card turns withheld,
    labelled turns withheld, top card right and the shown cards' precision. Judged on the fixed
    pools of calls (``CALL_SETS``), or with ``all_calls`` on every call set's held-out folds (three
    times the turns: two models fitted on the same pool compare with less noise)."""
    per_fold: list[dict[str, Any]] = []
    for f in range(folds):
        train, test, _mem = fold_split(
            reranker, examples, f, folds, memory, unfamiliar_share, probe, turn_probe
        )
        test = [e for e in test if (call_set(e.set) if all_calls else e.set in CALL_SETS)]
        Xa, ya = abstain_rows(train, oof)
        single = fit_abstain(Xa, ya, max_withheld) if ya.any() else None
        fitted = fit_call_abstain(train, oof, max_withheld, positives, single[0] if single else None)
        labelled = [e for e in test if e.relevant]
        questions = [e for e in test if e.in_call_question]
        no_card = [e for e in test if e.needs_no_card]
        if fitted is None or single is None or not labelled:
            continue
        clf, thr = fitted
        single_clf = single[0]
        thr_single = in_call_threshold_of(single_clf, train, oof, max_withheld)
        right = np.array(
            [bool(set(ranked_docs(reranker, e, oof[e.id])[:1]) & set(e.relevant)) for e in labelled]
        )
        res: dict[str, Any] = {
            "fold": f,
            "threshold": round(thr, 4),
            "labelled_n": len(labelled),
            "questions_n": len(questions),
            "no_card_n": len(no_card),
        }

        def withheld(
            es: list[Example], model: Any, t: float | None, call: bool, single_clf: Any = single_clf
        ) -> np.ndarray:
            if not es or t is None:
                return np.zeros(len(es), dtype=bool)
            X = np.vstack(
                [
                    call_abstain_features(e.candidates, oof[e.id], _p_single(single_clf, e, oof))
                    if call
                    else abstain_features(e.candidates, oof[e.id])
                    for e in es
                ]
            )
            return np.asarray(model.predict(X, num_threads=1)) >= t

        for tag, model, t, call in (
            ("call_model", clf, thr, True),
            ("single_model", single[0], thr_single, False),
        ):
            w = withheld(labelled, model, t, call)
            shown = ~w
            res[tag] = {
                "labelled_withheld": round(float(w.mean()), 4),
                "questions_withheld": round(float(withheld(questions, model, t, call).mean()), 4)
                if questions
                else None,
                "no_card_withheld": round(float(withheld(no_card, model, t, call).mean()), 4)
                if no_card
                else None,
                "top1_right": round(float((right & shown).mean()), 4),
                "shown_precision": round(float((right & shown).sum() / shown.sum()), 4)
                if shown.any()
                else None,
            }
        per_fold.append(res)
    mean: dict[str, Any] = {}
    for tag in ("call_model", "single_model"):
        mean[tag] = {
            k: round(float(np.mean(vals)), 4)
            for k in (
                "labelled_withheld",
                "questions_withheld",
                "no_card_withheld",
                "top1_right",
                "shown_precision",
            )
            if (vals := [r[tag][k] for r in per_fold if r[tag].get(k) is not None])
        }
    return {
        "positives": positives,
        "turn_probe": turn_probe,
        "judged_on": "every call set" if all_calls else list(CALL_SETS),
        "folds": folds,
        "per_fold": per_fold,
        "mean_of_held_out_folds": mean,
    }


def cross_validate(
    reranker: Reranker,
    examples: list[Example],
    folds: int = 5,
    max_withheld: float = 0.05,
    call_turns: bool = False,
    memory: bool = True,
    unfamiliar_share: float = 0.0,
    probe: bool = True,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per-fold and mean held-out figures, and every example's out-of-fold ranker scores.

    The abstention classifier of fold ``f`` learns from the other folds' out-of-fold scores (as a
    served question's scores come from a model that never saw it) and is judged on fold ``f``. With
    ``memory``, fold ``f``'s models read a question memory of the other folds (:func:`fold_split`).
    Held-out questions are also scored apart by whether the fold's memory knows one of their
    articles (``familiar``) or none (``unfamiliar``: an article nobody in the training folds asked
    about, as many a served question's is)."""
    sets = sorted({e.set for e in examples})
    per_fold: list[dict[str, Any]] = []
    oof: dict[str, np.ndarray] = {}
    splits = [fold_split(reranker, examples, f, folds, memory, unfamiliar_share, probe) for f in range(folds)]
    for f in range(folds):
        train, test, fold_memory = splits[f]
        booster = fit_gated(reranker, train)
        for e in test:
            oof[e.id] = predict(booster, e)
        res: dict[str, Any] = {"fold": f}
        for name in sets:
            ts = [e for e in test if e.set == name and e.relevant]
            first = hit_metrics([e.first_stage for e in ts], [e.relevant for e in ts])
            rer = hit_metrics([ranked_docs(reranker, e, oof[e.id]) for e in ts], [e.relevant for e in ts])
            res[name] = {"first_stage": first, "reranked": rer}
        # the articles the fold's memory knows (without one, those it would know)
        known = {a for arts in (fold_memory or memory_of(train)).articles for a in arts}
        for kind, kind_sets in (("utterances", UTTERANCE_SETS), ("turns", CALL_SETS)):
            for tag, want in (("familiar", True), ("unfamiliar", False)):
                ts = [
                    e
                    for e in test
                    if e.set in kind_sets and e.relevant and bool(known & set(e.relevant)) == want
                ]
                res.setdefault(tag, {})[kind] = hit_metrics(
                    [ranked_docs(reranker, e, oof[e.id]) for e in ts], [e.relevant for e in ts]
                )
        per_fold.append(res)
        log.info("fold %d done", f)
    for f, res in enumerate(per_fold):
        train, test, _mem = splits[f]
        Xa, ya = abstain_rows(train, oof, call_turns)
        if not ya.any():
            continue
        clf, thr = fit_abstain(Xa, ya, max_withheld)
        thr_call = in_call_threshold_of(clf, train, oof, max_withheld)
        # judged on the held-out fold's single questions, and on its call turns (always: the
        # in-call questions are measured whether or not the model learned from call turns)
        Xb, yb = abstain_rows([e for e in test if e.set in UTTERANCE_SETS], oof)
        p = clf.predict(Xb, num_threads=1) if len(yb) else np.zeros(0)
        res["abstain"] = {
            "threshold": round(thr, 4),
            "oos_n": int(yb.sum()),
            "oos_abstained": round(float((p[yb] >= thr).mean()), 4) if yb.any() else None,
            "in_scope_n": int((~yb).sum()),
            "in_scope_withheld": round(float((p[~yb] >= thr).mean()), 4) if (~yb).any() else None,
        }
        Xc, yc = abstain_rows([e for e in test if e.set in CALL_SETS], oof, call_turns=True)
        if len(yc):
            pc = clf.predict(Xc, num_threads=1)
            res["abstain"] |= {
                "call_questions_n": int(yc.sum()),
                "call_questions_abstained": round(float((pc[yc] >= thr).mean()), 4) if yc.any() else None,
                "call_turns_in_scope_n": int((~yc).sum()),
                "call_turns_in_scope_withheld": round(float((pc[~yc] >= thr).mean()), 4)
                if (~yc).any()
                else None,
            }
            if thr_call is not None:
                res["abstain"] |= {
                    "threshold_in_call": round(thr_call, 4),
                    "call_questions_abstained_own_threshold": round(float((pc[yc] >= thr_call).mean()), 4)
                    if yc.any()
                    else None,
                    "call_turns_in_scope_withheld_own_threshold": round(
                        float((pc[~yc] >= thr_call).mean()), 4
                    )
                    if (~yc).any()
                    else None,
                }
            if (~yc).any():
                # what a counselor sees on the labelled turns: top card right (shown and right, of all
                # labelled turns) and the shown cards' precision, at either threshold
                labelled = [e for e in test if e.set in CALL_SETS and e.relevant]
                right = np.array(
                    [bool(set(ranked_docs(reranker, e, oof[e.id])[:1]) & set(e.relevant)) for e in labelled]
                )
                for tag, t in (("single_threshold", thr), ("own_threshold", thr_call)):
                    if t is None:
                        continue
                    shown = pc[~yc] < t
                    res["abstain"][f"call_turns_top1_right_{tag}"] = round(float((right & shown).mean()), 4)
                    res["abstain"][f"call_turns_shown_precision_{tag}"] = (
                        round(float((right & shown).sum() / shown.sum()), 4) if shown.any() else None
                    )
    mean: dict[str, Any] = {}
    for name in sets:
        mean[name] = {
            stage: _fold_mean([r[name][stage] for r in per_fold if r[name][stage].get("n")])
            for stage in ("first_stage", "reranked")
        }
    for tag in ("familiar", "unfamiliar"):
        for kind in ("utterances", "turns"):
            vals = [r[tag][kind] for r in per_fold if r[tag][kind].get("n")]
            if vals:
                mean.setdefault(tag, {})[kind] = _fold_mean(vals)
    ab = [r["abstain"] for r in per_fold if "abstain" in r]
    if ab:
        keys = (
            "oos_abstained",
            "in_scope_withheld",
            "threshold",
            "call_questions_abstained",
            "call_turns_in_scope_withheld",
            "threshold_in_call",
            "call_questions_abstained_own_threshold",
            "call_turns_in_scope_withheld_own_threshold",
            "call_turns_top1_right_single_threshold",
            "call_turns_shown_precision_single_threshold",
            "call_turns_top1_right_own_threshold",
            "call_turns_shown_precision_own_threshold",
        )
        mean["abstain"] = {
            k: round(float(np.mean(vals)), 4)
            for k in keys
            if (vals := [a[k] for a in ab if a.get(k) is not None])
        }
    report = {"folds": folds, "per_fold": per_fold, "mean_of_held_out_folds": mean}
    return report, oof


def _fold_mean(vals: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of per-fold hit metrics, and their summed n."""
    return {
        k: round(float(np.mean([v[k] for v in vals])), 4) for k in ("hit_at_1", "hit_at_5", "mrr_at_10")
    } | {"n": sum(v["n"] for v in vals)}


def pooled(mean: dict[str, Any], sets: Iterable[str]) -> dict[str, float]:
    """H@1 / H@5 / MRR@10 of ``sets`` in a report's ``mean_of_held_out_folds``, weighted by their n."""
    rows = [mean[s]["reranked"] for s in sets if s in mean and mean[s]["reranked"].get("n")]
    n = sum(r["n"] for r in rows)
    if not n:
        return {}
    return {k: round(sum(r[k] * r["n"] for r in rows) / n, 4) for k in ("hit_at_1", "hit_at_5", "mrr_at_10")}


def seed_spread(
    reranker: Reranker,
    examples: list[Example],
    seeds: Iterable[int],
    folds: int = 5,
    max_withheld: float = 0.05,
    memory: bool = True,
    unfamiliar_share: float = 0.0,
    probe: bool = True,
) -> dict[str, Any]:
    """The same cross-validation with the ranker's random seed varied (its row and column
    subsampling): single questions and caller turns pooled, and abstention, per seed, with their
    mean and range. Two settings whose means differ by less than the range are not told apart by
    these data (session 14: about ±0.5 point of H@1 on single questions, ±0.8 on caller turns)."""
    saved = PARAMS["random_state"]
    per_seed: dict[str, Any] = {}
    try:
        for seed in seeds:
            PARAMS["random_state"] = int(seed)
            report, _ = cross_validate(
                reranker,
                examples,
                folds,
                max_withheld,
                memory=memory,
                unfamiliar_share=unfamiliar_share,
                probe=probe,
            )
            mean = report["mean_of_held_out_folds"]
            ab = mean.get("abstain", {})
            per_seed[str(seed)] = {
                "single_questions": pooled(mean, UTTERANCE_SETS),
                "caller_turns": pooled(mean, CALL_SETS),
                "oos_abstained": ab.get("oos_abstained"),
                "in_scope_withheld": ab.get("in_scope_withheld"),
                # each set's own (two training pools compare on the sets they share)
                "per_set": {
                    name: {"n": row["reranked"]["n"], "hit_at_1": row["reranked"]["hit_at_1"]}
                    for name, row in mean.items()
                    if isinstance(row, dict) and "reranked" in row
                },
            }
            log.info("seed %s done", seed)
    finally:
        PARAMS["random_state"] = saved
    summary: dict[str, Any] = {}
    for kind in ("single_questions", "caller_turns"):
        for k in ("hit_at_1", "hit_at_5", "mrr_at_10"):
            vals = [r[kind][k] for r in per_seed.values() if r[kind]]
            if vals:
                summary.setdefault(kind, {})[k] = {
                    "mean": round(float(np.mean(vals)), 4),
                    "min": min(vals),
                    "max": max(vals),
                }
    for k in ("oos_abstained", "in_scope_withheld"):
        vals = [r[k] for r in per_seed.values() if r[k] is not None]
        if vals:
            summary[k] = {"mean": round(float(np.mean(vals)), 4), "min": min(vals), "max": max(vals)}
    return {"per_seed": per_seed, "summary": summary}


NO_MEMORY = "no question memory"
ABLATIONS: dict[str, tuple[str, ...]] = {
    "caller's words only (no T+C, T+H)": T_ONLY_DROP,
    NO_MEMORY: MEMORY_FEATURES,
    "no article structure or district": (
        "law_kind",
        "is_table",
        "generic_title",
        "district_match",
        "district_other",
        "length",
        "title_t",
        "title_h",
    ),
    "no law grouping (which law, which of its articles)": LAW_FEATURES,
}


def ablated(examples: list[Example], drop: tuple[str, ...]) -> list[Example]:
    """The examples with the ``drop`` features held constant (the trees cannot split on them)."""
    cols = [FEATURES.index(f) for f in drop]
    out = []
    for e in examples:
        assert e.cand is not None
        X = e.cand.X.copy()
        X[:, cols] = 0.0
        out.append(replace(e, cand=replace(e.cand, X=X)))
    return out


def ablation(reranker: Reranker, examples: list[Example], folds: int = 5) -> dict[str, Any]:
    """Mean held-out figures per set with each feature group removed (what each stage adds)."""
    out: dict[str, Any] = {}
    for name, drop in ABLATIONS.items():
        # the memory's columns are recomputed per fold: its law vote is held at 0 by reading no laws
        reranker.law_vote = "mem_law_vote" not in drop
        try:
            report, _oof = cross_validate(reranker, ablated(examples, drop), folds, memory=name != NO_MEMORY)
        finally:
            reranker.law_vote = True
        out[name] = {
            "per_fold": [
                {k: v["reranked"] for k, v in f.items() if isinstance(v, dict) and "reranked" in v}
                for f in report["per_fold"]
            ],
            "mean": {
                k: v["reranked"]
                for k, v in report["mean_of_held_out_folds"].items()
                if isinstance(v, dict) and "reranked" in v
            },
        }
    return out


# the labelled sets by who wrote them (and when): a writer's questions resemble each other more than
# anyone else's, so leaving one writer's sets out asks what the memory is worth on a new writer's
WRITERS: dict[str, tuple[str, ...]] = {
    "eval-dev": ("dev",),
    "sessions 1-5": ("utterances", "noisy", "turns"),
    # each held-out set's utterances and calls were written by one writer (until session 16 only
    # holdouts 1-4 were listed: a holdout 5-7 utterance read its own writer's call questions)
    **{f"holdout {k}": (f"utterances_h{k}", f"turns_h{k}") for k in HOLDOUT_SUFFIX},
}


def leave_writer_out(
    reranker: Reranker,
    examples: list[Example],
    unfamiliar_share: float = 0.0,
    writers: Iterable[str] | None = None,
) -> dict[str, Any]:
    """For each writer's sets (``writers``: these keys of :data:`WRITERS`; None: all): the ranker
    fitted on everyone else's examples, with and without a memory of them, judged on that writer's
    questions (single questions and call turns apart)."""
    chosen = WRITERS if writers is None else {w: WRITERS[w] for w in writers}
    out: dict[str, Any] = {}
    for writer, names in chosen.items():
        train = [e for e in examples if e.set not in names]
        test = [e for e in examples if e.set in names]
        if not test or not train:
            continue
        res: dict[str, Any] = {}
        for tag in ("no_memory", "memory"):
            tr, te = train, test
            if tag == "memory":
                mem = memory_of(train)
                tr = learning_rows(reranker, train, unfamiliar_share)
                te = with_memory(reranker, test, mem, False)
            gated = fit_gated(reranker, tr)
            for kind in ("utterances", "turns"):
                ts = [e for e in te if e.relevant and call_set(e.set) == (kind == "turns")]
                if ts:
                    res.setdefault(kind, {})[tag] = hit_metrics(
                        [ranked_docs(reranker, e, predict(gated, e)) for e in ts], [e.relevant for e in ts]
                    )
        out[writer] = res
        log.info("left out %s", writer)
    return out


def default_sets(
    root: Path, shared: Path, with_holdout1: bool = False, holdouts: Iterable[str] = ()
) -> dict[str, Path]:
    """Every labelled set the shipped models learn from. ``with_holdout1``: the first held-out sets
    (``*_holdout.jsonl``) too — tried in session 8 (``dasan eval rerank --with-holdout1``): the
    cross-validated figures did not move and the second held-out set's live cards got worse (top card
    right 0.21 vs 0.29), so the shipped models were fitted without them until session 11 (1–4) and
    session 15 (1–7) and session 16 (1–9). A set still blind (holdout 10) is never a training set."""
    sets = {
        "dev": shared / SHARED_SETS["dev"],
        "utterances": root / "eval" / "utterances.jsonl",
        "noisy": root / "eval" / "utterances_noisy.jsonl",
        "turns": root / "eval" / "calls.jsonl",
    }
    chosen = list(dict.fromkeys([*(["1"] if with_holdout1 else []), *holdouts]))
    for k in chosen:
        if k in BLIND_HOLDOUTS:
            raise ValueError(f"held-out set {k} is blind: measure a change once on it, never train on it")
        if k not in HOLDOUT_SUFFIX:
            raise ValueError(f"no held-out set {k!r} (known: {', '.join(HOLDOUT_SUFFIX)})")
        sets |= {
            f"utterances_h{k}": root / "eval" / f"utterances{HOLDOUT_SUFFIX[k]}.jsonl",
            f"turns_h{k}": root / "eval" / f"calls{HOLDOUT_SUFFIX[k]}.jsonl",
        }
    return sets


def shipped_context_vectors(path: Path = MODEL_PATH) -> str:
    """The context vectors (``rerank.CONTEXT_VECTORS``) the shipped models learned from."""
    saved = path.with_name("abstain_threshold.json")
    if not saved.exists():
        return "text"
    return str(json.loads(saved.read_text()).get("context_vectors") or "text")


def features_cache(kb: Any, sets: dict[str, Path], context_vectors: str = "text") -> Path:
    """Where the featurised examples of this index and these labelled files are kept (var/cache)."""
    from . import rerank

    h = hashlib.sha256()
    h.update(str(kb.key).encode())
    if context_vectors != "text":  # (the key of the text vectors' features is the one they always had)
        h.update(context_vectors.encode())
    h.update(Path(rerank.__file__).read_bytes())
    # the feature names too: the memory's come from memory.py, and a cached row must have their width
    h.update(json.dumps([FEATURES, CALL_ABSTAIN_FEATURES]).encode())
    for name, path in sorted(sets.items()):
        h.update(name.encode())
        h.update(path.read_bytes())
    return Path(kb.settings.index_dir).parent / "cache" / f"rerank-features-{h.hexdigest()[:16]}.pkl"


def featurized_examples(
    assistant: Any,
    reranker: Reranker,
    sets: dict[str, Path],
    use_cache: bool = True,
    progress: bool = False,
) -> tuple[list[Example], list[str]]:
    """The examples of every labelled set with their candidates and features, each set's cached on
    its own (:func:`features_cache` of that one set): adding a set featurises only that set, where a
    cache over all of them featurised every example again (6-40 minutes on 2 cores). Each set is
    written to the cache as soon as it is featurised, so a run stopped half-way keeps what it did
    (until session 28 nothing was written before the last set: 30 minutes lost on an AVX2 CPU).
    ``progress``: a bar over the examples to featurise, on stderr. Returns the examples in the order
    of ``sets`` and the names of the sets featurised now."""
    import pickle

    from tqdm import tqdm

    examples: list[Example] = []
    fresh: dict[str, tuple[Path, list[Example]]] = {}  # the sets featurised now, by name
    for name, path in sets.items():
        part = load_examples(assistant, {name: path})
        cache = features_cache(reranker.kb, {name: path}, reranker.context_vectors)
        if use_cache and cache.exists():
            part = pickle.loads(cache.read_bytes())
        else:
            fresh[name] = (cache, part)
        examples += part
    if fresh:
        total = sum(len(part) for _, part in fresh.values())
        with tqdm(total=total, desc="featurising", unit="ex", disable=not progress) as bar:
            for cache, part in fresh.values():
                featurize(reranker, part, done=bar.update)
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_bytes(pickle.dumps(part))
    return examples, list(fresh)


def train_and_save(
    reranker: Reranker,
    examples: list[Example],
    oof: dict[str, np.ndarray],
    path: Path = MODEL_PATH,
    max_withheld: float = 0.05,
    call_turns: bool = False,
    call_model: str | None = None,
    memory: bool = True,
    unfamiliar_share: float = 0.0,
    probe: bool = True,
    turn_probe: bool = True,
) -> dict[str, Any]:
    """Fit the ranker on every example, and the abstention classifier on every example's out-of-fold
    scores; write both (and the threshold) beside the module. With ``probe``, the out-of-scope probe
    too (``abstain_probe.npz``; the abstention models learn from its out-of-fold probabilities). With
    ``call_model``, also the in-call abstention model (``abstain_call_model.txt``; without it, a stale
    one is removed), with ``turn_probe`` after the turn probe it reads (``abstain_turn_probe.npz``). The questions of the memory (every remembered example's words and articles) go beside them
    (``rerank_memory.jsonl``), their vectors into the index's folder;
    each example learns from it without its own group, as a served question is never its own
    neighbour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mpath = path.with_name(MEMORY_FILE)
    memory_named: str | None = None
    remembered_n = 0
    if memory:
        mem = memory_of(examples)
        write_questions(
            mpath, [remembered_as(e) for e in memory_rows(examples)], [list(a) for a in mem.articles]
        )
        store_vectors(reranker.kb, mpath, mem)
        examples = learning_rows(reranker, examples, unfamiliar_share)
        remembered_n = len(mem)
        shipped = MODEL_PATH.with_name(MEMORY_FILE)
        if mpath != shipped and shipped.exists() and mpath.read_bytes() == shipped.read_bytes():
            # a second model set (the composed one) of the same examples: it names the shipped
            # set's questions rather than carrying a 1.4 MB copy of them
            mpath.unlink()
            memory_named = os.path.relpath(shipped, path.parent)
    elif mpath.exists():
        mpath.unlink()  # models that learned without a memory must not read a stale one
    examples, _none, fitted_probe = with_probe(examples, [], probe)
    ppath = path.with_name(PROBE_FILE)
    if fitted_probe is not None:
        fitted_probe.save(ppath, encoder=str(reranker.kb.info().get("dense_backend", "")))
    elif ppath.exists():
        ppath.unlink()  # models that learned without a probe must not read a stale one
    gated = fit_gated(reranker, examples)
    gated.full.save_model(str(path))
    assert gated.t_only is not None
    gated.t_only.save_model(str(path.with_name(MODEL_T_PATH.name)))
    X, y = abstain_rows(examples, oof, call_turns)
    clf, thr = fit_abstain(X, y, max_withheld)
    thr_call = in_call_threshold_of(clf, examples, oof, max_withheld)
    apath = path.with_name("abstain_model.txt")
    clf.save_model(str(apath))
    cpath = path.with_name(CALL_MODEL_FILE)
    tpath = path.with_name(TURN_PROBE_FILE)
    fitted_turn: OosProbe | None = None
    if call_model:
        examples, _none, fitted_turn = with_turn_probe(examples, [], turn_probe)
    fitted = fit_call_abstain(examples, oof, max_withheld, call_model, clf) if call_model else None
    thr_call_model: float | None = None
    if fitted is not None:
        fitted[0].save_model(str(cpath))
        thr_call_model = fitted[1]
    elif cpath.exists():
        cpath.unlink()
    if fitted is not None and fitted_turn is not None:
        fitted_turn.save(tpath, encoder=str(reranker.kb.info().get("dense_backend", "")))
    else:
        fitted_turn = None
        if tpath.exists():
            tpath.unlink()  # no in-call model reads it
    path.with_name("abstain_threshold.json").write_text(
        json.dumps(
            {
                "threshold": thr,
                "threshold_in_call": thr_call,
                "threshold_call_model": thr_call_model,
                "call_model_positives": call_model if fitted is not None else None,
                "call_model_features": list(CALL_ABSTAIN_FEATURES) if fitted is not None else None,
                "max_in_scope_withheld": max_withheld,
                "features": list(ABSTAIN_FEATURES),
                "trained_on": sorted({e.set for e in examples}),
                "call_turns": call_turns,
                "context_vectors": reranker.context_vectors,
                "oos_probe": fitted_probe is not None,
                "turn_probe": fitted_turn is not None,
                "memory_questions": memory_named,
            },
            indent=1,
        )
        + "\n"
    )
    return {
        "model": str(path),
        "abstain_model": str(apath),
        "threshold": thr,
        "threshold_in_call": thr_call,
        "threshold_call_model": thr_call_model,
        "examples": len(examples),
        "memory_questions": remembered_n,
        "oos_probe": fitted_probe is not None,
        "turn_probe": fitted_turn is not None,
    }


def iter_sets(s: str) -> Iterable[str]:
    return [x.strip() for x in s.split(",") if x.strip()]
