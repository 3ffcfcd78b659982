"""The ONNX export (``dasan models onnx``'s code) against the torch model it came from (slow).

The whole 24-layer export takes about two minutes on 2 cores, so this exports a two-layer slice of the
real EmbeddingGemma (layer 0, sliding-window, and layer 5, full attention: both kinds of mask, the real
tokenizer, embedding, pooling and dense heads) and compares its vectors with the torch ones of that
same slice through the :class:`Encoder` (query prompt, caps, normalisation). The full model's figures
(fp32 cosine 1.0000, int8 about 0.97) are in benchmarks/results/encoder_backends.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assist.knowledge.dense import Encoder, document_text
from assist.knowledge.onnx_encoder import FP32_FILE, int8_file, int8_variant, onnx_dir, sha256_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sliced_model(tmp_path_factory) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer

    from assist.knowledge import ensure_embedding_model

    st = SentenceTransformer(str(ensure_embedding_model(progress=False)), device="cpu", local_files_only=True)
    body = st[0].auto_model
    keep = [0, 5]
    body.layers = torch.nn.ModuleList([body.layers[i] for i in keep])
    body.config.layer_types = [body.config.layer_types[i] for i in keep]
    body.config.num_hidden_layers = len(keep)
    assert set(body.config.layer_types) == {"sliding_attention", "full_attention"}
    out = tmp_path_factory.mktemp("onnxslice") / "embeddinggemma-slice"
    st.save(str(out))
    return out


@pytest.fixture(scope="module")
def exported(sliced_model: Path) -> dict:
    from assist.knowledge.onnx_encoder import export_onnx

    return export_onnx(sliced_model)


def _texts(corpus_slice: list[dict]) -> tuple[list[str], list[str]]:
    queries = ["음식물 쓰레기는 언제 버려요?", "윗집 층간소음 신고하려면 어디로", "주차 단속 과태료 얼마예요"]
    docs = [document_text(r["law_name"], r["text"]) for r in corpus_slice[:6]]
    docs.append(document_text("긴 글", " ".join(r["text"] for r in corpus_slice[:40])))  # > the 512 window
    return queries, docs


def test_export_writes_fp32_and_int8_with_their_sha256(sliced_model: Path, exported: dict) -> None:
    folder = onnx_dir(sliced_model)
    names = {FP32_FILE, int8_file(int8_variant())}
    assert names <= set(exported["files"])
    for name in names:
        assert exported["files"][name]["sha256"] == sha256_file(folder / name)
    assert json.loads((folder / "manifest.json").read_text()) == exported


def test_onnx_vectors_match_torch_fp32(sliced_model: Path, exported: dict, corpus_slice: list[dict]) -> None:
    queries, docs = _texts(corpus_slice)
    ref = Encoder(sliced_model, "torch", max_seq_length=700, threads=2)
    ref_q, ref_d = ref.encode_queries(queries), ref.encode_documents(docs, batch_size=4)
    assert max(ref.token_lengths(docs)) > 512  # the long text crosses the sliding window
    cosines = {}
    for backend in ("onnx-fp32", "onnx"):
        enc = Encoder(sliced_model, backend, max_seq_length=700, threads=2)
        assert enc.backend == backend and enc.dim == ref.dim == 768
        assert enc.query_prompt == ref.query_prompt
        q, d = enc.encode_queries(queries), enc.encode_documents(docs, batch_size=4)
        assert q.dtype == np.float32 and np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
        cosines[backend] = float(min((q * ref_q).sum(1).min(), (d * ref_d).sum(1).min()))
    print(f"two-layer slice, cosine to torch fp32: {cosines}")
    assert cosines["onnx-fp32"] >= 0.99
    assert cosines["onnx"] >= 0.9  # int8: about 0.97 on the full model


def test_a_loaded_index_is_queried_by_the_fp32_export(
    sliced_model: Path, exported: dict, corpus_slice: list[dict], tmp_path: Path
) -> None:
    """``query_backend=auto``: an index built by torch (fp32) is searched with the ONNX fp32 query
    encoder once the export exists: the index key stays the torch one, the hits are the torch ones."""
    from assist.knowledge import KnowledgeBase, KnowledgeSettings

    s = KnowledgeSettings(
        embedding_model_path=sliced_model, index_dir=tmp_path, dense_backend="torch", max_seq_length=64
    )
    built = KnowledgeBase.build(corpus_slice[:60], s, progress=False)
    path = built.save()
    # the build's analyser (the index's fingerprint): spares two kiwipiepy starts, picks no encoder
    auto = KnowledgeBase.load(path, s, analyzer=built.analyzer)
    same = KnowledgeBase.load(path, s.model_copy(update={"query_backend": "same"}), analyzer=built.analyzer)
    assert auto.key == same.key
    assert auto.encoder is not None and same.encoder is not None
    assert (auto.encoder.backend, same.encoder.backend) == ("onnx-fp32", "torch")
    assert auto.info()["query_backend"] == "onnx-fp32"
    for q in ("음식물 쓰레기는 언제 버려요?", "인도에 주차된 차 신고", "수돗물 요금"):
        a, b = auto.search(q, top_k=5), same.search(q, top_k=5)
        assert [h.doc_id for h in a] == [h.doc_id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-4)


def test_a_bf16_index_gives_small_query_batches_to_onnx_fp32(
    sliced_model: Path, exported: dict, corpus_slice: list[dict], tmp_path: Path
) -> None:
    """``query_backend=auto`` over a bf16 index: batches of at most ``query_small_batch`` queries run
    on ONNX fp32, larger ones on bf16; both give the index's vectors (cosine ≥ 0.999)."""
    from assist.knowledge import KnowledgeBase, KnowledgeSettings

    s = KnowledgeSettings(
        embedding_model_path=sliced_model, index_dir=tmp_path, dense_backend="bf16", max_seq_length=64
    )
    built = KnowledgeBase.build(corpus_slice[:40], s, progress=False)
    path = built.save()
    kb = KnowledgeBase.load(path, s, analyzer=built.analyzer)  # the build's analyser: one kiwipiepy start
    enc = kb.encoder
    assert enc is not None and (enc.backend, enc.small_backend, enc.small_batch_max) == (
        "bf16",
        "onnx-fp32",
        3,
    )
    assert kb.info()["query_backend"] == "onnx-fp32 (≤ 3 a batch) + bf16"
    queries = ["음식물 쓰레기는 언제 버려요?", "인도에 주차된 차 신고", "수돗물 요금", "층간소음 신고"]
    one = np.vstack([enc.encode_queries([q]) for q in queries])  # four batches of one: ONNX
    assert enc.small_batches == 4
    four = enc._embed_queries([enc.query_prompt + q for q in queries])  # one batch of four: bf16
    assert enc.small_batches == 4
    assert (one * four).sum(1).min() >= 0.999
    plain = KnowledgeBase.load(path, s.model_copy(update={"query_small_batch": 0}), analyzer=built.analyzer)
    assert plain.encoder is not None and plain.encoder.small_model is None


