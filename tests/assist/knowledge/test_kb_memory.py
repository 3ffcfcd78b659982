"""The question memory (assist/knowledge/memory.py): what the ranker and the abstention model read from
questions already answered, and that cross-validation never lets a question find itself."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from assist.knowledge.memory import (
    KERNEL,
    MEMORY_ABSTAIN_FEATURES,
    MEMORY_FEATURES,
    NO_MEMORY_REL,
    TAU,
    QuestionMemory,
)
from assist.knowledge.rerank import FEATURES, Candidates, Conversation
from assist.knowledge.rerank_train import Example, cross_validate, fold_split, memory_of, with_memory

DOCS = [f"법/제{i}조" for i in range(40)]
INDEX = {d: i for i, d in enumerate(DOCS)}
LAW_OF = np.zeros(len(DOCS), dtype=np.int64)  # one law: every article of 「법」


def _memory() -> QuestionMemory:
    v = np.eye(4, dtype=np.float32)
    return QuestionMemory.build(
        v, [["법/제3조"], ["법/제5조", "법/제6조"], [], ["법/제3조"]], ["A", "B", "C", "D"]
    )


def test_each_candidate_reads_its_nearest_answered_question() -> None:
    mem = _memory()
    q = np.array([0.9, 0.3, 0.0, 0.0], dtype=np.float32)
    cols, ab = mem.features(q, np.array([3, 5, 6, 7]), INDEX)
    qn = q / np.linalg.norm(q)
    assert np.allclose(cols[:, 0], [qn[0], qn[1], qn[1], 0.0])  # 제7조: nobody asked
    assert np.allclose(cols[:, 1], [0.0, qn[1] - qn[0], qn[1] - qn[0], NO_MEMORY_REL])
    assert ab.shape == (len(MEMORY_ABSTAIN_FEATURES),)
    assert ab[0] < 0 and np.isclose(ab[1], qn[0])  # the nearest question is in scope


def test_a_question_near_out_of_scope_ones_says_so() -> None:
    mem = _memory()
    _cols, ab = mem.features(np.array([0.0, 0.0, 1.0, 0.1]), np.array([3]), INDEX)
    gap, _best, vote = ab
    assert gap > 0.5  # nearer an out-of-scope question than any answered one
    assert vote == 0.25  # one of the (four) nearest was out of scope


def test_leaving_a_group_out_hides_its_questions() -> None:
    mem = _memory()
    q = np.array([1.0, 0.0, 0.0, 0.0])
    cols, _ = mem.features(q, np.array([3]), INDEX, exclude_group="A")
    assert cols[0, 0] == 0.0  # 제3조's other question (D) is orthogonal: 0 similarity, not A's 1.0
    cols, _ = mem.features(q, np.array([3]), INDEX)
    assert cols[0, 0] == 1.0


def test_no_vector_or_another_encoder_reads_nothing() -> None:
    mem = _memory()
    for q in (None, np.ones(8, dtype=np.float32)):
        cols, ab = mem.features(q, np.array([3, 5]), INDEX)
        assert (cols[:, 0] == 0).all() and (cols[:, 1] == NO_MEMORY_REL).all() and not ab.any()


def test_the_shipped_file_holds_vectors_and_article_ids_only(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    _memory().save(path, encoder="bf16")
    with np.load(path, allow_pickle=False) as z:  # plain arrays: reading it unpickles nothing
        assert set(z.files) == {"vectors", "articles", "meta"}
        assert z["vectors"].dtype == np.float16
    back = QuestionMemory.load(path)
    assert back is not None and len(back) == 4 and back.articles[1] == ("법/제5조", "법/제6조")
    assert back.oos.tolist() == [False, False, True, False]
    assert QuestionMemory.load(tmp_path / "missing.npz") is None


def test_a_memory_file_holding_pickled_objects_is_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.npz"
    with path.open("wb") as fh:  # the format before session 21: JSON strings in object arrays
        np.savez_compressed(
            fh,
            vectors=np.zeros((1, 4), dtype=np.float16),
            articles=np.array('[["법/제1조"]]', dtype=object),
            meta=np.array("{}", dtype=object),
        )
    assert QuestionMemory.load(path) is None
    assert "not read" in caplog.text


def test_the_shipped_questions_are_masked_text_and_corpus_articles() -> None:
    """The shipped memory is a list of labelled questions (text, articles), no vectors: every text is
    already masked (masking it again changes nothing), every article is in the corpus, and out-of-
    scope questions are there too (the abstention reads them)."""
    from assist.knowledge.memory import MEMORY_PATH, read_questions
    from streaming.privacy import mask_text

    texts, articles = read_questions(MEMORY_PATH)
    assert len(texts) > 1000 and len(texts) == len(articles)
    assert all(mask_text(t) == t for t in texts)
    dev = Path(__file__).resolve().parents[3].parent / "shared" / "eval-dev" / "utterances.jsonl"
    shared = dev.read_text(encoding="utf-8")
    lines = MEMORY_PATH.read_text(encoding="utf-8").splitlines()
    own = [json.loads(ln)["text"] for ln in lines if '"text"' in ln]
    assert not [t for t in own if len(t) > 12 and t in shared]  # the shared data is referenced, not copied
    corpus = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "regulations.jsonl"
    ids = {json.loads(ln)["id"] for ln in corpus.read_text(encoding="utf-8").splitlines() if ln.strip()}
    assert {a for arts in articles for a in arts} <= ids
    assert sum(1 for a in articles if not a) > 100
    lines = MEMORY_PATH.read_text(encoding="utf-8").splitlines()
    assert lines == sorted(lines)  # a retraining's diff shows the questions it added


class _Encoder:
    """A deterministic stand-in for the query encoder (the real one: test_kb_dense's site memory
    test), counting what it is asked to embed."""

    dim = 8

    def __init__(self, fingerprint: str = "enc-a") -> None:
        self.fingerprint = fingerprint
        self.query_fingerprint = f"{fingerprint}-q64"
        self.embedded = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=self.dim) for t in texts]
        return np.asarray(rows, dtype=np.float32)


def _kb(index: Path | None, encoder: _Encoder) -> SimpleNamespace:
    return SimpleNamespace(
        encoder=encoder,
        dense=object(),
        path=index,
        settings=SimpleNamespace(dense_query_expansion=False),
        searcher=SimpleNamespace(encode_queries=encoder.encode),
    )


def test_each_index_embeds_the_shipped_questions_once_and_keeps_them(tmp_path: Path, monkeypatch) -> None:
    from assist.knowledge import memory as m

    monkeypatch.setattr(m, "_BUILT", {})
    questions = tmp_path / "q.jsonl"
    m.write_questions(
        questions,
        [{"text": "주차 과태료 얼마예요"}, {"text": "택배가 안 와요"}, {"text": "주차 과태료 얼마예요"}],
        [["법/제3조"], [], ["법/제3조"]],
    )
    assert m.read_questions(questions)[0] == [
        "주차 과태료 얼마예요",
        "주차 과태료 얼마예요",
        "택배가 안 와요",
    ]
    index = tmp_path / "index"
    index.mkdir()
    enc = _Encoder()
    mem = m.shipped_memory(_kb(index, enc), questions)
    assert mem is not None and len(mem) == 3 and mem.oos.tolist() == [False, False, True]
    assert enc.embedded == 3
    [stored] = index.glob(f"{m.VECTORS_PREFIX}*.npz")
    # a new process (nothing held in memory) reads the stored vectors: nothing embedded again
    monkeypatch.setattr(m, "_BUILT", {})
    again = m.shipped_memory(_kb(index, enc), questions)
    assert again is not None and enc.embedded == 3
    assert np.allclose(again.vectors, mem.vectors, atol=1e-3)
    # another encoder (another backend) embeds them anew: its queries live in another space
    other = _Encoder("enc-b")
    assert m.shipped_memory(_kb(index, other), questions) is not None and other.embedded == 3
    # new questions (a retraining) have another digest: embedded, and training's store prunes the old
    m.write_questions(questions, [{"text": "쓰레기 무단투기 신고"}], [["법/제5조"]])
    fresh = m.shipped_memory(_kb(index, enc), questions)
    assert fresh is not None and len(fresh) == 1 and enc.embedded == 4
    m.store_vectors(_kb(index, enc), questions, fresh)
    assert [p.name for p in index.glob(f"{m.VECTORS_PREFIX}*.npz")] != [stored.name]
    assert len(list(index.glob(f"{m.VECTORS_PREFIX}*.npz"))) == 1


def test_the_memory_needs_a_dense_side_and_a_questions_file(tmp_path: Path, monkeypatch) -> None:
    from assist.knowledge import memory as m

    monkeypatch.setattr(m, "_BUILT", {})
    questions = tmp_path / "q.jsonl"
    m.write_questions(questions, [{"text": "주차"}], [["법/제3조"]])
    assert m.shipped_memory(SimpleNamespace(encoder=None, dense=None, path=None), questions) is None
    assert m.shipped_memory(_kb(None, _Encoder()), tmp_path / "missing.jsonl") is None
    # an index that was never saved (no folder): embedded once per process, nothing written
    enc = _Encoder()
    assert m.shipped_memory(_kb(None, enc), questions) is not None
    assert m.shipped_memory(_kb(None, enc), questions) is not None and enc.embedded == 1


def test_shared_items_are_kept_by_reference_and_read_where_they_lie(tmp_path: Path, caplog) -> None:
    """An item of the shared labelled data is never copied into the repository: the file keeps its
    id and the digest of its masked words, read back from the shared folder; a changed or missing
    item is left out with a warning, and a reference cannot leave the shared folder."""
    from assist.knowledge.memory import read_questions, shared_ref, write_questions
    from streaming.privacy import mask_text

    shared = tmp_path / "shared"
    (shared / "eval-dev").mkdir(parents=True)
    item = {"id": "U1", "utterance": "제 번호 010-1234-5678 로 연락 주세요 주차 문의요"}
    (shared / "eval-dev" / "u.jsonl").write_text(
        json.dumps(item, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (tmp_path / "secret.jsonl").write_text(json.dumps(item, ensure_ascii=False) + "\n", encoding="utf-8")
    masked = mask_text(item["utterance"]).strip()
    assert "5678" not in masked
    q = tmp_path / "q.jsonl"
    rows = [
        shared_ref("eval-dev/u.jsonl", "U1", masked),
        shared_ref("eval-dev/u.jsonl", "U2", "없는 질문"),  # not there
        shared_ref("eval-dev/u.jsonl", "U1", "다른 말"),  # changed since training
        shared_ref("../secret.jsonl", "U1", masked),  # outside the shared folder
        {"text": "택배가 안 와요"},
    ]
    write_questions(q, rows, [["법/제3조"], ["법/제4조"], ["법/제5조"], ["법/제6조"], []])
    written = q.read_text(encoding="utf-8")
    assert "010" not in written and "주차" not in written
    texts, articles = read_questions(q, shared)
    assert sorted(zip(texts, map(tuple, articles), strict=True)) == sorted(
        [(masked, ("법/제3조",)), ("택배가 안 와요", ())]
    )
    assert "3 shared questions missing or changed" in caplog.text


def test_the_shipped_shared_references_all_resolve() -> None:
    from assist.knowledge.memory import MEMORY_PATH, read_questions

    lines = MEMORY_PATH.read_text(encoding="utf-8").splitlines()
    assert sum(1 for ln in lines if '"ref"' in ln) > 50  # eval-dev's utterances, by reference
    texts, _ = read_questions(MEMORY_PATH)
    assert len(texts) == len(lines)  # every shared item found, unchanged since training


def test_a_malformed_questions_file_names_its_line(tmp_path: Path) -> None:
    from assist.knowledge.memory import read_questions

    bad = tmp_path / "q.jsonl"
    bad.write_text('{"text": "주차", "articles": []}\n{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"q.jsonl:2"):
        read_questions(bad)
    # a service loading it serves without a memory and says why (never a crash at start-up)
    from assist.knowledge import memory as m

    assert m.shipped_memory(_kb(None, _Encoder()), bad) is None
    not_text = tmp_path / "q2.jsonl"  # bytes that are not UTF-8: the same, not a crash
    not_text.write_bytes(b'{"text": "\xff\xfe", "articles": []}\n')
    assert m.shipped_memory(_kb(None, _Encoder()), not_text) is None


# three writers (rerank_train.WRITERS): a training row reads the other writers' questions only
SETS = ("dev", "utterances", "utterances_h1")


def _examples(rng: np.random.Generator, shared_topics: bool) -> list[Example]:
    """Questions whose right article only the memory can tell (every feature is noise). With
    ``shared_topics`` several groups ask about each article in similar words; without, each group
    has an article of its own, so only a leak of the group's own twin could help."""
    dim = 16
    centres = rng.normal(size=(len(DOCS), dim))
    out = []
    for g in range(160):
        art = int(rng.integers(len(DOCS))) if shared_topics else g % len(DOCS)
        if not shared_topics:
            centres[art] = rng.normal(size=dim)  # a new wording per group: nothing shared
        arts = rng.choice(len(DOCS), size=10, replace=False)
        if art not in arts:
            arts[0] = art
        X = rng.normal(size=(10, len(FEATURES))).astype(np.float32)
        for twin in ("", "N"):  # an utterance and its rewrite: one group, near-identical vectors
            q = centres[art] + 0.1 * rng.normal(size=dim)
            cand = Candidates(arts, arts, X.copy(), qvec=q.astype(np.float32))
            out.append(Example(f"E{g}{twin}", f"E{g}", SETS[g % 3], Conversation("q"), [DOCS[art]], cand, []))
    return out


