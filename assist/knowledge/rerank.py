"""The second stage: a learned ranker over the first stage's candidate articles.

The first stage (BM25 + dense, fused) finds the right article among its top 30 for nearly every
question, but puts it first for barely half of them. What it ignores is what the reranker reads, per
candidate article:

- the same question three ways: the caller's words (``T``), with the counselor's last turn (``T+C``:
  the counselor names the legal matter a caller does not — 취득세, 의견진술, 감경) and with the
  conversation so far (``T+H``: the topic a follow-up such as "그럼 60일 넘기면요?" belongs to);
- each side's score and rank, the gap to the best candidate, agreement between dense and lexical;
- the article's structure: 법률 / 시행령 / 시행규칙 / 조례 / 별표, whether the title is generic
  (목적, 정의), how much of its title the conversation says;
- the call's district: a district ordinance of the district named, or of another one;
- the article's law among the candidates (session 19): how far the law's best candidate is below the
  best of all, the article's rank among its own law's candidates and how many that law has — a near
  miss is most often another article of the right law;
- the question memory (:mod:`.memory`): how near the nearest labelled question this article answered
  is, how many of the nearest ones it answered and their weighted vote (and its law's vote), and —
  for abstention — whether the nearest remembered questions were out of scope.

The model is a LightGBM LambdaRank ensemble (a few hundred shallow trees) trained by
``dasan eval rerank --train`` on the labelled utterances and call turns with grouped cross-validation
(:mod:`.rerank_train`); its text file ships with the package, so serving needs no training. Scoring
30–60 candidates costs well under a millisecond beyond the two extra query embeddings.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .fusion import minmax, top_indices
from .memory import (
    MEMORY_ABSTAIN_FEATURES,
    MEMORY_FEATURES,
    MEMORY_FILE,
    QuestionMemory,
    empty_features,
    shipped_memory,
)
from .oos_probe import PROBE_FILE, TURN_PROBE_FILE, OosProbe
from .records import SOURCE_FIELDS, SearchFilters, SearchHit

if TYPE_CHECKING:
    from .kb import KnowledgeBase

log = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).with_name("rerank_model.txt")
# The second model set (#18): the same models fitted on composed context vectors, a site's choice
# (``DASAN_KB_RERANK_CONTEXT_VECTORS=composed``) where a card's encoder work must be one short text.
# Its files have the shipped set's names; the question memory is the shipped set's when the
# training wrote the same questions (``abstain_threshold.json``'s ``memory_questions``).
COMPOSED_MODEL_DIR = Path(__file__).with_name("composed")
HISTORY_CHARS = 400  # how much of the earlier conversation the T+H query carries
POOL = 20  # candidate articles taken from each side of each query variant

VARIANTS = ("t", "c", "h")
# How the dense side of the context variants is made. ``text``: the encoder embeds the concatenated
# texts (the caller's words + the counselor's last turn; + the recent conversation), three texts a
# question, each new at every caller final. ``composed``: the sum of unit vectors — the caller's
# words' vector plus the counselor's turn's (``c``), plus the mean of the recent turns' (``h``) —
# where every turn is embedded once in a call's life (the query cache keeps it) and a question's
# only new text is the caller's words (#18: the encoder's work on a card's path; BM25 still reads
# the concatenated texts). ``composed-h``: the ``c`` variant as text, the ``h`` variant composed (two
# new texts a question, neither of them the long history).
CONTEXT_VECTORS = ("text", "composed", "composed-h")
CONTEXT_WEIGHT = 0.5  # the context's unit vector's weight beside the caller's words' in a composed query
FEATURES: tuple[str, ...] = (
    *(f"{side}_{v}" for v in VARIANTS for side in ("dense", "bm25", "fused")),
    *(f"{side}_{v}_rank" for v in VARIANTS for side in ("dense", "bm25", "fused")),
    *(f"{side}_{v}_gap" for v in VARIANTS for side in ("dense", "fused")),
    "bm25_t_rel",
    "agree_t",
    "has_context",
    "law_kind",
    "is_table",
    "generic_title",
    "title_t",
    "title_h",
    "district_match",
    "district_other",
    "length",
    "law_gap_h",
    "law_rank_h",
    "law_n",
    *MEMORY_FEATURES,
    # the caller's newest turn alone (``Conversation.trigger``): a thin follow-up ("과태료도 나와요?")
    # is searched with the caller's turn before it, so every ``_t`` score above also reads the old
    # topic; these say what the new question itself names (equal to title_t / bm25_t_rel when the
    # trigger is the whole question)
    "title_trig",
    "bm25_trig_rel",
)
# which law and which of its articles (the near misses: another article of the right law on top)
LAW_FEATURES: tuple[str, ...] = ("law_gap_h", "law_rank_h", "law_n", "mem_law_vote")
# what the model for a question without context reads: the caller's words alone (with no counselor turn
# and no history the T+C and T+H variants equal T; a model trained on calls misreads them there)
# (the law features read T+H's scores, which equal T's there; until session 19 a substring test also
# dropped mem_count, which is no context variant)
T_ONLY_DROP: tuple[str, ...] = tuple(
    f
    for f in FEATURES
    if (re.search(r"_[ch](_|$)", f) and f not in LAW_FEATURES) or f in ("has_context", "title_h")
)
_T_ONLY_COLS = [FEATURES.index(f) for f in T_ONLY_DROP]
_HAS_CONTEXT = FEATURES.index("has_context")
MODEL_T_PATH = MODEL_PATH.with_name("rerank_model_t.txt")
CALL_MODEL_FILE = "abstain_call_model.txt"
ABSTAIN_FEATURES = (
    "top",
    "margin",
    "dense_t",
    "bm25_t_rel",
    "dense_h",
    "fused_t_best",
    *MEMORY_ABSTAIN_FEATURES,
    # P(out of scope) of a linear probe on the caller's words' vector (``oos_probe.py``): what the
    # question is about, where the scores say only how well something matches
    "oos_probe",
)
# what the in-call abstention model reads beside ABSTAIN_FEATURES: whether the top candidate rests on
# the caller's own words or on the conversation around them, and the caller's words themselves — how
# many content nouns they carry and how many of those the conversation has not said yet (a question
# on a new matter inside a call: "그 앱 이름이 뭐였더라", "번호가 어떻게 돼요?")
TURN_FEATURES = ("turn_terms", "turn_novel", "turn_question")
CALL_ABSTAIN_FEATURES = (
    *ABSTAIN_FEATURES,
    "top_fused_t_rank",
    "top_title_t",
    "top_dense_t_gap",
    "dense_t_best",
    "bm25_t_best",
    "turn_bm25_top_rel",
    "turn_bm25_best",
    *TURN_FEATURES,
    "p_single",  # the single-question model's P(out of scope): it learned from many more questions
    # P(no card needed) of a linear probe on the caller's words' vector, learned from call turns
    # (``oos_probe.py``, the turn probe): what a turn is about and how it is said, where the other
    # features say how well something matches
    "turn_probe",
)
_GENERIC = re.compile(r"^(목적|정의|시행일|적용\s*범위|다른\s*법률과의\s*관계|위임|권한의\s*위임)")


def law_kind(law_name: str, jurisdiction: str) -> int:
    """0 법률, 1 시행령, 2 시행규칙, 3 조례, 4 조례 시행규칙 (a local 규칙)."""
    if jurisdiction != "대한민국":
        return 4 if law_name.endswith("규칙") else 3
    if law_name.endswith("시행규칙"):
        return 2
    if law_name.endswith("시행령"):
        return 1
    return 0


@dataclass
class Conversation:
    """What one retrieval asks: the caller's question (``text``, what the first stage searched), the
    counselor's last turn before it and the earlier conversation (both channels, masked)."""

    text: str
    counselor: str = ""
    history: str = ""
    district: str | None = None
    filters: SearchFilters | None = None
    trigger: str = ""  # the caller's newest turn(s) alone (``text`` may carry earlier caller turns)
    # the earlier conversation turn by turn (both channels, oldest first): what the ``composed``
    # context vectors are made of (:meth:`history_window`)
    history_turns: tuple[str, ...] = ()

    @property
    def has_context(self) -> bool:
        """Whether the question has a conversation before it (a question inside a call)."""
        return bool(self.counselor.strip() or self.history.strip())

    def variants(self) -> dict[str, str]:
        c = f"{self.text} {self.counselor}".strip() if self.counselor.strip() else self.text
        h = f"{self.text} {self.history[-HISTORY_CHARS:]}".strip() if self.history.strip() else self.text
        return {"t": self.text, "c": c, "h": h}

    def history_window(self) -> list[str]:
        """The most recent turns of the earlier conversation within ``HISTORY_CHARS`` (at least the
        last one), oldest first: the turns the ``h`` variant's composed vector averages."""
        turns = [t for t in self.history_turns if t.strip()]
        if not turns and self.history.strip():
            turns = [self.history]
        out: list[str] = []
        size = 0
        for t in reversed(turns):
            if out and size + len(t) > HISTORY_CHARS:
                break
            out.append(t)
            size += len(t) + 1
        return out[::-1]