def test_the_query_backend_never_mixes_drifted_vectors(sliced_model: Path, exported: dict, tmp_path) -> None:
    from assist.knowledge import KnowledgeSettings

    s = KnowledgeSettings(embedding_model_path=sliced_model, index_dir=tmp_path)
    pick = {
        (index, query): s.model_copy(update={"dense_backend": index, "query_backend": query}).query_encoders()
        for index in ("bf16", "torch", "int8", "onnx")
        for query in ("auto", "same", "onnx-fp32")
    }
    assert pick[("bf16", "auto")] == ("bf16", "onnx-fp32")  # small batches on ONNX fp32
    assert pick[("torch", "auto")] == ("onnx-fp32", None)
    assert pick[("bf16", "same")] == ("bf16", None) and pick[("bf16", "onnx-fp32")] == ("onnx-fp32", None)
    # int8 indexes (torch's or ONNX's) are queried by their own backend whatever is asked
    assert {pick[("int8", q)] for q in ("auto", "same", "onnx-fp32")} == {("int8", None)}
    assert {pick[("onnx", q)] for q in ("auto", "same", "onnx-fp32")} == {("onnx", None)}
    # no export of this model: auto keeps the index's backend
    bare = tmp_path / "other-model"
    bare.mkdir()
    (bare / "modules.json").write_text("[]")
    no_export = s.model_copy(update={"embedding_model_path": bare, "dense_backend": "bf16"})
    assert no_export.query_encoders() == ("bf16", None)