def _h1(examples: list[Example], memory: bool) -> float:
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    report, _ = cross_validate(reranker, examples, folds=4, memory=memory)  # type: ignore[arg-type]
    mean = report["mean_of_held_out_folds"]
    return float(np.mean([mean[s]["reranked"]["hit_at_1"] for s in SETS]))


def test_cross_validation_learns_from_the_memory_of_other_folds() -> None:
    rng = np.random.default_rng(7)
    shared = _examples(rng, shared_topics=True)
    assert _h1(shared, memory=True) > _h1(shared, memory=False) + 0.4


def test_a_held_out_fold_reads_a_memory_without_itself() -> None:
    """Each group has an article and a wording of its own: only its own twin is near it. A held-out
    question must not find it (the fold's memory holds the other folds only)."""
    rng = np.random.default_rng(9)
    ex = _examples(rng, shared_topics=False)
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    col = FEATURES.index("mem_sim")
    for f in range(4):
        train, test, mem = fold_split(reranker, ex, f, 4)  # type: ignore[arg-type]
        assert mem is not None and len(mem) == len(train)
        assert not set(mem.groups) & {e.group for e in test}
        assert max(float(e.candidates.X[:, col].max()) for e in test) < 0.9
        assert max(float(e.candidates.X[:, col].max()) for e in train) < 0.9  # own twin left out


