"""ONNX Runtime inference for a BiEncoder: the same vectors, less CPU per query.

Why: on a 2-core CPU PyTorch spends ~24 ms per short query (padding in a batch, Python per op); ONNX
Runtime runs the exported graph in ~19 ms at fp32 with vectors equal to PyTorch's (cosine 1.0000), and
faster with int8 dynamic quantisation (per-channel weights, the FFN down-projection kept fp32; cosine
>= 0.99 to fp32, some loss in retrieval quality, so opt-in). Numbers
and retrieval quality: docs/benchmarks.md, "ONNX Runtime backend".

The transformer (token ids -> last hidden state) is exported once per model fingerprint with
``torch.onnx.export`` and cached under ``$LEXTUNE_HOME/cache/onnx/<fingerprint>/`` (``model.onnx``, and
``model_qint8_ffn-out-fp32.onnx`` for int8), written atomically; pooling and normalisation run in numpy with the
model's own pooling mode. Texts are sorted by length and grouped so that padding stays small.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from lextune.errors import ConfigError, MissingExtraError
from lextune.extras import optional_import
from lextune.models.bundled import lextune_home

log = logging.getLogger(__name__)


class BiEncoder(Protocol):
    """What this module needs of :class:`lextune.models.biencoder.BiEncoder` (named here, not imported: the
    bi-encoder imports this module, never the other way round)."""

    model: Any  # a SentenceTransformer
    spec: str
    device: str
    resolved: Any  # lextune.models.resolve.ResolvedModel

    def fingerprint(self) -> str: ...

Backend = Literal["auto", "torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")
# int8 recipe v2 (new file name, so an old cache is not reused): the FFN down-projection stays fp32.
FILES = {"onnx": "model.onnx", "onnx-int8": "model_qint8_ffn-out-fp32.onnx"}
POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def _ort():
    return optional_import("onnxruntime", "onnx", "the onnx backend")


def onnx_cache_dir(fingerprint: str) -> Path:
    return lextune_home() / "cache" / "onnx" / fingerprint


def _pooling_mode(encoder: BiEncoder) -> str:
    from sentence_transformers.sentence_transformer.modules import Pooling

    for module in encoder.model:
        if isinstance(module, Pooling):
            mode = getattr(module, "pooling_mode", None)
            if isinstance(mode, str):
                mode = {"mean": "mean", "cls": "cls"}.get(mode)
            else:
                cfg = module.get_config_dict()
                mode = next((POOLING[k] for k, v in cfg.items() if v and k in POOLING), None)
            if mode is None:
                raise ConfigError(f"the onnx backend supports mean or CLS pooling, not {module.get_config_dict()}")
            return mode
    raise ConfigError("the onnx backend needs a sentence-transformers model with a Pooling module")


def _export(encoder: BiEncoder, out: Path) -> None:
    """Write the transformer as ONNX (fp32, dynamic batch and sequence axes) to ``out``."""
    import torch

    optional_import("onnx", "onnx", "exporting to ONNX")
    optional_import("onnxscript", "onnx", "exporting to ONNX")
    transformer = encoder.model[0].auto_model

    class Hidden(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    example = encoder.model.tokenizer(["query: 보증금", "passage: 임대차 보증금의 반환"], padding=True, return_tensors="pt")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    was_training = transformer.training
    transformer.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(Hidden(transformer).cpu(), (example["input_ids"], example["attention_mask"]), str(out),
                              input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                              dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
                              dynamo=True, external_data=False, verbose=False)
    finally:
        transformer.train(was_training)


def onnx_model_path(encoder: BiEncoder, backend: Backend) -> Path:
    """The cached ONNX file of ``encoder`` for ``backend``, exported (and quantised) on first use."""
    if backend not in FILES:
        raise ConfigError(f"backend must be one of {list(FILES)}, not {backend!r}")
    if encoder.resolved.adapter:
        raise ConfigError(f"{encoder.spec} is a PEFT adapter: merge it first (lextune models merge) "
                          "to serve it with the onnx backend")
    folder = onnx_cache_dir(encoder.fingerprint())
    path = folder / FILES[backend]
    if path.is_file():
        return path
    _ort()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
        fp32 = folder / FILES["onnx"]
        if not fp32.is_file():
            log.info("exporting %s to ONNX (once per model)", encoder.spec)
            staged = Path(tmp) / FILES["onnx"]
            _export(encoder, staged)
            os.replace(staged, fp32)
        if backend == "onnx-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            staged = Path(tmp) / FILES[backend]
            quantize_dynamic(str(fp32), str(staged), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=ffn_down_projections(fp32))
            os.replace(staged, path)
    return path


def ffn_down_projections(path: Path) -> list[str]:
    """Names of the MatMuls whose weight maps a wider input to a narrower output: in a BERT-like encoder the
    feed-forward down-projection, whose input (the GELU output) has the widest range and loses most to
    8-bit activations. Keeping these fp32 took koblex-dev top-10 agreement with fp32 from 0.83 to 0.89 and
    cosine from 0.9957 to 0.9983 for 12% more time (docs/benchmarks.md)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and len(shapes.get(n.input[1], [])) == 2
            and shapes[n.input[1]][0] > shapes[n.input[1]][1]]


