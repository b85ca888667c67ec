"""BiEncoder: query/passage embeddings with the habits of sentence-transformers and LexDPR.

A thin layer over :class:`sentence_transformers.SentenceTransformer` that adds what retrieval over
statutes needs: the model's query/passage template chosen from its own metadata, separate maximum
lengths per side, counted truncation (or window pooling for long provisions), and model specs
(``bundled:``, local folders, PEFT adapters, hub ids) through one resolver.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np

from lextune.errors import ConfigError
from lextune.extras import optional_import
from lextune.models.onnx import BACKENDS, Backend
from lextune.models.resolve import ResolvedModel, resolve_model
from lextune.models.templates import Template, get_template, template_from_prompts

log = logging.getLogger(__name__)

LongPassages = Literal["truncate", "window"]
QUERY_ENCODER_KEY = "query_encoder"  # meta.json entry of a distilled query encoder: its teacher and layers


def _import_st():
    optional_import("torch", "models", "embedding")
    return optional_import("sentence_transformers", "models", "embedding").SentenceTransformer


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class BiEncoder:
    """Dense bi-encoder for queries and passages.

    >>> enc = BiEncoder("bundled:multilingual-e5-small")
    >>> q = enc.encode_queries(["전세보증금을 돌려받지 못하면?"])
    >>> p = enc.encode_passages(["임대차가 종료한 경우에도 임차인이 보증금을 반환받을 때까지는 ..."])
    >>> scores = q @ p.T
    """

    def __init__(
        self,
        model: str | Path,
        template: str | Template | tuple[str, str] | dict | None = None,
        normalize: bool = True,
        query_max_seq_length: int | None = None,
        passage_max_seq_length: int | None = None,
        device: str | None = None,
        batch_size: int = 32,
        long_passages: LongPassages = "truncate",
        backend: Backend = "torch",
        query_model: str | Path | None = None,
    ) -> None:
        # What another process needs to load the same encoder (a Ray worker): everything but the device.
        self.init_args = {"model": str(model), "template": template, "normalize": normalize,
                          "query_max_seq_length": query_max_seq_length,
                          "passage_max_seq_length": passage_max_seq_length, "batch_size": batch_size,
                          "long_passages": long_passages, "backend": backend,
                          "query_model": str(query_model) if query_model is not None else None}
        SentenceTransformer = _import_st()
        if long_passages not in ("truncate", "window"):
            raise ConfigError(f"long_passages must be 'truncate' or 'window', not {long_passages!r}")
        self.spec = str(model)
        self.resolved: ResolvedModel = resolve_model(model)
        self.device = device or default_device()
        self.model = SentenceTransformer(self.resolved.load_path, device=self.device)
        if self.resolved.adapter:
            self.model.load_adapter(self.resolved.adapter)
        self.normalize = normalize
        if not normalize:
            self._drop_normalize_module()
        self.batch_size = batch_size
        self.long_passages: LongPassages = long_passages
        self.template = get_template(template) or template_from_prompts(getattr(self.model, "prompts", None))
        model_max = self.model.max_seq_length or 512
        self.query_max_seq_length = min(query_max_seq_length or model_max, model_max)
        self.passage_max_seq_length = min(passage_max_seq_length or model_max, model_max)
        self.truncated = {"query": 0, "passage": 0}
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {list(BACKENDS)}, not {backend!r}")
        self._query: BiEncoder | None = None  # set before the ONNX runner asks for the fingerprint
        self.query_model_info: dict | None = None
        self._onnx = None
        if backend == "auto":
            from lextune.models.onnx import auto_runner

            self._onnx = auto_runner(self)
            backend = "onnx" if self._onnx is not None else "torch"
        elif backend != "torch":
            from lextune.models.onnx import OnnxRunner

            self._onnx = OnnxRunner(self, backend)
        self.backend: Backend = backend
        if query_model is not None:
            self._attach_query_model(query_model)

    def _attach_query_model(self, spec: str | Path) -> None:
        """Queries from a student distilled from this model (``lextune train query-encoder``); passages and
        the fingerprint stay this model's, so its indexes and caches still match."""
        student = BiEncoder(spec, template=self.template, normalize=self.normalize,
                            query_max_seq_length=self.query_max_seq_length, device=self.device,
                            batch_size=self.batch_size, backend=self.backend)
        from lextune.artifacts import read_meta

        info = (read_meta(student.resolved.path) or {}).get(QUERY_ENCODER_KEY)
        if not info:
            raise ConfigError(f"query model {spec}: not a distilled query encoder (its meta.json has no "
                              f"{QUERY_ENCODER_KEY!r} entry); make one with `lextune train query-encoder`")
        if info.get("teacher_fingerprint") != self.fingerprint():
            raise ConfigError(
                f"query model {spec} was distilled from {info.get('teacher')!r} (fingerprint "
                f"{str(info.get('teacher_fingerprint'))[:12]}), not from {self.spec!r} ({self.fingerprint()[:12]}): "
                "its query vectors would not match this model's passages")
        self._query = student
        self.query_model_info = {"spec": student.spec, "layers": info.get("layers"),
                                 "teacher_layers": info.get("teacher_layers")}

    @property
    def has_query_model(self) -> bool:
        """Whether queries go through a distilled query encoder (``query_model``) instead of this model."""
        return self._query is not None

    def _drop_normalize_module(self) -> None:
        """normalize=False must give raw pooled vectors even when the folder ends in a Normalize module."""
        from sentence_transformers.sentence_transformer.modules import Normalize

        last = len(self.model) - 1
        if last > 0 and isinstance(self.model[last], Normalize):
            del self.model[last]

    # -- information -------------------------------------------------------------------------
    def get_max_seq_length(self) -> int:
        """The model's own maximum input length in tokens (prefix and special tokens included)."""
        return int(self.model.max_seq_length or 512)

    def get_embedding_dimension(self) -> int:
        """Size of the output vectors."""
        return int(self.model.get_embedding_dimension())

    def get_training_config(self) -> dict | None:
        """Base model and LoRA settings when this is an adapter, else None."""
        if not self.resolved.adapter:
            return None
        cfg = json.loads((Path(self.resolved.adapter) / "adapter_config.json").read_text(encoding="utf-8"))
        return {
            "base_model": self.resolved.base.spec if self.resolved.base else cfg.get("base_model_name_or_path"),
            "peft_type": cfg.get("peft_type"),
            "r": cfg.get("r"),
            "lora_alpha": cfg.get("lora_alpha"),
            "lora_dropout": cfg.get("lora_dropout"),
            "target_modules": sorted(cfg["target_modules"]) if isinstance(cfg.get("target_modules"), list)
            else cfg.get("target_modules"),
        }

    def fingerprint(self) -> str:
        """Identity of the vectors this encoder makes: weights (size and a content sample), template,
        lengths and normalisation. Caches and indexes are keyed by it."""
        if getattr(self, "_fingerprint", None):
            return self._fingerprint
        h = hashlib.sha256()
        folders = [self.resolved.load_path] + ([self.resolved.adapter] if self.resolved.adapter else [])
        for folder in folders:
            root = Path(folder)
            # meta.json is lextune's provenance (it carries the creation time): the same weights converted
            # or copied elsewhere must keep the fingerprint, or indexes and caches stop matching.
            files = sorted(p for p in root.rglob("*") if p.suffix in {".safetensors", ".bin", ".json"}
                           and p.name != "meta.json") if root.is_dir() else []
            h.update(folder.encode() if not files else b"")
            for p in files:
                h.update(str(p.relative_to(root)).encode())
                h.update(str(p.stat().st_size).encode())
                with open(p, "rb") as f:
                    h.update(f.read(1 << 20))
                    if p.stat().st_size > 2 << 20:
                        f.seek(-(1 << 20), 2)
                        h.update(f.read())
        # The backend is left out: ONNX fp32 gives the same vectors (cosine 1.0000) and int8 queries are
        # meant to search an index built at fp32 (docs/benchmarks.md, "ONNX Runtime backend").
        # A distilled query model is left out too: it targets this model's vectors, and the fingerprint keys
        # passage caches and indexes, which it does not change.
        settings = {k: v for k, v in self.describe().items()
                    if k not in {"spec", "path", "kind", "backend", "query_model"}}
        h.update(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode())
        self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> dict:
        """What produced the vectors (written into artifacts' meta.json)."""
        return {
            "spec": self.spec,
            "kind": self.resolved.kind,
            "path": self.resolved.path,
            "template": {"name": self.template.name, "query": self.template.query, "passage": self.template.passage},
            "normalize": self.normalize,
            "query_max_seq_length": self.query_max_seq_length,
            "passage_max_seq_length": self.passage_max_seq_length,
            "long_passages": self.long_passages,
            "dimension": self.get_embedding_dimension(),
            "backend": getattr(self, "backend", "torch"),
            **({"query_model": self.query_model_info} if self.has_query_model else {}),
        }

    # -- encoding ----------------------------------------------------------------------------
    def encode_queries(self, texts: list[str] | str, *, batch_size: int | None = None,
                       show_progress_bar: bool = False) -> np.ndarray:
        """Embed queries (float32, one row a text)."""
        return self._encode(texts, "query", batch_size, show_progress_bar)

    def encode_passages(self, texts: list[str] | str, *, batch_size: int | None = None,
                        show_progress_bar: bool = False) -> np.ndarray:
        """Embed passages (float32, one row a text)."""
        return self._encode(texts, "passage", batch_size, show_progress_bar)

    def encode_with_token_counts(self, texts: list[str], side: Literal["query", "passage"]) -> tuple[np.ndarray, list[int]]:
        """Vectors and, per text, the tokens the model read (prompt and special tokens included, capped at
        the side's maximum length; a windowed passage counts up to the cap): the service's usage counts,
        from the one tokenization that encoding needs anyway."""
        counts: list[int] = []
        return self._encode(list(texts), side, None, False, counts), counts

    def _encode(self, texts, side: Literal["query", "passage"], batch_size, show_progress_bar,
                counts: list[int] | None = None) -> np.ndarray:
        if side == "query" and self._query is not None:
            return self._query._encode(texts, side, batch_size, show_progress_bar, counts)
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        prefix = self.template.query if side == "query" else self.template.passage
        limit = self.query_max_seq_length if side == "query" else self.passage_max_seq_length
        dim = self.get_embedding_dimension()
        if not items:
            return np.zeros((0, dim), dtype=np.float32)
        lengths = self._token_lengths([prefix + t for t in items])
        if counts is not None:
            counts.extend(min(n, limit) for n in lengths)
        long_idx = [i for i, n in enumerate(lengths) if n > limit]
        out: np.ndarray
        if long_idx and side == "passage" and self.long_passages == "window":
            out = self._encode_windows(items, long_idx, prefix, limit, batch_size, show_progress_bar)
        else:
            if long_idx:
                self.truncated[side] += len(long_idx)
                log.warning("%d of %d %s texts exceed %d tokens and were truncated", len(long_idx),
                            len(items), side, limit)
            out = self._st_encode(items, prefix, limit, batch_size, show_progress_bar)
        return out[0] if single else out

    def _st_encode(self, items: list[str], prefix: str, limit: int, batch_size, show_progress_bar) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.encode([prefix + t for t in items], limit, normalize=self.normalize,
                                     batch_size=batch_size or self.batch_size)
        from lextune.models.prefix_cache import attach

        old = self.model.max_seq_length
        self.model.max_seq_length = limit
        try:
            with attach(getattr(self.model[0], "auto_model", None)):
                emb = self.model.encode(items, prompt=prefix, batch_size=batch_size or self.batch_size,
                                        show_progress_bar=show_progress_bar, normalize_embeddings=self.normalize,
                                        convert_to_numpy=True)
        finally:
            self.model.max_seq_length = old
        return np.asarray(emb, dtype=np.float32)

    def _token_lengths(self, texts: list[str]) -> list[int]:
        enc = self.model.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(ids) for ids in enc]

    def _encode_windows(self, items, long_idx, prefix, limit, batch_size, show_progress_bar) -> np.ndarray:
        """Split over-long passages into token windows; average the windows, weighted by length."""
        tok = self.model.tokenizer
        n_special = len(tok("")["input_ids"])
        budget = max(8, limit - n_special - len(tok(prefix, add_special_tokens=False)["input_ids"]))
        pieces: list[str] = []
        owner: list[int] = []
        weight: list[int] = []
        long_set = set(long_idx)
        for i, text in enumerate(items):
            if i not in long_set:
                pieces.append(text)
                owner.append(i)
                weight.append(1)
                continue
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = enc["offset_mapping"]
            for start in range(0, len(offsets), budget):
                window = offsets[start : start + budget]
                pieces.append(text[window[0][0] : window[-1][1]])
                owner.append(i)
                weight.append(len(window))
        emb = self._st_encode(pieces, prefix, limit, batch_size, show_progress_bar)
        out = np.zeros((len(items), emb.shape[1]), dtype=np.float32)
        np.add.at(out, owner, emb * np.asarray(weight, dtype=np.float32)[:, None])
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        else:
            totals = np.zeros(len(items), dtype=np.float32)
            np.add.at(totals, owner, np.asarray(weight, dtype=np.float32))
            out /= totals[:, None]
        return out