def test_training_examples_never_read_their_own_group() -> None:
    rng = np.random.default_rng(11)
    ex = _examples(rng, shared_topics=False)[:20]
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    mem = memory_of(ex)
    assert len(mem) == 20
    col = FEATURES.index("mem_sim")
    own = with_memory(reranker, ex, mem, leave_own_group_out=True)  # type: ignore[arg-type]
    leak = with_memory(reranker, ex, mem, leave_own_group_out=False)  # type: ignore[arg-type]
    assert max(float(e.candidates.X[:, col].max()) for e in own) < 0.9
    assert min(float(e.candidates.X[:, col].max()) for e in leak) > 0.99


def test_leaving_a_writer_out_judges_its_questions_with_and_without_a_memory_of_the_others() -> None:
    from dataclasses import replace

    from assist.knowledge.rerank_train import leave_writer_out

    rng = np.random.default_rng(13)
    ex = _examples(rng, shared_topics=True)
    # the first 40 groups written by eval-dev's author, the rest by the sessions and holdout 1's
    ex = [replace(e, set="dev" if int(e.group[1:]) < 40 else e.set.replace("dev", "utterances")) for e in ex]
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    got = leave_writer_out(reranker, ex)  # type: ignore[arg-type]
    assert set(got) == {"eval-dev", "sessions 1-5", "holdout 1"}
    dev = got["eval-dev"]["utterances"]
    assert dev["no_memory"]["n"] == dev["memory"]["n"] == 80
    assert dev["memory"]["hit_at_1"] > dev["no_memory"]["hit_at_1"] + 0.3  # topics shared across writers
    # only the writers asked for: the same figures for them, no fit for the others
    one = leave_writer_out(reranker, ex, writers=["eval-dev"])  # type: ignore[arg-type]
    assert set(one) == {"eval-dev"} and one["eval-dev"] == got["eval-dev"]