def auto_runner(encoder: BiEncoder) -> OnnxRunner | None:
    """``auto``: ONNX Runtime at fp32 when it is installed and the model exports, else None (torch)."""
    if encoder.resolved.adapter:
        log.info("backend auto: %s is a PEFT adapter, encoding with torch", encoder.spec)
        return None
    if encoder.device != "cpu":
        return None  # on a GPU torch is the fast path
    try:
        return OnnxRunner(encoder, "onnx")
    except MissingExtraError as exc:
        log.info("backend auto: %s; encoding with torch", exc)
    except Exception as exc:  # an architecture the exporter cannot handle: still serve, with torch
        log.warning("backend auto: exporting %s to ONNX failed (%s: %s); encoding with torch",
                    encoder.spec, type(exc).__name__, exc)
    return None


class OnnxRunner:
    """Encodes prefixed texts with an ONNX Runtime session of ``encoder``'s transformer."""

    def __init__(self, encoder: BiEncoder, backend: Backend = "onnx", *, threads: int | None = None,
                 max_padding: float = 0.3) -> None:
        ort = _ort()
        import torch

        self.backend = backend
        self.path = onnx_model_path(encoder, backend)
        self.pooling = _pooling_mode(encoder)
        self.tokenizer = encoder.model.tokenizer
        self.max_padding = max_padding
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle worker threads would spin after each run and starve faiss/BM25 work that follows (on 2
        # cores: a 16k-vector flat search went from 1 ms to 12 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def _groups(self, lengths: list[int], batch_size: int) -> list[list[int]]:
        """Indices sorted by length, grouped so that padding adds at most ``max_padding`` of the tokens."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        groups: list[list[int]] = []
        current: list[int] = []
        for i in order:
            if current:
                longest = lengths[current[0]]
                total = sum(lengths[j] for j in current) + lengths[i]
                if len(current) >= batch_size or longest * (len(current) + 1) > (1 + self.max_padding) * total:
                    groups.append(current)
                    current = []
            current.append(i)
        if current:
            groups.append(current)
        return groups

    def encode(self, texts: list[str], max_length: int, *, normalize: bool, batch_size: int = 32,
               progress=None) -> np.ndarray:
        """Pooled (and optionally L2-normalised) float32 vectors of ``texts`` (prefix already added)."""
        if not texts:
            raise ConfigError("nothing to encode")
        enc = self.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length, verbose=False)
        ids = enc["input_ids"]
        out: np.ndarray | None = None
        # int8 quantises activations with one scale per run: a text batched with others would get another
        # vector than alone (cosine ~0.997), so int8 runs one text at a time (no slower for short texts).
        for group in self._groups([len(x) for x in ids], 1 if self.backend == "onnx-int8" else batch_size):
            width = max(len(ids[i]) for i in group)
            pad = self.tokenizer.pad_token_id or 0
            input_ids = np.full((len(group), width), pad, dtype=np.int64)
            mask = np.zeros((len(group), width), dtype=np.int64)
            for row, i in enumerate(group):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            (hidden,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                m = mask[:, :, None].astype(np.float32)
                pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            if out is None:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[group] = pooled
            if progress is not None:
                progress(len(group))
        if normalize and out is not None:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out  # type: ignore[return-value]
