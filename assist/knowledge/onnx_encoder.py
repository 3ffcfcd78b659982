"""EmbeddingGemma on ONNX Runtime: the export (``dasan models onnx``) and the model that runs it.

The installed sentence-transformers folder (transformer → mean pooling → Dense 768→3072 → Dense 3072→768
→ normalise) is exported as *one* graph, ``input_ids`` + ``attention_mask`` → ``sentence_embedding``
(768-d, L2-normalised), with ``torch.onnx.export`` (TorchScript exporter). sentence-transformers' own
ONNX export needs ``optimum``, whose release for ONNX Runtime pins ``transformers<4.58`` (this project
runs 5.x), so it is not used. The attention masks are built inside the graph from ``attention_mask``
(bidirectional; the sliding layers keep their ±window) and handed to the model as its per-layer mask
mapping, so nothing shape-dependent is frozen by the trace.

Then ``onnxruntime.quantization.quantize_dynamic`` makes an int8 copy (weights int8 per channel,
activations quantised per call) for the kernels this CPU has, optimum's presets:

- ``avx512_vnni`` (AVX512-VNNI or AVX-VNNI): u8 activations × s8 weights (VNNI's ``vpdpbusd``);
- ``avx2`` (no VNNI): u8 × u8 weights: AVX2's u8×s8 path (``vpmaddubsw``) saturates its int16 sums.

Only the ``MatMul`` weights are quantised (what optimum's dynamic presets do); the 262k×768 token
embedding stays float32. Files, under ``<model_dir>/embeddinggemma-300m-onnx/`` (a folder of its own:
the torch model folder's fingerprint keys the existing indexes): ``model.onnx`` (fp32),
``model_qint8_<variant>.onnx``, the tokenizer, and ``manifest.json`` with each file's SHA-256 and the
fingerprint of the folder it was exported from.

:class:`OnnxSentenceModel` runs a file with the part of the ``SentenceTransformer`` interface that
:class:`assist.knowledge.dense.Encoder` uses (``encode``, ``max_seq_length``, ``prompts``, ``tokenizer``,
``get_sentence_embedding_dimension``), so the Encoder's query prompt, caps and normalisation are the
torch path's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from streaming.hardware import CpuInfo, cpu_info

log = logging.getLogger(__name__)

OPSET = 17
MANIFEST = "manifest.json"
FP32_FILE = "model.onnx"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def onnx_dir(model_path: Path) -> Path:
    """Where the ONNX export of the model at ``model_path`` lives: a sibling folder, ``<name>-onnx``."""
    return Path(model_path).parent / f"{Path(model_path).name}-onnx"


def int8_variant(cpu: CpuInfo | None = None) -> str:
    """The int8 preset for this CPU's kernels: ``avx512_vnni`` with VNNI, else ``avx2``."""
    return "avx512_vnni" if (cpu or cpu_info()).vnni else "avx2"


def int8_file(variant: str) -> str:
    return f"model_qint8_{variant}.onnx"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fp32_export_ready(model_path: Path) -> bool:
    """Whether ``dasan models onnx`` has exported the fp32 graph of the model now at ``model_path``
    (the file is there and its manifest names this folder's weights)."""
    from .dense import model_fingerprint

    out = onnx_dir(Path(model_path))
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        return (out / FP32_FILE).is_file() and manifest.get("source_fingerprint") == model_fingerprint(
            Path(model_path)
        )
    except (OSError, ValueError):
        return False


class OnnxModelMissing(RuntimeError):
    """The ONNX export is not there (run ``dasan models onnx``)."""


def _pooled_module(model_path: Path) -> Any:
    """The sentence-transformers pipeline as one ``nn.Module``: (input_ids, attention_mask) → vectors."""
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    st.eval()
    auto_model = st[0].auto_model
    auto_model.config._attn_implementation = "eager"  # a plain additive mask, traced as tensor ops
    dense = [m for m in list(st)[2:] if hasattr(m, "linear")]
    window = int(getattr(auto_model.config, "sliding_window", 0) or 0)
    layer_types = set(getattr(auto_model.config, "layer_types", ["full_attention"]))

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = auto_model
            self.dense = torch.nn.ModuleList([d.linear for d in dense])

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            keep = attention_mask.to(torch.bool)[:, None, None, :]  # (B, 1, 1, L): key padding
            neg = torch.finfo(torch.float32).min
            full = torch.zeros(keep.shape, dtype=torch.float32).masked_fill(~keep, neg)
            masks = {"full_attention": full}
            if "sliding_attention" in layer_types:
                pos = torch.arange(input_ids.shape[1])
                near = (pos[:, None] - pos[None, :]).abs() < window  # bidirectional window
                masks["sliding_attention"] = full.masked_fill(~near[None, None], neg)
            hidden = self.body(input_ids=input_ids, attention_mask=masks).last_hidden_state
            m = attention_mask.to(hidden.dtype).unsqueeze(-1)
            x = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            for lin in self.dense:
                x = lin(x)
            return torch.nn.functional.normalize(x, p=2.0, dim=1)

    return Pipeline().eval(), st