def test_a_site_learns_confirmed_questions_only_and_masked() -> None:
    from assist.knowledge.memory import site_items

    items = [
        {
            "utterance": "불법주차 신고는 어디에 하나요? 제 번호는 010-1234-5678이에요",
            "relevant_article_ids": ["법/제3조"],
        },
        {"utterance": "전기요금이 너무 많이 나왔어요", "topic": "범위외", "relevant_article_ids": []},
        # a 👎 card: which answer was wrong, not which is right
        {
            "utterance": "과태료 감경 되나요?",
            "relevant_article_ids": [],
            "known_wrong_article_ids": ["법/제5조"],
        },
        {"utterance": "  ", "relevant_article_ids": ["법/제3조"]},
    ]
    texts, labels, skipped = site_items(items)
    assert labels == [["법/제3조"], []] and skipped == 2
    assert "010-1234-5678" not in texts[0]  # masked before it is embedded or hashed


def test_a_site_question_added_twice_is_relabelled_not_duplicated(tmp_path: Path) -> None:
    from assist.knowledge.memory import add_to_site

    v = np.eye(3, dtype=np.float32)
    site, new = add_to_site(None, v[:2], ["가 질문", "나 질문"], [["법/제3조"], []])
    assert new == 2 and len(site) == 2 and site.oos.tolist() == [False, True]
    site.save(tmp_path / "site.npz")
    back = QuestionMemory.load(tmp_path / "site.npz")
    assert back is not None and back.keys == site.keys
    grown, new = add_to_site(back, v[1:], ["나 질문", "다 질문"], [["법/제6조"], ["법/제7조"]])
    assert new == 1 and len(grown) == 3
    assert grown.articles == [("법/제3조",), ("법/제6조",), ("법/제7조",)]  # 나: now answered


