"""Fine-tune a bi-encoder on mined training records with sentence-transformers' trainer.

Loss: InfoNCE / multiple-negatives ranking over in-batch and mined hard negatives, with an explicit
temperature (``scale = 1 / temperature``), or its cached (GradCache) variant for large effective
batches in small memory. Full fine-tuning or LoRA (peft). The output folder loads with ``BiEncoder``
and plain sentence-transformers, and carries the training config, metrics and a model card.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lextune.artifacts import atomic_dir, file_sha256, make_meta, write_json_atomic
from lextune.config import save_config
from lextune.errors import ConfigError, MissingExtraError

log = logging.getLogger(__name__)


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = Field(default_factory=lambda: ["query", "key", "value", "dense"])


class BiEncoderTrainConfig(BaseModel):
    """Everything a bi-encoder run needs; saved beside the model. Defaults are the measured CPU recipe."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = "bundled:multilingual-e5-small"
    train_file: str
    corpus: str = Field(..., description="An index folder (docs.jsonl) or an ingest folder (chunks.jsonl).")
    output_dir: str
    loss: Literal["infonce", "cached_infonce"] = "infonce"
    temperature: float = Field(0.02, gt=0)
    n_negatives: int = Field(1, ge=0, description="Mined hard negatives per query (in-batch ones come free).")
    batch_size: int = 16
    mini_batch_size: int = Field(8, description="cached_infonce only: the chunk that fits in memory.")
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int = 128
    attention_dropout: float = Field(0.0, description="0 lets CPU attention use the fused kernel (see notes).")
    gradient_checkpointing: bool = False
    lora: LoraSettings | None = None
    merge_lora: bool = False
    bf16: bool = False
    seed: int = 13
    save_steps: int = 200
    logging_steps: int = 10
    resume: bool = True
    max_examples: int | None = None
    device: str | None = None


