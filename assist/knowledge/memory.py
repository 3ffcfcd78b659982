"""A memory of questions already answered: the labelled questions' vectors and the articles that
answered them (or none: out of scope), read by the second stage as evidence of its own.

Citizens ask the same things in different words. The first stage compares a question with the
regulations' wording, which a caller rarely uses; the memory compares it with questions whose right
article is known. For each candidate article the ranker reads how close the nearest remembered
question answered by that article is (``mem_sim``), how far that is below the nearest remembered
in-scope question at all (``mem_rel``), and how the ``KERNEL`` nearest in-scope questions vote: how
many of them this article answered (``mem_count``) and their softmax-weighted share (``mem_vote``),
so that one near paraphrase by another writer does not count as much as several agreeing
neighbours; the abstention model reads whether the nearest remembered questions were out of scope
(``MEMORY_ABSTAIN_FEATURES``).

The vectors are the query encoder's vectors of the caller's words (the ``T`` variant, which every
suggestion embeds anyway), so reading the memory costs one matrix-vector product (~1,400 × 768).
The shipped memory is the list of every labelled question the models learned from
(``rerank_memory.jsonl``: the masked words the encoder embeds and the articles that answered each; no
vectors), written by ``dasan eval rerank --train`` beside the models. The labelled sets are written
examples, not calls, so the file holds no personal data. Its vectors are derived data: each index
embeds the questions with its own query encoder once (``dasan kb build``, or the first load) and keeps
them in its folder (``question_memory-<digest>.npz``, keyed by the list's digest and the encoder's
fingerprint), so the memory always lives in the space the machine's queries are embedded in (a bf16
index beside a fp32 one) and git holds text that diffs, not 6 MB of vectors per retraining. A site adds the questions its counselors confirmed (``dasan kb memory add`` of a
``dasan feedback export``: 👍 or copied cards and their articles) to a memory of its own
(``DASAN_KB_MEMORY_SITE_PATH``), read beside the shipped one; the models need no retraining, as
their features are similarities, not identities. During cross-validation the memory of a fold
holds only the other folds' examples, and a training example reads only other writers' questions
(``rerank_train.learning_rows``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write

log = logging.getLogger(__name__)

MEMORY_FILE = "rerank_memory.jsonl"  # beside the ranker's model files: the remembered questions
MEMORY_PATH = Path(__file__).with_name(MEMORY_FILE)
VECTORS_PREFIX = "question_memory-"  # in an index's folder: <prefix><digest>.npz, that index's vectors
FORMAT = 1
EMBED_BATCH = 256  # questions embedded at a time while building (progress is logged per batch)
MEMORY_FEATURES = ("mem_sim", "mem_rel", "mem_vote", "mem_count", "mem_law_vote")
MEMORY_ABSTAIN_FEATURES = ("mem_oos_gap", "mem_best", "mem_oos_vote")
NEIGHBOURS = 50  # the nearest in-scope questions whose articles are read
VOTE = 5  # the nearest questions whose out-of-scope share is a feature
NO_MEMORY_REL = -1.0  # mem_rel of an article no remembered question was answered by
KERNEL = 10  # the nearest in-scope questions that vote for their articles (mem_vote, mem_count)
TAU = 0.05  # the vote's softmax temperature, in cosine: a neighbour 0.05 farther weighs 1/e as much


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
    keys: tuple[str, ...] = ()  # sha256 of each question's masked text (a site memory: no re-adding)

    def __post_init__(self) -> None:
        # the labels as article indices of the last numbering asked for (held, so compared by identity)
        self._bound: tuple[dict[str, int], list[tuple[int, ...]]] | None = None

    def __len__(self) -> int:
        return len(self.articles)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        articles: list[list[str]],
        groups: list[str],
        keys: tuple[str, ...] = (),
    ) -> QuestionMemory:
        arts = [tuple(a) for a in articles]
        return cls(
            _unit(np.asarray(vectors)),
            arts,
            np.array(groups, dtype=object),
            np.array([not a for a in arts], dtype=bool),
            keys,
        )

    def concat(self, other: QuestionMemory | None) -> QuestionMemory:
        """This memory and ``other`` read as one (the shipped memory and the site's)."""
        if other is None or not len(other):
            return self
        if not len(self):
            return other
        if other.dim != self.dim:
            log.warning("question memory of dimension %d ignored beside %d", other.dim, self.dim)
            return self
        return QuestionMemory(
            np.vstack([self.vectors, other.vectors]),
            [*self.articles, *other.articles],
            np.concatenate([self.groups, other.groups]),
            np.concatenate([self.oos, other.oos]),
            (*self.keys, *other.keys) if self.keys and other.keys else (),
        )

    # ------------------------------------------------------------------ file
    def save(self, path: Path, encoder: str = "", built_for: str = "") -> None:
        """Vectors (float16) and article ids; no text, no groups. Plain arrays only (the ids and the
        metadata as JSON strings), so that reading the file never unpickles anything. Written under
        a temporary name and renamed, so a reader never sees half a file. ``built_for``: the key of
        the questions and encoder the vectors were made from (:func:`vectors_key`)."""
        meta = {"encoder": encoder, "n": len(self), "keys": list(self.keys), "built_for": built_for}

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:  # np.savez on a name would add ".npz" to the temporary one
                np.savez_compressed(
                    fh,
                    vectors=self.vectors.astype(np.float16),
                    articles=np.array(json.dumps([list(a) for a in self.articles], ensure_ascii=False)),
                    meta=np.array(json.dumps(meta)),
                )

        atomic_write(path, write)

    @staticmethod
    def built_for(path: Path) -> str | None:
        """The key a saved memory's vectors were made for (None: no file, or unreadable)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                return str(json.loads(str(z["meta"])).get("built_for") or "")
        except (OSError, ValueError, KeyError):
            return None

    @classmethod
    def load(cls, path: Path, missing_ok: bool = False) -> QuestionMemory | None:
        """The memory saved at ``path``; None (and a warning) when there is none, or when the file
        holds pickled objects (an older format: it is not read; rebuild it with ``dasan kb memory``)."""
        if not path.exists():
            if not missing_ok:
                log.warning("no question memory at %s: the ranker reads none", path)
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                vectors = z["vectors"].astype(np.float32)
                articles = json.loads(str(z["articles"]))
                meta = json.loads(str(z["meta"]))
        except ValueError as exc:
            log.error("question memory %s not read (%s): rebuild it with `dasan kb memory add`", path, exc)
            return None
        return cls.build(vectors, articles, [""] * len(articles), tuple(meta.get("keys") or ()))

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
        exclude_articles: frozenset[str] = frozenset(),
        law_of: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``MEMORY_FEATURES`` per candidate article (``arts``: article indices of ``doc_index``'s
        numbering) and ``MEMORY_ABSTAIN_FEATURES`` of a question with (unit) vector ``q``; the
        remembered questions of ``exclude_group``, and those answered by any of ``exclude_articles``,
        are not read (training: a question on an article nobody has asked about yet). ``law_of``:
        the law of every article of that numbering (``mem_law_vote``; None: 0)."""
        n = len(arts)
        if q is None or not len(self) or q.shape[-1] != self.dim:
            return empty_features(n)
        s = self.vectors @ _unit(q).astype(np.float32)
        ok = np.ones(len(self), dtype=bool)
        if exclude_group is not None:
            ok &= self.groups != exclude_group
        if exclude_articles:
            ok &= np.array([not exclude_articles.intersection(a) for a in self.articles], dtype=bool)
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
        # the votes of the KERNEL nearest: how many name the article, and their softmax-weighted share
        # (a lone near paraphrase against several agreeing neighbours a little farther away)
        top = near[:KERNEL]
        w = np.exp((s[top] - best_in) / TAU)
        w = w / w.sum() if len(top) else w
        share: dict[int, float] = {}
        count: dict[int, int] = {}
        for m, wm in zip(top, w, strict=True):
            for a in set(labels[m]):
                share[a] = share.get(a, 0.0) + float(wm)
                count[a] = count.get(a, 0) + 1
        vote = np.array([share.get(int(a), 0.0) for a in arts], dtype=np.float32)
        cnt = np.array([count.get(int(a), 0) for a in arts], dtype=np.float32)
        # the same vote for the article's law: neighbours split over several articles of one law
        # still give that law their whole vote (a near miss is most often another article of the
        # right law)
        law_vote = np.zeros(n, dtype=np.float32)
        if law_of is not None and n:
            law_share: dict[int, float] = {}
            for m, wm in zip(top, w, strict=True):
                for law in {int(law_of[a]) for a in labels[m]}:
                    law_share[law] = law_share.get(law, 0.0) + float(wm)
            law_vote = np.array([law_share.get(int(law_of[a]), 0.0) for a in arts], dtype=np.float32)
        allowed = np.flatnonzero(ok)
        vote_idx = allowed[np.argsort(-s[allowed], kind="stable")[:VOTE]]
        oos_vote = float(self.oos[vote_idx].mean()) if len(vote_idx) else 0.0
        ab = np.array([best_out - best_in, best_in, oos_vote], dtype=np.float32)
        return np.column_stack([sim, rel, vote, cnt, law_vote]).astype(np.float32), ab


# ---------------------------------------------------------------------- the shipped questions
def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def shared_ref(source: str, item_id: str, text: str) -> dict[str, str]:
    """A remembered question kept by reference: an item of the shared labelled data
    (``../shared/eval-dev``), which is read where it lies and never copied into the repository. The
    digest of the words the encoder embeds tells a changed item from the one the models learned."""
    return {"ref": f"{source}#{item_id}", "sha": text_sha(text)}


def write_questions(path: Path, rows: list[dict[str, Any]], articles: list[list[str]]) -> None:
    """The remembered questions, one JSON line each — ``text`` (the masked words the encoder embeds)
    or a ``ref`` to a shared item (:func:`shared_ref`), and ``articles`` (the doc ids that answered
    it; none: out of scope) —, sorted so that a retraining's diff shows only what it added. A
    wording asked twice with the same answer stays twice: it votes twice, as in training."""
    lines = sorted(
        json.dumps({**row, "articles": list(a)}, ensure_ascii=False)
        for row, a in zip(rows, articles, strict=True)
    )
    path.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")


def _shared_item_text(shared: Path, ref: str, cache: dict[str, dict[str, str]]) -> str | None:
    """The masked words of a shared item (``eval-dev/utterances.jsonl#ID``), as training embedded
    them; None when the file or the item is not there."""
    from streaming.privacy import mask_text

    source, _, item_id = ref.partition("#")
    if source not in cache:
        f = (shared / source).resolve()
        if shared.resolve() not in f.parents or not f.is_file():  # only files under the shared folder
            cache[source] = {}
        else:
            lines = f.read_text(encoding="utf-8").splitlines()
            items = [json.loads(ln) for ln in lines if ln.strip()]
            cache[source] = {str(it.get("id")): str(it.get("utterance") or "") for it in items}
    utterance = cache[source].get(item_id)
    return None if utterance is None else mask_text(utterance).strip()


def read_questions(path: Path, shared: Path | None = None) -> tuple[list[str], list[list[str]]]:
    """The texts and articles of a questions file (:func:`write_questions`), shared items read from
    ``shared`` (default: ``$DASAN_SHARED_DIR``). A malformed line raises ``ValueError`` naming it; a
    shared item that is missing or changed since training is left out with a warning (the memory is
    the smaller for it; the models still read the rest)."""
    return parse_questions(path.read_text(encoding="utf-8"), path, shared)


def parse_questions(
    content: str, path: Path, shared: Path | None = None
) -> tuple[list[str], list[list[str]]]:
    """:func:`read_questions` of a file's ``content`` already read (``path`` names it in errors)."""
    from streaming.paths import shared_dir

    root = shared if shared is not None else shared_dir()
    cache: dict[str, dict[str, str]] = {}
    texts: list[str] = []
    articles: list[list[str]] = []
    missing = 0
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            arts = [str(a) for a in row["articles"]]
            if "ref" in row:
                text = _shared_item_text(root, str(row["ref"]), cache)
                if text is None or text_sha(text) != row["sha"]:
                    missing += 1
                    continue
            else:
                text = str(row["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a remembered question ({exc})") from exc
        texts.append(text)
        articles.append(arts)
    if missing:
        log.warning(
            "question memory: %d shared questions missing or changed under %s; left out", missing, root
        )
    return texts, articles


def questions_digest(path: Path) -> str:
    return _digest(path.read_bytes())


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def vectors_key(kb: Any, digest: str) -> str:
    """What a memory's vectors depend on: the questions (their file's digest), the query encoder
    (weights, backend, token cap, query prompt) and, with the dense query expansion on, the
    analyzer that expands them."""
    enc = kb.encoder
    parts = [f"v{FORMAT}", digest, str(enc.query_fingerprint)]
    if getattr(kb.settings, "dense_query_expansion", False):
        parts.append(f"x{kb.analyzer.fingerprint()}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _vectors_path(kb: Any, digest: str) -> Path | None:
    """Where an index keeps the vectors of the questions with this digest (None: an unsaved index)."""
    index_path = getattr(kb, "path", None)
    return Path(index_path) / f"{VECTORS_PREFIX}{digest}.npz" if index_path else None


_BUILT: dict[str, QuestionMemory] = {}  # this process's memories by key (an unsaved index embeds once)


def shipped_memory(
    kb: Any, questions: Path = MEMORY_PATH, *, progress: bool = False
) -> QuestionMemory | None:
    """The shipped memory in this index's vector space: its stored vectors when they were made from
    these questions with this encoder, else the questions embedded now (a minute with bf16, 15–20 on
    an AVX2-only CPU; logged per batch, and a progress bar with ``progress``, as `dasan kb build`
    shows) and stored in the index's folder for the next start. None without a dense side (the
    memory is read through the query's vector) or without a questions file."""
    if getattr(kb, "encoder", None) is None or getattr(kb, "dense", None) is None:
        return None
    if not questions.exists():
        log.warning("no question memory at %s: the ranker reads none", questions)
        return None
    raw = questions.read_bytes()  # read once: the digest names exactly the questions embedded
    digest = _digest(raw)
    key = vectors_key(kb, digest)
    stored = _vectors_path(kb, digest)
    have_stored = stored is not None and QuestionMemory.built_for(stored) == key
    mem = _BUILT.get(key)
    if mem is None and have_stored:
        assert stored is not None
        mem = QuestionMemory.load(stored)
    if mem is None:
        try:
            texts, articles = parse_questions(raw.decode("utf-8"), questions)
        except ValueError as exc:  # a broken file (bad JSON or bytes): no memory, loudly
            log.error("question memory not read: %s", exc)
            return None
        mem = embed_questions(kb, texts, articles, progress=progress)
    if stored is not None and not have_stored:
        try:  # for the next start of any service on this index
            mem.save(stored, encoder=str(kb.encoder.fingerprint), built_for=key)
        except OSError as exc:  # a read-only index: serve from this process's copy
            log.warning("question memory not stored in %s (%s)", stored.parent, exc)
    _BUILT[key] = mem
    return mem


def embed_questions(
    kb: Any, texts: list[str], articles: list[list[str]], *, progress: bool = False
) -> QuestionMemory:
    """The memory of these questions, embedded with ``kb``'s query encoder as a served question is
    (``progress``: a bar on stderr, for a command a person watches)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    rows: list[np.ndarray] = []
    with tqdm(total=len(texts), desc="question memory", unit="q", disable=not progress) as bar:
        for i in range(0, len(texts), EMBED_BATCH):
            chunk = texts[i : i + EMBED_BATCH]
            rows.append(kb.searcher.encode_queries([t or "-" for t in chunk]))
            bar.update(len(chunk))
            log.info(
                "embedding the question memory",
                extra={"done": i + len(chunk), "questions": len(texts)},
            )
    dim = int(kb.encoder.dim)
    vectors = np.vstack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    log.info(
        "question memory embedded",
        extra={"questions": len(texts), "seconds": round(time.perf_counter() - t0, 1)},
    )
    return QuestionMemory.build(vectors, articles, [""] * len(texts))


def store_vectors(kb: Any, questions: Path, memory: QuestionMemory) -> None:
    """Store vectors already made with ``kb``'s encoder for the questions file just written (training
    has them), so the first load need not embed them again; older questions' vectors are removed."""
    digest = questions_digest(questions)
    stored = _vectors_path(kb, digest)
    if getattr(kb, "encoder", None) is None or stored is None:
        return
    key = vectors_key(kb, digest)
    memory.save(stored, encoder=str(kb.encoder.fingerprint), built_for=key)
    for old in stored.parent.glob(f"{VECTORS_PREFIX}*.npz"):
        if old != stored:
            old.unlink(missing_ok=True)
    _BUILT[key] = memory


def question_key(masked_text: str) -> str:
    return hashlib.sha256(masked_text.strip().encode("utf-8")).hexdigest()


def site_items(items: list[dict[str, Any]]) -> tuple[list[str], list[list[str]], int]:
    """The questions a site memory learns from an ``utterances.jsonl`` file (``dasan feedback
    export`` or hand-labelled): masked texts and their articles — in scope with
    ``relevant_article_ids``, out of scope with none and topic ``범위외``. An item with only
    ``known_wrong_article_ids`` (a 👎 card) says which answer was wrong, not which is right: skipped,
    and counted."""
    from streaming.privacy import mask_text

    texts: list[str] = []
    labels: list[list[str]] = []
    skipped = 0
    for it in items:
        text = mask_text(str(it.get("utterance") or "")).strip()
        rel = [str(a) for a in it.get("relevant_article_ids") or []]
        if not text or (not rel and it.get("topic") != "범위외"):
            skipped += 1
            continue
        texts.append(text)
        labels.append(rel)
    return texts, labels, skipped


def add_to_site(
    site: QuestionMemory | None, vectors: np.ndarray, texts: list[str], labels: list[list[str]]
) -> tuple[QuestionMemory, int]:
    """``site`` with the new questions appended (one already there — the same masked text — is
    relabelled with the newer articles instead); and how many were new."""
    keys = [question_key(t) for t in texts]
    have = {k: i for i, k in enumerate(site.keys)} if site is not None else {}
    vecs = list(site.vectors) if site is not None else []
    arts = [list(a) for a in site.articles] if site is not None else []
    all_keys = list(site.keys) if site is not None else []
    new = 0
    for k, v, lab in zip(keys, np.asarray(vectors, dtype=np.float32), labels, strict=True):
        if k in have:
            arts[have[k]] = lab
            continue
        have[k] = len(all_keys)
        all_keys.append(k)
        vecs.append(v)
        arts.append(lab)
        new += 1
    matrix = np.vstack(vecs) if vecs else np.zeros((0, np.asarray(vectors).shape[-1]), np.float32)
    return QuestionMemory.build(matrix, arts, [""] * len(arts), tuple(all_keys)), new


def grow_site_memory(kb: Any, path: Path, items: list[dict[str, Any]]) -> dict[str, int]:
    """Embed the confirmed questions of ``items`` (utterances.jsonl lines) with ``kb``'s query
    encoder and add them to the site's memory at ``path``; items citing articles the corpus lacks
    are skipped. Returns the counts (for the audit log and the operator)."""
    texts, labels, skipped = site_items(items)
    known = {p.doc_id for p in kb.passages}
    keep = [i for i, lab in enumerate(labels) if all(a in known for a in lab)]
    unknown = len(labels) - len(keep)
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    site = QuestionMemory.load(path, missing_ok=True)
    counts = {"new": 0, "relabelled": 0, "skipped_unconfirmed": skipped, "skipped_unknown_articles": unknown}
    if not texts:
        return counts | {"total": len(site) if site is not None else 0}
    vecs = np.vstack([kb.encode_queries(texts[i : i + 64]) for i in range(0, len(texts), 64)])
    mem, new = add_to_site(site, vecs, texts, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    mem.save(path, encoder=str(kb.info().get("dense_backend", "")))
    return counts | {"new": new, "relabelled": len(texts) - new, "total": len(mem)}


def empty_features(n: int) -> tuple[np.ndarray, np.ndarray]:
    """What a question reads without a memory."""
    cols = np.zeros((n, len(MEMORY_FEATURES)), dtype=np.float32)
    cols[:, 1] = NO_MEMORY_REL
    return cols, np.zeros(len(MEMORY_ABSTAIN_FEATURES), dtype=np.float32)


def describe(memory: QuestionMemory | None) -> dict[str, Any]:
    if memory is None:
        return {"questions": 0}
    return {"questions": len(memory), "out_of_scope": int(memory.oos.sum()), "dim": memory.dim}