def test_the_shipped_and_the_site_memory_read_as_one() -> None:
    shipped = _memory()
    site = QuestionMemory.build(np.array([[0.0, 0.0, 0.0, 1.0]]), [["법/제7조"]], [""])
    both = shipped.concat(site)
    assert len(both) == 5
    cols, _ = both.features(np.array([0.0, 0.0, 0.0, 1.0]), np.array([7]), INDEX)
    assert cols[0, 0] == 1.0
    assert shipped.concat(None) is shipped
    other = QuestionMemory.build(np.ones((1, 8)), [["법/제7조"]], [""])
    assert len(shipped.concat(other)) == 4  # another encoder's vectors are not mixed in


def test_a_training_row_reads_only_the_other_writers_questions() -> None:
    from assist.knowledge.rerank_train import learning_rows

    q = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    far = np.array([0.6, 0.8, 0.0, 0.0], dtype=np.float32)
    arts = np.array([3])

    def ex(i: int, set_name: str, v: np.ndarray) -> Example:
        cand = Candidates(arts, arts, np.zeros((1, len(FEATURES)), dtype=np.float32), qvec=v)
        return Example(f"E{i}", f"E{i}", set_name, Conversation("q"), [DOCS[3]], cand, [])

    # a paraphrase by the same writer (1.0 away) and one by another writer (0.6 away)
    rows = [ex(0, "utterances", q), ex(1, "noisy", q), ex(2, "dev", far)]
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    got = learning_rows(reranker, rows)  # type: ignore[arg-type]
    assert [e.id for e in got] == ["E0", "E1", "E2"]
    col = FEATURES.index("mem_sim")
    assert np.isclose(got[0].candidates.X[0, col], 0.6)  # not E1's 1.0: same writer
    assert np.isclose(got[2].candidates.X[0, col], 0.6)


