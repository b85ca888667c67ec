"""Distil a shallower query encoder from a bi-encoder, for faster search over an index it already built.

Why: a served search spends ~90% of its time encoding the query (docs/benchmarks.md, "Serving"), and on a
2-core CPU a 12-layer e5-small caps the service at ~30 searches/s. The passages were encoded once, offline,
by the full model; only the query side runs per request. So a student made of some of the teacher's layers
(word embeddings shared and frozen) is trained to rank the corpus passages as the teacher does (KL between
the two score distributions over the passages' fixed teacher vectors) and to put queries where the teacher
puts them (sentence-transformers' ``EmbedDistillLoss``, the embedding matching of EmbedDistill), and then
searches the teacher's index unchanged: ``BiEncoder(teacher, query_model=student)``, or
``lextune serve --query-model``.

Training texts are query-like texts only, never benchmark questions: the queries of ``lextune synth``
(any JSONL with a ``text`` field) and spans of sentences sampled from the corpus. The teacher's targets are computed
once and cached by teacher and texts, so a killed run resumes without re-encoding them.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lextune.artifacts import atomic_dir, atomic_file, file_sha256, make_meta, text_sha1, write_json_atomic
from lextune.config import save_config
from lextune.errors import ConfigError, InputFormatError
from lextune.extras import optional_import
from lextune.jsonl import iter_jsonl, require_str
from lextune.models.biencoder import QUERY_ENCODER_KEY
from lextune.models.onnx import Backend

LayerChoice = Literal["spread", "bottom"]


class QueryEncoderConfig(BaseModel):
    """A distillation run; saved beside the student."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field("bundled:multilingual-e5-small", description="The bi-encoder whose index the student "
                         "will query (its passage vectors stay as they are).")
    output_dir: str
    queries: list[str] = Field(default_factory=list, description="JSONL files with a 'text' field: "
                               "`lextune synth` queries.jsonl, or your users' logged queries.")
    corpus: str | None = Field(None, description="Index or ingest folder: spans of its sentences are sampled as "
                               "further query-like texts.")
    corpus_texts: int = Field(12_000, ge=0, description="Spans sampled from the corpus.")
    span_sentences: int = Field(3, ge=1, description="A corpus text is 1 to this many consecutive sentences.")
    min_chars: int = Field(12, ge=1, description="Shorter corpus spans are skipped.")
    max_chars: int = Field(300, ge=1, description="Longer corpus spans are cut here.")
    layers: int = Field(6, ge=1, description="Transformer layers the student keeps.")
    layer_choice: LayerChoice = Field("spread", description="spread: evenly from first to last (the last one "
                                      "included, so the output space is the teacher's); bottom: the first N.")
    objective: Literal["ranking", "vector"] = Field(
        "ranking", description="ranking: reproduce the teacher's score distribution over the corpus passages "
        "(KL at `temperature`; the passages' teacher vectors are fixed, so this is one matrix product) plus "
        "`vector_weight` x the vector distance; vector: the vector distance only (measured: cosine 0.98 to the "
        "teacher still halved the top-10 overlap, docs/benchmarks.md).")
    distance: Literal["cosine", "mse", "l2"] = "cosine"
    temperature: float = Field(0.01, gt=0, description="Of the ranking objective's softmax (e5 was trained at 0.01).")
    vector_weight: float = Field(1.0, ge=0)
    max_passages: int = Field(50_000, ge=1, description="Ranking objective: passages sampled from a larger corpus.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Of the student in training (0: it regresses exact targets).")
    freeze_embeddings: bool = Field(True, description="Keep the teacher's word embeddings (most of the weights).")
    max_seq_length: int = Field(192, ge=8, description="Tokens the student reads in training (the longest "
                                "corpus spans fit).")
    validation_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    batch_size: int = Field(64, ge=1)
    epochs: float = Field(2.0, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1: as many as the epochs take.")
    learning_rate: float = Field(1e-4, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    teacher_backend: Backend = Field("auto", description="How the teacher encodes the targets (auto: ONNX on CPU).")
    seed: int = 13
    save_steps: int = Field(200, ge=1)
    logging_steps: int = Field(20, ge=1)
    resume: bool = True
    device: str | None = None
    progress: bool = True


def keep_layers(n_layers: int, keep: int, choice: LayerChoice = "spread") -> list[int]:
    """Which of the teacher's ``n_layers`` layers a ``keep``-layer student starts from."""
    if keep > n_layers:
        raise ConfigError(f"layers={keep}, but the teacher has only {n_layers}")
    if choice == "bottom" or keep == n_layers:
        return list(range(keep))
    if keep == 1:
        return [n_layers - 1]
    return sorted({round(i * (n_layers - 1) / (keep - 1)) for i in range(keep)})


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+|\n+")


def corpus_spans(texts: list[str], n: int, *, min_chars: int, max_chars: int, max_sentences: int = 1,
                 seed: int = 13) -> list[str]:
    """Up to ``n`` distinct spans of 1 to ``max_sentences`` consecutive sentences of ``texts``, cut at
    ``max_chars``: query-like inputs with the corpus's vocabulary, short and long (users ask in a phrase or
    in a paragraph-long scenario)."""
    sentences = [[" ".join(p.split()) for p in _SENTENCE_END.split(t) if p.strip()] for t in texts]
    starts = [(i, j) for i, sents in enumerate(sentences) for j in range(len(sents))]
    rng = random.Random(seed)
    rng.shuffle(starts)
    out: dict[str, None] = {}
    for i, j in starts:
        if len(out) >= n:
            break
        k = rng.randint(1, max_sentences)
        span = " ".join(sentences[i][j : j + k])[:max_chars].strip()
        if len(span) >= min_chars:
            out.setdefault(span)
    return list(out)


def read_query_texts(paths: list[str]) -> list[str]:
    """The ``text`` of every record of the JSONL files; a bad line is reported with its file and line."""
    out: list[str] = []
    for path in paths:
        for line_no, obj in iter_jsonl(path):
            text = require_str(obj, "text", path=str(path), line=line_no).strip()
            if not text:
                raise InputFormatError("empty query text", path=str(path), line=line_no, field="text")
            out.append(text)
    return out


def training_texts(cfg: QueryEncoderConfig, corpus: list[str]) -> list[str]:
    """Query files first, then spans of the ``corpus`` passages; duplicates dropped, order fixed by the seed."""
    texts = read_query_texts(cfg.queries)
    if corpus and cfg.corpus_texts:
        texts += corpus_spans(corpus, cfg.corpus_texts, min_chars=cfg.min_chars, max_chars=cfg.max_chars,
                              max_sentences=cfg.span_sentences, seed=cfg.seed)
    texts = list(dict.fromkeys(texts))
    if len(texts) < 2:
        raise ConfigError("query-encoder distillation needs texts: give `queries` files and/or a `corpus`")
    random.Random(cfg.seed).shuffle(texts)
    return texts


def length_grouped_batches(dataset, batch_size: int, drop_last: bool, valid_label_columns=None, generator=None,
                           seed: int = 0, megabatch: int = 50):
    """A sentence-transformers batch sampler (pass this function as ``batch_sampler``; being module-level it
    pickles into the checkpoint's training args) that batches texts of similar length: shuffled, cut into
    megabatches of ``megabatch`` batches, each sorted by length, and the batches shuffled again (the technique
    of Hugging Face's ``group_by_length``). Padding is what a CPU step wastes most on short, mixed-length
    queries: 2.6x the real tokens with random batches of 32, 1.2x grouped (koblex-dev's 14k training texts)."""
    import torch
    from sentence_transformers.base.sampler import DefaultBatchSampler

    class LengthGroupedBatchSampler(DefaultBatchSampler):
        def __iter__(self):
            g = torch.Generator()
            g.manual_seed(self.seed + getattr(self, "epoch", 0))
            order = torch.randperm(len(lengths), generator=g).tolist()
            size = self.batch_size * megabatch
            batches = []
            for start in range(0, len(order), size):
                group = sorted(order[start : start + size], key=lambda i: -lengths[i])
                batches += [group[b : b + self.batch_size] for b in range(0, len(group), self.batch_size)]
            if self.drop_last:
                batches = [b for b in batches if len(b) == self.batch_size]
            for k in torch.randperm(len(batches), generator=g).tolist():
                yield batches[k]

    lengths = [len(t) for t in dataset["text"]]
    return LengthGroupedBatchSampler(dataset, batch_size, drop_last, valid_label_columns, generator, seed)


def ranking_distill_loss(model, passages: np.ndarray, temperature: float, vector_weight: float,
                         distance: str = "cosine"):
    """KL(teacher || student) over the softmax of query-passage scores against fixed passage vectors, plus
    ``vector_weight`` x sentence-transformers' ``EmbedDistillLoss``. Labels are the teacher's query vectors."""
    import torch
    from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss

    class RankingDistillLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.vector = EmbedDistillLoss(model, distance_metric=distance)
            self.register_buffer("passages", torch.as_tensor(passages, dtype=torch.float32), persistent=False)

        def forward(self, sentence_features, labels):
            student = self.model(sentence_features[0])["sentence_embedding"]
            teacher = labels.detach().to(student.dtype)
            p = self.passages.to(student.device)
            log_s = torch.log_softmax(student @ p.T / temperature, dim=-1)
            log_t = torch.log_softmax(teacher @ p.T / temperature, dim=-1)
            kl = torch.nn.functional.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
            if not vector_weight:
                return kl
            return kl + vector_weight * self.vector.compute_loss_from_embeddings([student], [teacher])

    return RankingDistillLoss()


def make_student(teacher_path: str, keep: list[int], device: str | None = None):
    """The teacher as a SentenceTransformer with only the ``keep`` transformer layers (a plain BERT-like model
    with fewer layers: it saves and loads like any other)."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(teacher_path, device=device)
    hf = model[0].auto_model
    layers = getattr(getattr(hf, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(f"query-encoder distillation: {type(hf).__name__} has no encoder.layer list")
    hf.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    hf.config.num_hidden_layers = len(keep)
    for new_idx, layer in enumerate(hf.encoder.layer):  # some models index caches by layer
        attn = getattr(getattr(layer, "attention", None), "self", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_idx
    return model


def _teacher_targets(cfg: QueryEncoderConfig, teacher, texts: list[str]) -> np.ndarray:
    """The teacher's query vectors for ``texts``: computed once and cached under ``$LEXTUNE_HOME/cache/
    query_targets`` by teacher fingerprint and texts, so that a resumed run, or a student of another size
    over the same texts, does not encode them again."""
    from lextune.models.bundled import lextune_home

    key = text_sha1(teacher.fingerprint() + "\n" + "\n".join(texts))
    path = lextune_home() / "cache" / "query_targets" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    from tqdm.auto import tqdm

    chunk = 256
    parts = []
    with tqdm(total=len(texts), desc="teacher targets", unit="text", disable=not cfg.progress) as bar:
        for i in range(0, len(texts), chunk):
            parts.append(teacher.encode_queries(texts[i : i + chunk]))
            bar.update(len(texts[i : i + chunk]))
    vecs = np.concatenate(parts).astype(np.float32)
    with atomic_file(path, suffix=".npy") as tmp:
        np.save(tmp, vecs)
    return vecs


def _passage_vectors(cfg: QueryEncoderConfig, teacher, corpus: list[str]) -> np.ndarray:
    """The teacher's vectors of the corpus passages, at most ``max_passages`` of them: read from the index when
    the corpus is an index whose dense part the teacher built (nothing to encode), else encoded (through
    lextune's embedding cache)."""
    from lextune.index.dense import encode_passages_cached
    from lextune.index.lexindex import stored_dense

    rng = random.Random(cfg.seed)
    stored = stored_dense(cfg.corpus, teacher.fingerprint()) if cfg.corpus else None
    if stored is not None:
        rows = list(range(len(stored.ids)))
        if len(rows) > cfg.max_passages:
            rows = sorted(rng.sample(rows, cfg.max_passages))
        vecs = stored.vectors(rows)
        if vecs is not None:  # else an IVF index without a direct map: encode instead
            return vecs
    texts = corpus
    if len(texts) > cfg.max_passages:
        texts = rng.sample(texts, cfg.max_passages)
    return encode_passages_cached(teacher, texts)


def _agreement(model, texts: list[str], targets: np.ndarray, prompt: str, passages: np.ndarray | None) -> dict | None:
    """How close the student is to the teacher on held-out texts: cosine of the query vectors and, with the
    corpus, the share of the teacher's top-10 passages that the student also ranks in its top 10."""
    if not texts:
        return None
    vecs = model.encode(texts, prompt=prompt, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    t = targets / np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
    cos = (vecs * t).sum(1)
    out = {"cosine_mean": float(cos.mean()), "cosine_p05": float(np.percentile(cos, 5)), "cosine_min": float(cos.min())}
    if passages is not None and len(passages):
        k = min(10, len(passages))
        mine = np.argsort(-(vecs @ passages.T), axis=1)[:, :k]
        theirs = np.argsort(-(t @ passages.T), axis=1)[:, :k]
        out["top10_overlap"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(mine, theirs, strict=True)]))
    return out


def _student(cfg: QueryEncoderConfig, teacher, keep: list[int]):
    """The teacher cut to its ``keep`` layers, with the config's sequence length, frozen embeddings and dropout."""
    import torch

    student = make_student(teacher.resolved.load_path, keep, device=cfg.device)
    student.max_seq_length = min(cfg.max_seq_length, teacher.query_max_seq_length)
    if cfg.freeze_embeddings:
        for p in student[0].auto_model.get_input_embeddings().parameters():
            p.requires_grad = False
    for module in student[0].auto_model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = cfg.dropout
    return student


def _distill_loss(cfg: QueryEncoderConfig, student, passages: np.ndarray | None):
    """The objective: the teacher's ranking of the corpus passages (``ranking``) or its vectors (``vector``)."""
    if cfg.objective == "ranking":
        if passages is None:
            raise ConfigError("objective 'ranking' needs the corpus (an index or ingest folder) whose passages "
                              "the student will search; or set objective: vector")
        return ranking_distill_loss(student, passages, cfg.temperature, cfg.vector_weight, cfg.distance)
    from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss

    return EmbedDistillLoss(student, distance_metric=cfg.distance)


def distill_query_encoder(cfg: QueryEncoderConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Train a ``cfg.layers``-layer query encoder on the teacher's query vectors; save it atomically into
    ``output_dir`` (a sentence-transformers folder whose meta.json names the teacher) and return the summary.
    Progress: tqdm on a terminal, else a line a minute through ``progress`` (default: stderr)."""
    optional_import("datasets", "train", "distillation")
    optional_import("sentence_transformers", "train", "distillation")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from lextune.models.biencoder import BiEncoder
    from lextune.train.biencoder import load_texts, no_final_checkpoint, resume_point
    from lextune.train.progress import training_progress

    start = time.perf_counter()
    teacher = BiEncoder(cfg.teacher, device=cfg.device, backend=cfg.teacher_backend)
    if teacher.resolved.adapter:
        raise ConfigError(f"{cfg.teacher} is a PEFT adapter: merge it first (lextune models merge)")
    out = Path(cfg.output_dir)
    work = out.with_name(f".{out.name}.checkpoints")
    corpus = list(load_texts(cfg.corpus).values()) if cfg.corpus else []
    texts = training_texts(cfg, corpus)
    targets = _teacher_targets(cfg, teacher, texts)
    n_val = int(len(texts) * cfg.validation_fraction)
    val_texts, val_targets = texts[:n_val], targets[:n_val]
    train_texts, train_targets = texts[n_val:], targets[n_val:]

    n_layers = teacher.model[0].auto_model.config.num_hidden_layers
    keep = keep_layers(n_layers, cfg.layers, cfg.layer_choice)
    student = _student(cfg, teacher, keep)
    prompt = teacher.template.query
    passages = _passage_vectors(cfg, teacher, corpus) if cfg.corpus else None
    loss = _distill_loss(cfg, student, passages)
    before = _agreement(student, val_texts, val_targets, prompt, passages)

    dataset = Dataset.from_dict({"text": train_texts, "label": [v.tolist() for v in train_targets]})
    disable_tqdm, callbacks = training_progress(cfg.progress, progress)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, seed=cfg.seed, save_steps=cfg.save_steps, save_total_limit=2,
        logging_steps=cfg.logging_steps, prompts={"text": prompt}, report_to="none",
        batch_sampler=length_grouped_batches,
        use_cpu=(cfg.device == "cpu"), disable_tqdm=disable_tqdm)
    trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=dataset, loss=loss,
                                         callbacks=[*callbacks, no_final_checkpoint()])
    resume = resume_point(work, cfg, list(cfg.queries))
    result = trainer.train(resume_from_checkpoint=resume)
    after = _agreement(student, val_texts, val_targets, prompt, passages)
    student.max_seq_length = teacher.model.max_seq_length

    summary = {
        "teacher": cfg.teacher, "teacher_fingerprint": teacher.fingerprint(), "layers": keep,
        "teacher_layers": n_layers, "texts": {"train": len(train_texts), "validation": len(val_texts)},
        "steps": trainer.state.global_step, "train_loss": result.training_loss,
        "samples_per_second": result.metrics.get("train_samples_per_second"),
        "seconds": time.perf_counter() - start, "resumed": bool(resume),
        "validation": {"before": before, "after": after},
        "loss_history": [h for h in trainer.state.log_history if "loss" in h],
    }
    inputs = {q: file_sha256(q) for q in cfg.queries}
    with atomic_dir(out, overwrite=True) as tmp:
        student.save(str(tmp))
        save_config(cfg, tmp / "train_config.yaml")
        write_json_atomic(tmp / "meta.json", make_meta(
            "model", config=cfg.model_dump(mode="json"), inputs=inputs, base_model=cfg.teacher,
            **{QUERY_ENCODER_KEY: {"teacher": cfg.teacher, "teacher_fingerprint": teacher.fingerprint(),
                                   "layers": keep, "teacher_layers": n_layers}},
            training=summary))
        _model_card(tmp, cfg, summary)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return summary


def _model_card(folder: Path, cfg: QueryEncoderConfig, summary: dict) -> None:
    b, a = summary["validation"]["before"], summary["validation"]["after"]
    val = ""
    if a:
        val = (f"- On {summary['texts']['validation']} held-out texts, cosine to the teacher's query vectors: mean "
               f"{b['cosine_mean']:.4f} before training, {a['cosine_mean']:.4f} after (5th percentile "
               f"{a['cosine_p05']:.4f})")
        if "top10_overlap" in a:
            val += (f"; share of the teacher's top-10 corpus passages also in the student's: "
                    f"{b['top10_overlap']:.3f} before, {a['top10_overlap']:.3f} after")
        val += ".\n"
    text = f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
language: [ko]
base_model: {cfg.teacher}
---
# lextune query encoder ({len(summary['layers'])} of {summary['teacher_layers']} layers)

A query-side student of `{cfg.teacher}`: its layers {summary['layers']}, trained by lextune to reproduce the
teacher's {'ranking of the corpus passages and its ' if cfg.objective == 'ranking' else ''}query vectors, so that it searches an index of passages encoded by the
teacher. Use it for queries only: `BiEncoder("{cfg.teacher}", query_model="<this folder>")` or
`lextune serve --query-model <this folder>`. Passages must still be encoded by the teacher.

- Data: {summary['texts']['train']} query-like texts ({', '.join(cfg.queries) or 'no query files'}; corpus
  spans from `{cfg.corpus}`), the teacher's vectors as targets.
- {summary['steps']} steps, batch {cfg.batch_size}, lr {cfg.learning_rate}; {summary['seconds']:.0f} s wall.
{val}
Retrieval quality and speed against the teacher: docs/benchmarks.md of the lextune repository.
"""
    (folder / "README.md").write_text(text, encoding="utf-8")