@dataclass
class Candidates:
    """The candidate articles of one conversation and their feature rows."""

    articles: np.ndarray  # article indices (ArticleView order)
    passages: np.ndarray  # the passage shown for each article
    X: np.ndarray  # (n, len(FEATURES))
    passage_scores: dict[str, np.ndarray] = field(default_factory=dict)  # T's per-method scores
    turn: np.ndarray = field(default_factory=lambda: np.zeros(len(TURN_FEATURES), dtype=np.float32))
    turn_bm25: np.ndarray | None = None  # BM25 of the trigger's own words, per candidate article
    qvec: np.ndarray | None = None  # the caller's words' query vector (what the question memory reads)
    mem_ab: np.ndarray = field(default_factory=lambda: empty_features(0)[1])  # MEMORY_ABSTAIN_FEATURES
    p_probe: float = 0.0  # the out-of-scope probe's probability for the caller's words (0: no probe)
    p_turn: float = 0.0  # the turn probe's P(no card needed) for a caller's turn in a call (0: no probe)


class ArticleView:
    """Article-level views of passage-level arrays (an article scores as its best allowed passage)."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        ranker = kb.searcher.ranker
        self.art_of = ranker.art_of
        self.n = len(ranker.art_passages)
        self.order = np.argsort(self.art_of, kind="stable")
        sorted_arts = self.art_of[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_arts[1:] != sorted_arts[:-1]])
        first = [ranker.art_passages[a][0] for a in range(self.n)]
        ps = [kb.passages[i] for i in first]
        self.doc_id = [p.doc_id for p in ps]
        self.kind = np.array([law_kind(p.law_name, p.jurisdiction) for p in ps], dtype=np.float32)
        self.table = np.array(["별표" in p.article_no for p in ps], dtype=np.float32)
        self.generic = np.array([bool(_GENERIC.match(p.article_title or "")) for p in ps], dtype=np.float32)
        self.jurisdiction = [p.jurisdiction for p in ps]
        # the law of every article (its doc id's law part: 법률, 시행령, 시행규칙 and 조례 apart)
        laws: dict[str, int] = {}
        self.law = np.array(
            [laws.setdefault(d.split("/")[0], len(laws)) for d in self.doc_id], dtype=np.int64
        )
        lengths = np.zeros(self.n, dtype=np.float32)
        np.add.at(lengths, self.art_of, np.array([len(p.text) for p in kb.passages], dtype=np.float32))
        self.length = np.log1p(lengths)
        self.title_terms = [{t for t in kb.analyzer.nouns(p.article_title or "") if len(t) >= 2} for p in ps]

    def max(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        v = np.where(mask, x, -np.inf)[self.order]
        return np.maximum.reduceat(v, self.starts)


def zero_context(X: np.ndarray) -> np.ndarray:
    out = X.copy()
    out[:, _T_ONLY_COLS] = 0.0
    return out


class Gated:
    """Two rankers behind one ``predict``: one over the whole conversation, one over the caller's
    words alone for a question with no context yet (a call's first question, a single utterance)."""

    def __init__(self, full: Any, t_only: Any | None) -> None:
        self.full = full
        self.t_only = t_only

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        if len(X) and self.t_only is not None and X[0, _HAS_CONTEXT] == 0:
            return np.asarray(self.t_only.predict(zero_context(X), num_threads=num_threads))
        return np.asarray(self.full.predict(X, num_threads=num_threads))


def abstain_features(c: Candidates, scores: np.ndarray) -> np.ndarray:
    """What the abstention decision reads: the top candidate's score and its margin over the second,
    the top candidate's own evidence, and the first stage's best fused score."""
    if not len(scores):
        return np.zeros(len(ABSTAIN_FEATURES), dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    j = order[0]
    x = dict(zip(FEATURES, c.X[j].tolist(), strict=True))
    margin = float(scores[j] - scores[order[1]]) if len(order) > 1 else 1.0
    best_fused = float(c.X[:, FEATURES.index("fused_t")].max())
    own = np.array(
        [float(scores[j]), margin, x["dense_t"], x["bm25_t_rel"], x["dense_h"], best_fused], dtype=np.float32
    )
    return np.concatenate([own, c.mem_ab.astype(np.float32), np.array([c.p_probe], dtype=np.float32)])


def call_abstain_features(c: Candidates, scores: np.ndarray, p_single: float = 0.0) -> np.ndarray:
    """What the in-call abstention decision reads (``CALL_ABSTAIN_FEATURES``); ``p_single`` is the
    single-question model's probability for the same question."""
    if not len(scores):
        return np.zeros(len(CALL_ABSTAIN_FEATURES), dtype=np.float32)
    base = abstain_features(c, scores)
    j = int(np.argmax(scores))
    x = dict(zip(FEATURES, c.X[j].tolist(), strict=True))
    col = FEATURES.index
    tb = c.turn_bm25 if c.turn_bm25 is not None else c.X[:, col("bm25_t")]
    best = float(tb.max())
    own = [
        x["fused_t_rank"],
        x["title_t"],
        x["dense_t_gap"],
        float(c.X[:, col("dense_t")].max()),
        float(c.X[:, col("bm25_t")].max()),
        float(tb[j]) / best if best > 0 else 0.0,
        best,
    ]
    return np.concatenate(
        [
            base,
            np.array(own, dtype=np.float32),
            c.turn.astype(np.float32),
            np.array([p_single, c.p_turn], dtype=np.float32),
        ]
    )


def law_features(law: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate, from the candidates of its own law: how far the law's best score is below the
    best candidate's (``law_gap_h``: which law), the article's rank within its law (``law_rank_h``:
    which article of it) and how many candidates the law has (``law_n``)."""
    n = len(law)
    gap = np.zeros(n, dtype=np.float32)
    rank = np.zeros(n, dtype=np.float32)
    count = np.zeros(n, dtype=np.float32)
    if not n:
        return gap, rank, count
    top = float(score.max())
    for g in np.unique(law):
        m = law == g
        gap[m] = top - float(score[m].max())
        rank[m] = np.minimum(_ranks(score[m]), 50.0)
        count[m] = float(m.sum())
    return gap, rank, count


def turn_features(terms_t: set[str], terms_ctx: set[str], question: bool = False) -> np.ndarray:
    """``TURN_FEATURES`` of the caller's words (their content nouns) against the conversation's, and
    whether they ask something."""
    novel = len(terms_t - terms_ctx) / len(terms_t) if terms_t else 0.0
    return np.array([float(len(terms_t)), novel, float(question)], dtype=np.float32)


def compose(qvecs: np.ndarray, parts: tuple[int, ...], weight: float = CONTEXT_WEIGHT) -> np.ndarray:
    """The dense query of a variant: ``qvecs[parts[0]]`` alone, or the unit-length sum of the first
    part's vector (the caller's words) and ``weight`` times the mean of the others' (the context
    turns), each unit."""
    if len(parts) == 1:
        return np.asarray(qvecs[parts[0]], dtype=np.float32)
    v = np.asarray(qvecs[list(parts)], dtype=np.float32)  # only the rows this variant reads
    unit = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    ctx = unit[1:].mean(axis=0)
    ctx /= max(float(np.linalg.norm(ctx)), 1e-12)
    out = unit[0] + weight * ctx
    return (out / max(float(np.linalg.norm(out)), 1e-12)).astype(np.float32)


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based rank of every entry (descending)."""
    order = np.argsort(-x, kind="stable")
    r = np.empty(len(x), dtype=np.float32)
    r[order] = np.arange(1, len(x) + 1, dtype=np.float32)
    return r


def model_path_for(settings: Any) -> Path:
    """The ranker's model file the settings choose: the composed set (:data:`COMPOSED_MODEL_DIR`)
    when ``rerank_context_vectors`` is ``composed`` and that set is there, else the shipped (text)
    set — which, read with composed vectors, is not calibrated (``Reranker.load`` warns)."""
    composed = COMPOSED_MODEL_DIR / MODEL_PATH.name
    if getattr(settings, "rerank_context_vectors", "model") == "composed" and composed.exists():
        return composed
    return MODEL_PATH


def memory_questions_of(path: Path) -> Path:
    """The question memory a model set learned with: the file its ``abstain_threshold.json`` names
    (relative to the set's folder: a second set shares the first one's when they are the same
    questions), else the one beside its models."""
    saved = path.with_name("abstain_threshold.json")
    if saved.exists():
        try:
            named = json.loads(saved.read_text()).get("memory_questions")
        except (ValueError, OSError):
            named = None
        if named:
            return (path.parent / str(named)).resolve()
    return path.with_name(MEMORY_FILE)


class Reranker:
    """Candidates, features and the learned order for conversations over one knowledge base."""

    def __init__(
        self,
        kb: KnowledgeBase,
        model: Any | None = None,
        abstainer: Any | None = None,
        threshold: float = 1.0,
        view: ArticleView | None = None,
        threshold_in_call: float | None = None,
        call_abstainer: Any | None = None,
        threshold_call_model: float = 1.0,
        turn_features: bool | None = None,
        memory: QuestionMemory | None = None,
        context_vectors: str = "text",
        probe: OosProbe | None = None,
        turn_probe: OosProbe | None = None,
    ) -> None:
        if context_vectors not in CONTEXT_VECTORS:
            raise ValueError(f"context_vectors must be one of {CONTEXT_VECTORS}, not {context_vectors!r}")
        self.kb = kb
        # how the dense side of the T+C and T+H variants is made (:data:`CONTEXT_VECTORS`); the
        # model's features were learned with one of them (``abstain_threshold.json``)
        self.context_vectors = context_vectors
        self.view = view or ArticleView(kb)
        # questions already answered (or known out of scope), read as evidence per candidate
        self.memory = memory
        # the out-of-scope probe on the caller's words' vector (``oos_probe``, an abstention feature)
        self.probe = probe
        # the turn probe on a call turn's caller's-words vector (``turn_probe``, an in-call feature)
        self.turn_probe = turn_probe
        # whether the memory votes for laws too (``mem_law_vote``; False: it reads 0, the law ablation)
        self.law_vote = True
        self._doc_index: dict[str, int] | None = None
        self.model = model
        self.abstainer = abstainer  # P(out of scope) from abstain_features
        self.threshold = threshold  # abstain at or above (tuned by cross-validation)
        # the same promise for a question asked inside a call (calibrated on labelled caller turns)
        self.threshold_in_call = threshold if threshold_in_call is None else threshold_in_call
        # a model of its own for questions inside a call, reading the caller's words beside the
        # candidates (``CALL_ABSTAIN_FEATURES``), with its threshold; None: the single-question model
        self.call_abstainer = call_abstainer
        self.threshold_call_model = threshold_call_model
        # the caller's words' own features (nouns, BM25 of the trigger: a few ms a question) are
        # computed only for the in-call model, or for training it
        self.turn_features = call_abstainer is not None if turn_features is None else turn_features

    @property
    def doc_index(self) -> dict[str, int]:
        """Article doc id → article index (the view's numbering), for reading the memory's labels."""
        if self._doc_index is None:
            self._doc_index = {d: i for i, d in enumerate(self.view.doc_id)}
        return self._doc_index

    def threshold_for(self, scores: dict[str, float]) -> float:
        """The out-of-scope threshold of a hit's question: inside a call (the conversation before
        it is known: ``scores["in_call"]``) — the in-call model's when there is one — or a single
        question."""
        if not scores.get("in_call"):
            return self.threshold
        return self.threshold_call_model if self.call_abstainer is not None else self.threshold_in_call

    @classmethod
    def load(cls, kb: KnowledgeBase, path: Path | None = None) -> Reranker:
        """The reranker with the shipped model (first-stage order when the model file is missing);
        ``path`` None: the model set the settings choose (:func:`model_path_for`)."""
        import lightgbm as lgb

        if path is None:
            path = model_path_for(kb.settings)

        model: Gated | None = None
        abstainer = None
        threshold = 1.0
        threshold_in_call = None
        call_abstainer = None
        threshold_call_model = 1.0
        context_vectors = "text"  # models trained before the setting existed
        if path.exists():
            full = lgb.Booster(model_file=str(path))
            tpath = path.with_name(MODEL_T_PATH.name)
            t_only = lgb.Booster(model_file=str(tpath)) if tpath.exists() else None
            if tuple(full.feature_name()) != FEATURES:
                log.warning("rerank model %s has other features than this code; not used", path)
            else:
                model = Gated(full, t_only)
        else:
            log.warning("no rerank model at %s: first-stage order", path)
        apath = path.with_name("abstain_model.txt")
        tpath = path.with_name("abstain_threshold.json")
        if tpath.exists():  # what vectors the set learned from, abstainer or not
            context_vectors = str(json.loads(tpath.read_text()).get("context_vectors") or "text")
        log.info(
            "rerank model set",
            extra={"event": "rerank_models", "folder": path.parent.name, "vectors": context_vectors},
        )
        probe = OosProbe.load(path.with_name(PROBE_FILE))
        turn_probe = OosProbe.load(path.with_name(TURN_PROBE_FILE))
        if model is not None and apath.exists() and tpath.exists():
            abstainer = lgb.Booster(model_file=str(apath))
            saved = json.loads(tpath.read_text())
            if tuple(abstainer.feature_name()) != ABSTAIN_FEATURES or (
                saved.get("oos_probe") and probe is None
            ):
                # another code's features, or a model that learned from a probe that is not there:
                # its probabilities would not mean what its threshold promises
                log.warning(
                    "abstention model %s does not match this code or lacks its probe; not used", apath
                )
                abstainer = None
            threshold = float(saved["threshold"])
            if saved.get("threshold_in_call") is not None:
                threshold_in_call = float(saved["threshold_in_call"])
            cpath = path.with_name(CALL_MODEL_FILE)
            if saved.get("threshold_call_model") is not None and cpath.exists():
                booster = lgb.Booster(model_file=str(cpath))
                if saved.get("turn_probe") and turn_probe is None:
                    log.warning(
                        "in-call abstention model %s learned from a turn probe that is missing; not used",
                        cpath,
                    )
                elif tuple(booster.feature_name()) == CALL_ABSTAIN_FEATURES:
                    call_abstainer = booster
                    threshold_call_model = float(saved["threshold_call_model"])
                else:
                    log.warning(
                        "in-call abstention model %s has other features than this code; not used", cpath
                    )
        memory = None
        if model is not None:
            listed = getattr(kb.settings, "memory_questions_path", None)
            memory = shipped_memory(kb, Path(listed) if listed else memory_questions_of(path))
            site_path = getattr(kb.settings, "memory_site_path", None)
            site = QuestionMemory.load(Path(site_path), missing_ok=True) if site_path else None
            if site is not None:
                log.info("question memory: %d shipped + %d of this site", len(memory or ()), len(site))
                memory = memory.concat(site) if memory is not None else site
        wanted = getattr(kb.settings, "rerank_context_vectors", "model")
        if wanted != "model" and wanted != context_vectors:
            log.warning(
                "rerank_context_vectors=%s, but the model at %s learned from %s vectors: its scores are "
                "not calibrated for these",
                wanted,
                path,
                context_vectors,
            )
            context_vectors = wanted
        return cls(
            kb,
            model,
            abstainer,
            threshold,
            threshold_in_call=threshold_in_call,
            call_abstainer=call_abstainer,
            threshold_call_model=threshold_call_model,
            memory=memory,
            context_vectors=context_vectors,
            probe=probe,
            turn_probe=turn_probe if call_abstainer is not None else None,
        )

    # ------------------------------------------------------------------ features
    def candidates(self, convs: Sequence[Conversation]) -> list[Candidates]:
        """Score every conversation's three variants (one encoder pass for all) and collect features."""
        kb = self.kb
        s = kb.settings
        composed = self.context_vectors != "text"
        texts: list[str] = []  # what the encoder embeds (each text once)
        slot: dict[str, int] = {}

        def embed(q: str) -> int:
            q = q or "-"
            if q not in slot:
                slot[q] = len(texts)
                texts.append(q)
            return slot[q]

        # per conversation and variant: the text BM25 searches, and the encoded texts whose unit
        # vectors sum to the variant's dense query (one text: that text's vector)
        plans: list[dict[str, tuple[str, tuple[int, ...]]]] = []
        for cv in convs:
            var = cv.variants()
            t = embed(var["t"])
            if composed:
                c: tuple[int, ...]
                if self.context_vectors == "composed-h":
                    c = (embed(var["c"]),)
                else:
                    c = (t, embed(cv.counselor)) if cv.counselor.strip() else (t,)
                hist = cv.history_window()
                h = (t, *(embed(x) for x in hist)) if hist else (t,)
                plans.append({"t": (var["t"], (t,)), "c": (var["c"], c), "h": (var["h"], h)})
            else:
                plans.append({v: (var[v], (embed(var[v]),)) for v in VARIANTS})
        qvecs = kb.searcher.encode_queries(texts) if kb.dense is not None and texts else None
        dense_all: np.ndarray | None = None
        row_of: dict[tuple[int, ...], int] = {}
        if qvecs is not None and kb.dense is not None:
            rows: list[np.ndarray] = []
            for plan in plans:
                for _text, parts in plan.values():
                    if parts not in row_of:
                        row_of[parts] = len(rows)
                        rows.append(compose(qvecs, parts))
            dense_all = kb.dense.scores(np.vstack(rows))
        bm25_cache: dict[str, np.ndarray] = {}
        out = []
        for cv, plan in zip(convs, plans, strict=True):
            mask = kb.searcher.mask(cv.filters)
            art_mask = self.view.max(mask.astype(np.float32), mask) > 0
            per: dict[str, dict[str, np.ndarray]] = {}
            passage_scores: dict[str, np.ndarray] = {}
            for v in VARIANTS:
                text, parts = plan[v]
                text = text or "-"
                if text not in bm25_cache:
                    toks = kb.analyzer.query_tokens(text, s.query_expansion)
                    bm25_cache[text] = kb.bm25.scores(toks)
                bm = bm25_cache[text]
                dn = (
                    dense_all[row_of[parts]][kb.unit_of]
                    if dense_all is not None
                    else np.zeros(len(kb.passages), dtype=np.float32)
                )
                if v == "t":
                    passage_scores = {"bm25": bm, "dense": dn}
                per[v] = {"dense": self.view.max(dn, mask), "bm25": self.view.max(bm, mask)}
            qv = qvecs[plan["t"][1][0]] if qvecs is not None else None
            out.append(self._features(cv, per, art_mask, passage_scores, mask, qv))
        return out

    def _features(
        self,
        cv: Conversation,
        per: dict[str, dict[str, np.ndarray]],
        art_mask: np.ndarray,
        passage_scores: dict[str, np.ndarray],
        mask: np.ndarray,
        qvec: np.ndarray | None = None,
    ) -> Candidates:
        s = self.kb.settings
        weights = {"dense": s.weight_dense, "bm25": s.weight_bm25}
        cand: list[int] = []
        for v in VARIANTS:
            for side in ("dense", "bm25"):
                x = per[v][side]
                if side == "bm25" and not np.any(x[art_mask] > 0):
                    continue
                cand.extend(int(i) for i in top_indices(x, POOL, art_mask))
        arts = np.array(sorted(set(cand)), dtype=np.int64)
        n = len(arts)
        cols: dict[str, np.ndarray] = {}
        for v in VARIANTS:
            d = per[v]["dense"][arts].astype(np.float32)
            b = per[v]["bm25"][arts].astype(np.float32)
            b = np.where(np.isfinite(b), b, 0.0)
            d = np.where(np.isfinite(d), d, 0.0)
            f = weights["dense"] * minmax(d) + weights["bm25"] * minmax(b)
            cols[f"dense_{v}"], cols[f"bm25_{v}"], cols[f"fused_{v}"] = d, b, f
            for side, x in (("dense", d), ("bm25", b), ("fused", f)):
                cols[f"{side}_{v}_rank"] = np.minimum(_ranks(x), 50.0) if n else x
            cols[f"dense_{v}_gap"] = (d.max() - d) if n else d
            cols[f"fused_{v}_gap"] = (f.max() - f) if n else f
        bt = cols["bm25_t"]
        cols["bm25_t_rel"] = bt / bt.max() if n and bt.max() > 0 else np.zeros(n, dtype=np.float32)
        cols["agree_t"] = np.abs(cols["dense_t_rank"] - cols["bm25_t_rank"])
        cols["has_context"] = np.full(n, float(cv.has_context))
        cols["law_kind"] = self.view.kind[arts]
        cols["is_table"] = self.view.table[arts]
        cols["generic_title"] = self.view.generic[arts]
        terms_t = set(self.kb.analyzer.nouns(cv.text))
        terms_ctx = set(self.kb.analyzer.nouns(f"{cv.counselor} {cv.history[-HISTORY_CHARS:]}"))
        terms_h = terms_t | terms_ctx

        def title_share(terms: set[str]) -> np.ndarray:
            """Per candidate, the share of its title's nouns that ``terms`` holds."""
            titles = self.view.title_terms
            return np.array([len(titles[a] & terms) / max(1, len(titles[a])) for a in arts], dtype=np.float32)

        cols["title_t"] = title_share(terms_t)
        cols["title_h"] = title_share(terms_h)
        juris = [self.view.jurisdiction[a] for a in arts]
        dist = cv.district
        cols["district_match"] = np.array(
            [float(bool(dist) and j.endswith(str(dist))) for j in juris], dtype=np.float32
        )
        cols["district_other"] = np.array(
            [float(j.startswith("서울특별시 ") and not (dist and j.endswith(dist))) for j in juris],
            dtype=np.float32,
        )
        trigger = cv.trigger or cv.text
        terms_trig = set(self.kb.analyzer.nouns(trigger)) if trigger != cv.text else terms_t
        cols["title_trig"] = title_share(terms_trig)
        turn_bm25 = None
        if trigger != cv.text and n:
            tb = self.kb.bm25.scores(self.kb.analyzer.query_tokens(trigger, s.query_expansion))
            tbm = self.view.max(tb, mask)[arts]
            turn_bm25 = np.where(np.isfinite(tbm), tbm, 0.0).astype(np.float32)
        tr = turn_bm25 if turn_bm25 is not None else bt
        cols["bm25_trig_rel"] = tr / tr.max() if n and tr.max() > 0 else np.zeros(n, dtype=np.float32)
        cols["length"] = self.view.length[arts]
        cols["law_gap_h"], cols["law_rank_h"], cols["law_n"] = law_features(
            self.view.law[arts], cols["fused_h"]
        )
        if self.memory is not None:
            mem, mem_ab = self.memory.features(
                qvec, arts, self.doc_index, law_of=self.view.law if self.law_vote else None
            )
        else:
            mem, mem_ab = empty_features(n)
        for k, name in enumerate(MEMORY_FEATURES):
            cols[name] = mem[:, k]
        X = (
            np.column_stack([cols[f] for f in FEATURES]).astype(np.float32)
            if n
            else np.zeros((0, len(FEATURES)))
        )
        shown = np.array([self._best_passage(int(a), passage_scores, mask) for a in arts], dtype=np.int64)
        qv = None if qvec is None else np.asarray(qvec, dtype=np.float32)
        pp = self.probe.p(qv) if self.probe is not None else 0.0
        pt = self.turn_probe.p(qv) if self.turn_probe is not None and cv.has_context else 0.0
        if not self.turn_features:
            return Candidates(arts, shown, X, passage_scores, qvec=qv, mem_ab=mem_ab, p_probe=pp, p_turn=pt)
        from assist.dialogue import is_question

        turn = turn_features(
            {t for t in terms_trig if len(t) >= 2},
            {t for t in terms_ctx if len(t) >= 2},
            is_question(trigger),
        )
        return Candidates(
            arts, shown, X, passage_scores, turn, turn_bm25, qvec=qv, mem_ab=mem_ab, p_probe=pp, p_turn=pt
        )

    def _best_passage(self, art: int, scores: dict[str, np.ndarray], mask: np.ndarray) -> int:
        s = self.kb.settings
        plist = [p for p in self.kb.searcher.ranker.art_passages[art] if mask[p]] or list(
            self.kb.searcher.ranker.art_passages[art]
        )
        if len(plist) == 1:
            return plist[0]
        d = scores["dense"][plist]
        b = scores["bm25"][plist]
        v = s.weight_dense * minmax(d) + s.weight_bm25 * minmax(b)
        return plist[int(np.argmax(v))]

    # ------------------------------------------------------------------ ranking
    def scores(self, c: Candidates) -> np.ndarray:
        """The model's score of each candidate (the first stage's fused T score without a model)."""
        if not len(c.articles):
            return np.zeros(0, dtype=np.float32)
        if self.model is None:
            return c.X[:, FEATURES.index("fused_t")]
        return np.asarray(self.model.predict(c.X, num_threads=1), dtype=np.float32)

    def out_of_scope(self, c: Candidates, scores: np.ndarray, in_call: bool = False) -> float:
        """P(the question is out of scope), 0.0 without an abstention model; a question inside a
        call is judged by the in-call model when there is one."""
        if self.abstainer is None or not len(scores):
            return 0.0 if len(scores) else 1.0
        p = float(self.abstainer.predict(abstain_features(c, scores)[None, :], num_threads=1)[0])
        if in_call and self.call_abstainer is not None:
            x = call_abstain_features(c, scores, p)[None, :]
            return float(self.call_abstainer.predict(x, num_threads=1)[0])
        return p

    def rank(self, convs: Sequence[Conversation], top_k: int) -> list[list[SearchHit]]:
        """The ``top_k`` hits of each conversation in the learned order; every hit's ``scores`` carry
        ``rerank``, ``out_of_scope`` (the abstention model's probability for the question) and
        ``in_call`` (1.0 when the question has a conversation before it)."""
        out = []
        for cv, c in zip(convs, self.candidates(convs), strict=True):
            sc = self.scores(c)
            in_call = float(cv.has_context)
            oos = self.out_of_scope(c, sc, cv.has_context)
            order = np.argsort(-sc, kind="stable")[:top_k]
            qtokens = self.kb.analyzer.query_tokens(cv.text, False)
            hits: list[SearchHit] = []
            for j in order:
                i = int(c.passages[j])
                p = self.kb.passages[i]
                feats = dict(zip(FEATURES, c.X[j].tolist(), strict=True))
                hits.append(
                    SearchHit(
                        **{f: getattr(p, f) for f in SOURCE_FIELDS},
                        text=p.text,
                        snippet=self.kb.searcher.ranker.snippet(p.text, qtokens),
                        score=float(sc[j]),
                        ranks={
                            "dense": int(feats["dense_t_rank"]),
                            "bm25": int(feats["bm25_t_rank"]),
                            "rerank": len(hits) + 1,
                        },
                        scores={
                            "dense": float(c.passage_scores["dense"][i]),
                            "bm25": float(c.passage_scores["bm25"][i]),
                            "rerank": float(sc[j]),
                            "out_of_scope": oos,
                            "in_call": in_call,
                        },
                    )
                )
            out.append(hits)
        return out