def test_a_question_can_read_the_memory_as_if_its_articles_were_new() -> None:
    mem = _memory()
    q = np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32)  # A and D both answered by 제3조
    cols, _ = mem.features(q, np.array([3, 5]), INDEX)
    assert cols[0, 0] > 0.7
    cols, ab = mem.features(q, np.array([3, 5]), INDEX, exclude_articles=frozenset({"법/제3조"}))
    assert cols[0, 0] == 0.0 and cols[0, 1] == NO_MEMORY_REL  # nobody asked about 제3조
    assert ab[1] == 0.0  # B (제5·6조) is orthogonal: the nearest remembered question is far


def test_a_share_of_training_rows_learns_as_if_its_articles_were_new() -> None:
    from assist.knowledge.rerank_train import unfamiliar

    rng = np.random.default_rng(17)
    ex = _examples(rng, shared_topics=True)
    assert not any(unfamiliar(e, 0.0) for e in ex)
    share = np.mean([unfamiliar(e, 0.4) for e in ex])
    assert 0.25 < share < 0.55
    by_group: dict[str, set[bool]] = {}
    for e in ex:
        by_group.setdefault(e.group, set()).add(unfamiliar(e, 0.4))
    assert all(len(v) == 1 for v in by_group.values())  # an item and its rewrite go together
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    col = FEATURES.index("mem_sim")
    mem = memory_of(ex)
    got = with_memory(reranker, ex, mem, True, unfamiliar_share=0.4)  # type: ignore[arg-type]
    plain = with_memory(reranker, ex, mem, True)  # type: ignore[arg-type]
    known = 0
    for e, g, p in zip(ex, got, plain, strict=True):
        right = list(g.candidates.articles).index(INDEX[e.relevant[0]])
        if unfamiliar(e, 0.4):
            assert g.candidates.X[right, col] == 0.0
            known += p.candidates.X[right, col] > 0.5  # what it would have read
        else:
            assert np.array_equal(g.candidates.X, p.candidates.X)
    assert known > 20  # other groups asked about most of those articles: the share hid them


def test_cross_validation_scores_familiar_and_unfamiliar_articles_apart() -> None:
    rng = np.random.default_rng(19)
    ex = _examples(rng, shared_topics=False)[:80]  # 40 groups, an article each: all unfamiliar
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    report, _ = cross_validate(reranker, ex, folds=4)  # type: ignore[arg-type]
    mean = report["mean_of_held_out_folds"]
    assert mean["unfamiliar"]["utterances"]["n"] == 80 and "familiar" not in mean
    shared = _examples(rng, shared_topics=True)  # 160 groups on 40 articles: mostly familiar
    report, _ = cross_validate(reranker, shared, folds=4)  # type: ignore[arg-type]
    mean = report["mean_of_held_out_folds"]
    assert mean["familiar"]["utterances"]["n"] > 4 * mean["unfamiliar"]["utterances"]["n"] > 0
    assert mean["familiar"]["utterances"]["hit_at_1"] > mean["unfamiliar"]["utterances"]["hit_at_1"] + 0.3


def test_the_seed_spread_repeats_the_cross_validation_and_restores_the_seed() -> None:
    from assist.knowledge.rerank_train import PARAMS, seed_spread

    rng = np.random.default_rng(23)
    ex = _examples(rng, shared_topics=True)[:120]
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    before = PARAMS["random_state"]
    got = seed_spread(reranker, ex, (1, 2), folds=3)  # type: ignore[arg-type]
    assert PARAMS["random_state"] == before
    assert set(got["per_seed"]) == {"1", "2"}
    h = got["summary"]["single_questions"]["hit_at_1"]
    assert h["min"] <= h["mean"] <= h["max"]
    assert {r["single_questions"]["hit_at_1"] for r in got["per_seed"].values()} <= {h["min"], h["max"]}


# ---------------------------------------------------------------- the neighbours' votes (session 16)
def _at(cos: float, axis: int, dim: int = 16) -> np.ndarray:
    """A unit vector at cosine ``cos`` from the first axis, its remainder on ``axis`` (orthogonal to
    every other such vector)."""
    v = np.zeros(dim, dtype=np.float32)
    v[0], v[axis] = cos, np.sqrt(1 - cos**2)
    return v