def _load_texts(corpus: str) -> dict[str, str]:
    p = Path(corpus)
    if (p / "docs.jsonl").is_file():
        out = {}
        with open(p / "docs.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                out[d["id"]] = d["contents"]
        return out
    from lextune.ingest import read_chunks

    return {c.id: c.contents for c in read_chunks(p)}


def build_dataset(cfg: BiEncoderTrainConfig):
    """Rows (anchor, positive, negative_1..n) from the mined records; texts resolved from the corpus."""
    try:
        from datasets import Dataset
    except ImportError as exc:
        raise MissingExtraError('training needs datasets: pip install "lextune[train]"') from exc
    texts = _load_texts(cfg.corpus)
    rng = random.Random(cfg.seed)
    rows: dict[str, list[str]] = {"anchor": [], "positive": []}
    for i in range(cfg.n_negatives):
        rows[f"negative_{i + 1}"] = []
    skipped = 0
    with open(cfg.train_file, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    rng.shuffle(records)
    for rec in records:
        if cfg.max_examples and len(rows["anchor"]) >= cfg.max_examples:
            break
        negs = [n for n in rec.get("neg", []) if n in texts]
        pos = [p for p in rec.get("pos", []) if p in texts]
        if not pos or len(negs) < cfg.n_negatives:
            skipped += 1
            continue
        rows["anchor"].append(rec["query"])
        rows["positive"].append(rec.get("pos_text") or texts[rng.choice(pos)])
        for i in range(cfg.n_negatives):
            rows[f"negative_{i + 1}"].append(texts[negs[i]])
    if not rows["anchor"]:
        raise ConfigError(f"{cfg.train_file}: no usable training record (check --corpus and n_negatives)")
    return Dataset.from_dict(rows), skipped


def make_loss(model, cfg: BiEncoderTrainConfig):
    """InfoNCE with scale = 1 / temperature (a peer once shipped the inverse)."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    scale = 1.0 / cfg.temperature
    if cfg.loss == "cached_infonce":
        return CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=cfg.mini_batch_size)
    return MultipleNegativesRankingLoss(model, scale=scale)


def load_trainable(cfg: BiEncoderTrainConfig):
    """The base model as a SentenceTransformer ready for training (dropout, lengths, LoRA)."""
    from sentence_transformers import SentenceTransformer

    from lextune.models.resolve import resolve_model

    resolved = resolve_model(cfg.base_model)
    model = SentenceTransformer(resolved.load_path, device=cfg.device)
    if resolved.adapter:
        model.load_adapter(resolved.adapter, is_trainable=True)
    model.max_seq_length = cfg.max_seq_length
    hf = model[0].auto_model
    if hasattr(hf.config, "attention_probs_dropout_prob"):
        hf.config.attention_probs_dropout_prob = cfg.attention_dropout
        for module in hf.modules():
            if module.__class__.__name__.endswith("SelfAttention") and hasattr(module, "dropout"):
                module.dropout.p = cfg.attention_dropout
    if cfg.lora and not resolved.adapter:
        from peft import LoraConfig

        model.add_adapter(LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                     target_modules=cfg.lora.target_modules))
    return model, resolved


def train_biencoder(cfg: BiEncoderTrainConfig) -> dict:
    """Train, save atomically into ``output_dir`` and return the run's summary."""
    try:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        from sentence_transformers.base.sampler import BatchSamplers
    except ImportError as exc:
        raise MissingExtraError('training needs sentence-transformers: pip install "lextune[train]"') from exc
    from lextune.models.templates import template_from_prompts

    start = time.perf_counter()
    model, resolved = load_trainable(cfg)
    dataset, skipped = build_dataset(cfg)
    template = template_from_prompts(getattr(model, "prompts", None))
    prompts = {"anchor": template.query, "positive": template.passage}
    prompts.update({f"negative_{i + 1}": template.passage for i in range(cfg.n_negatives)})
    out = Path(cfg.output_dir)
    ckpt_dir = out.with_name(f".{out.name}.checkpoints")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, bf16=cfg.bf16, seed=cfg.seed, save_steps=cfg.save_steps, save_total_limit=2,
        logging_steps=cfg.logging_steps, batch_sampler=BatchSamplers.NO_DUPLICATES, prompts=prompts,
        gradient_checkpointing=cfg.gradient_checkpointing, report_to="none", dataloader_drop_last=False,
        use_cpu=(cfg.device == "cpu"),
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=make_loss(model, cfg))
    resume = cfg.resume and ckpt_dir.is_dir() and any(ckpt_dir.glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    history = [h for h in trainer.state.log_history if "loss" in h]
    summary = {"examples": len(dataset), "skipped_records": skipped, "steps": trainer.state.global_step,
               "train_loss": result.training_loss, "seconds": time.perf_counter() - start,
               "samples_per_second": result.metrics.get("train_samples_per_second"), "loss_history": history,
               "resumed": bool(resume)}
    with atomic_dir(out, overwrite=True) as tmp:
        if cfg.lora and cfg.merge_lora:
            merged = model[0].auto_model.merge_and_unload()
            model[0].auto_model = merged
        if cfg.lora and not cfg.merge_lora:
            model[0].auto_model.save_pretrained(str(tmp))  # adapter_config.json + adapter weights
            (tmp / "lextune_model.json").write_text(json.dumps({"base_spec": cfg.base_model}), encoding="utf-8")
        else:
            model.save(str(tmp))
        save_config(cfg, tmp / "train_config.yaml")
        meta = make_meta("model", config=cfg.model_dump(mode="json"),
                         inputs={cfg.train_file: file_sha256(cfg.train_file)}, base_model=cfg.base_model,
                         base_path=resolved.load_path, training=summary)
        write_json_atomic(tmp / "meta.json", meta)
        _model_card(tmp, cfg, summary)
    import shutil

    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return summary


def _model_card(folder: Path, cfg: BiEncoderTrainConfig, summary: dict) -> None:
    kind = f"LoRA r={cfg.lora.r} alpha={cfg.lora.alpha} on {', '.join(cfg.lora.target_modules)}" if cfg.lora else "full fine-tuning"
    text = f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
language: [ko]
base_model: {cfg.base_model}
---
# lextune bi-encoder

Fine-tuned from `{cfg.base_model}` by lextune ({kind}).

- Data: `{cfg.train_file}` ({summary['examples']} examples; {cfg.n_negatives} mined hard negative(s) per query
  plus in-batch negatives), texts from `{cfg.corpus}`.
- Loss: {cfg.loss}, temperature {cfg.temperature} (scale {1 / cfg.temperature:g}); batch {cfg.batch_size};
  lr {cfg.learning_rate}; max length {cfg.max_seq_length}; {cfg.epochs} epoch(s), {summary['steps']} steps.
- Training loss {summary['train_loss']:.4f}; {summary['seconds']:.0f} s wall.

Scores: see the evaluation that produced this model's numbers (`lextune eval`), recorded in
docs/benchmarks.md of the lextune repository.
"""
    (folder / "README.md").write_text(text, encoding="utf-8")