def export_onnx(
    model_path: Path,
    out_dir: Path | None = None,
    variant: str | None = None,
    force: bool = False,
    int8: bool = True,
) -> dict[str, Any]:
    """Export the model at ``model_path`` to ONNX (fp32) and quantise it to int8 for ``variant``
    (default: this CPU's, :func:`int8_variant`). Idempotent: files already made from the same model
    folder are kept unless ``force``. ``int8=False``: the fp32 graph only (the query encoder
    ``query_backend=auto`` picks needs nothing else). Returns the manifest (also written to ``out_dir/manifest.json``)."""
    import torch

    from .dense import model_fingerprint

    model_path = Path(model_path)
    out = Path(out_dir) if out_dir is not None else onnx_dir(model_path)
    variant = variant or int8_variant()
    out.mkdir(parents=True, exist_ok=True)
    source = model_fingerprint(model_path)
    manifest_path = out / MANIFEST
    manifest: dict[str, Any] = {}
    if manifest_path.is_file() and not force:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("source_fingerprint") != source:
            manifest = {}
    files: dict[str, Any] = dict(manifest.get("files", {}))
    fp32 = out / FP32_FILE
    if FP32_FILE not in files or not fp32.is_file():
        t0 = time.perf_counter()
        module, st = _pooled_module(model_path)
        ids = st.tokenizer(
            ["task: search result | query: 쓰레기 배출", "title: none | text: 예시"], padding=True
        )
        args = (
            torch.tensor(ids["input_ids"], dtype=torch.long),
            torch.tensor(ids["attention_mask"], dtype=torch.long),
        )
        tmp = out / (FP32_FILE + ".tmp")
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of torch.export's, which needs onnxscript
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                args,
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        os.replace(tmp, fp32)
        for name in TOKENIZER_FILES:
            if (model_path / name).is_file():
                shutil.copy2(model_path / name, out / name)
        (out / "prompts.json").write_text(json.dumps(st.prompts, ensure_ascii=False, indent=1) + "\n")
        files = {FP32_FILE: {"sha256": sha256_file(fp32), "bytes": fp32.stat().st_size}}
        log.info(
            "onnx export written",
            extra={
                "file": str(fp32),
                "sha256": files[FP32_FILE]["sha256"],
                "seconds": time.perf_counter() - t0,
            },
        )
        del module, st
    qname = int8_file(variant)
    qpath = out / qname
    if int8 and (qname not in files or not qpath.is_file()):
        t0 = time.perf_counter()
        quantize_int8(fp32, qpath, variant)
        files[qname] = {"sha256": sha256_file(qpath), "bytes": qpath.stat().st_size, "variant": variant}
        log.info(
            "onnx int8 written",
            extra={"file": str(qpath), "sha256": files[qname]["sha256"], "seconds": time.perf_counter() - t0},
        )
    manifest = {
        "source": str(model_path),
        "source_fingerprint": source,
        "opset": OPSET,
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "files": files,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for name, f in files.items():
        log.info("onnx model file", extra={"file": name, "sha256": f["sha256"], "bytes": f["bytes"]})
    return manifest


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def quantize_int8(src: Path, dst: Path, variant: str) -> None:
    """Dynamic int8 of the ``MatMul`` weights of ``src`` (per channel) for ``variant``'s kernels."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if variant not in ("avx512_vnni", "avx2"):
        raise ValueError(f"unknown int8 variant {variant!r} (avx512_vnni or avx2)")
    tmp = dst.with_name(dst.name + ".tmp")
    quantize_dynamic(
        src,
        tmp,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8 if variant == "avx512_vnni" else QuantType.QUInt8,
        extra_options={"MatMulConstBOnly": True},
    )
    os.replace(tmp, dst)


class OnnxSentenceModel:
    """An exported EmbeddingGemma on ONNX Runtime, with the ``SentenceTransformer`` calls the Encoder
    makes. ``file_name``: ``model.onnx`` (fp32) or ``model_qint8_<variant>.onnx``."""

    def __init__(self, folder: Path, file_name: str, threads: int = 2) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        path = Path(folder) / file_name
        if not path.is_file():
            raise OnnxModelMissing(f"{path} not found: run `dasan models onnx`")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":  # shared cores: do not spin
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.file = path
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        prompts = Path(folder) / "prompts.json"
        self.prompts: dict[str, str] = json.loads(prompts.read_text()) if prompts.is_file() else {}
        self.max_seq_length = 256
        self._dim = int(self.session.get_outputs()[0].shape[-1] or 768)

    def get_sentence_embedding_dimension(self) -> int:
        return self._dim

    def eval(self) -> OnnxSentenceModel:
        return self

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        convert_to_tensor: bool = False,
        show_progress_bar: bool = False,
    ) -> Any:
        """Vectors of ``texts`` in their order (batched longest first, as sentence-transformers does)."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            (vecs,) = self.session.run(
                None,
                {
                    "input_ids": enc["input_ids"].astype(np.int64),
                    "attention_mask": enc["attention_mask"].astype(np.int64),
                },
            )
            out[idx] = vecs
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        if convert_to_tensor:
            import torch

            return torch.from_numpy(out)
        return out