def _votes(mem: QuestionMemory, arts: list[int], **kw: object) -> dict[str, np.ndarray]:
    cols, _ = mem.features(_at(1.0, 1), np.array(arts), INDEX, **kw)  # type: ignore[arg-type]
    return {name: cols[:, k] for k, name in enumerate(MEMORY_FEATURES)}


def test_agreeing_neighbours_outvote_a_lone_nearer_paraphrase() -> None:
    # A (0.95) alone names 제1조; B, C, D (0.90) name 제2조; E, nearer still, was out of scope
    mem = QuestionMemory.build(
        np.stack([_at(0.95, 1), _at(0.90, 2), _at(0.90, 3), _at(0.90, 4), _at(0.97, 5)]),
        [["법/제1조"], ["법/제2조"], ["법/제2조"], ["법/제2조"], []],
        ["A", "B", "C", "D", "E"],
    )
    got = _votes(mem, [1, 2, 3])
    assert got["mem_sim"][0] > got["mem_sim"][1]  # the nearest neighbour alone favours 제1조
    far = 3 * np.exp(-0.05 / TAU)  # three votes, each 0.05 below the nearest in-scope question
    assert np.allclose(got["mem_vote"], [1 / (1 + far), far / (1 + far), 0.0], atol=1e-5)
    assert got["mem_vote"][1] > got["mem_vote"][0]
    assert got["mem_count"].tolist() == [1.0, 3.0, 0.0]  # E (out of scope) votes for nothing
    assert np.isclose(got["mem_vote"].sum(), 1.0, atol=1e-5)  # one article each: the shares add up


def test_a_question_answered_by_two_articles_votes_for_both_and_a_near_one_weighs_more() -> None:
    mem = QuestionMemory.build(
        np.stack([_at(0.80, 1), _at(0.60, 2)]), [["법/제5조", "법/제6조"], ["법/제7조"]], ["A", "B"]
    )
    got = _votes(mem, [5, 6, 7])
    w = np.exp(-0.20 / TAU)
    assert np.allclose(got["mem_vote"], [1 / (1 + w), 1 / (1 + w), w / (1 + w)], atol=1e-5)
    assert got["mem_count"].tolist() == [1.0, 1.0, 1.0]
    assert got["mem_vote"][2] < 0.02  # 0.2 farther: next to no say


def test_only_the_nearest_kernel_questions_vote() -> None:
    n = KERNEL + 2
    cos = np.linspace(0.9, 0.5, n)
    labels = [["법/제1조"]] * KERNEL + [["법/제9조"]] * 2  # the two farthest name 제9조
    mem = QuestionMemory.build(
        np.stack([_at(float(c), i + 1, dim=n + 1) for i, c in enumerate(cos)]),
        labels,
        [f"G{i}" for i in range(n)],
    )
    cols, _ = mem.features(_at(1.0, 1, dim=n + 1), np.array([1, 9]), INDEX)
    got = {name: cols[:, k] for k, name in enumerate(MEMORY_FEATURES)}
    assert got["mem_count"].tolist() == [float(KERNEL), 0.0]
    assert np.isclose(got["mem_vote"][0], 1.0) and got["mem_vote"][1] == 0.0
    assert got["mem_sim"][1] > 0  # still among the NEIGHBOURS that mem_sim reads


def test_a_left_out_group_casts_no_vote() -> None:
    mem = QuestionMemory.build(
        np.stack([_at(0.95, 1), _at(0.90, 2)]), [["법/제1조"], ["법/제2조"]], ["A", "B"]
    )
    got = _votes(mem, [1, 2], exclude_group="A")
    assert got["mem_vote"].tolist() == [0.0, 1.0] and got["mem_count"].tolist() == [0.0, 1.0]
    empty = QuestionMemory.build(np.zeros((0, 16), dtype=np.float32), [], [])
    got = _votes(empty, [1, 2])
    assert not got["mem_vote"].any() and not got["mem_count"].any()


def test_a_training_row_carries_the_votes_in_its_features() -> None:
    mem = QuestionMemory.build(
        np.stack([_at(0.95, 1), _at(0.90, 2), _at(0.90, 3)]),
        [["법/제1조"], ["법/제2조"], ["법/제2조"]],
        ["A", "B", "C"],
    )
    arts = np.array([1, 2])
    cand = Candidates(arts, arts, np.zeros((2, len(FEATURES)), dtype=np.float32), qvec=_at(1.0, 1))
    e = Example("E0", "Q", "dev", Conversation("q"), [DOCS[2]], cand, [])
    reranker = SimpleNamespace(view=SimpleNamespace(doc_id=DOCS, law=LAW_OF))
    (got,) = with_memory(reranker, [e], mem, leave_own_group_out=True)  # type: ignore[arg-type]
    X = got.candidates.X
    assert X[:, FEATURES.index("mem_count")].tolist() == [1.0, 2.0]
    far = 2 * np.exp(-0.05 / TAU)
    assert np.allclose(X[:, FEATURES.index("mem_vote")], [1 / (1 + far), far / (1 + far)], atol=1e-5)


def test_every_held_out_sets_utterances_and_calls_have_one_writer() -> None:
    from assist.knowledge.rerank_train import HOLDOUT_SUFFIX, writer_of

    def one(set_name: str) -> Example:
        return Example("E", "E", set_name, Conversation("q"), [], None, [])

    for k in HOLDOUT_SUFFIX:
        assert writer_of(one(f"utterances_h{k}")) == writer_of(one(f"turns_h{k}")), k
    assert writer_of(one("utterances_h5")) != writer_of(one("utterances_h6"))


# ---------------------------------------------------------------- the law's vote (session 19)
def test_neighbours_that_disagree_on_the_article_agree_on_its_law() -> None:
    # A, B name two articles of law 0, C an article of law 1: each article gets its own share of the
    # vote, each law the share of every neighbour naming one of its articles
    law_of = np.array([0, 0, 0, 1] + [1] * (len(DOCS) - 4), dtype=np.int64)
    mem = QuestionMemory.build(
        np.stack([_at(0.90, 1), _at(0.90, 2), _at(0.90, 3)]),
        [["법/제1조"], ["법/제2조"], ["법/제3조"]],
        ["A", "B", "C"],
    )
    got = _votes(mem, [0, 1, 2, 3], law_of=law_of)
    assert np.allclose(got["mem_vote"], [0.0, 1 / 3, 1 / 3, 1 / 3], atol=1e-5)
    # 제0조: nobody named it, but two of three neighbours named its law; 제3조 shares C's law alone
    assert np.allclose(got["mem_law_vote"], [2 / 3, 2 / 3, 2 / 3, 1 / 3], atol=1e-5)
    # a question answered by two articles of one law votes for that law once
    mem2 = QuestionMemory.build(np.stack([_at(0.90, 1)]), [["법/제1조", "법/제2조"]], ["A"])
    assert np.allclose(_votes(mem2, [1, 2], law_of=law_of)["mem_law_vote"], [1.0, 1.0])
    assert not _votes(mem, [0, 1], law_of=None)["mem_law_vote"].any()  # no laws given: 0


def test_embedding_the_memory_shows_progress_only_when_asked(tmp_path: Path, monkeypatch, capsys) -> None:
    """`dasan kb build` embeds the shipped questions after the articles (15-20 min on an AVX2-only
    CPU): it shows a bar; a service starting does not write one to its log."""
    from assist.knowledge import memory as m

    monkeypatch.setattr(m, "_BUILT", {})
    questions = tmp_path / "q.jsonl"
    m.write_questions(
        questions, [{"text": "주차 과태료"}, {"text": "여권 분실"}], [["법/제3조"], ["법/제4조"]]
    )
    assert m.shipped_memory(_kb(None, _Encoder()), questions) is not None
    assert "question memory" not in capsys.readouterr().err
    monkeypatch.setattr(m, "_BUILT", {})
    assert m.shipped_memory(_kb(None, _Encoder()), questions, progress=True) is not None
    err = capsys.readouterr().err
    assert "question memory" in err and "2/2" in err
