"""Fine-tune a cross-encoder reranker on mined records with sentence-transformers' cross-encoder trainer.

Losses: listwise cross-entropy over 1 positive + n negatives (ListNet), pairwise (RankNet), or pointwise
binary cross-entropy. Negatives are re-sampled from each record's mined pool for every epoch, hard and
random mixed at a set ratio. Full fine-tuning, LoRA (the classification head is trained and saved with
the adapter), or QLoRA in 4 bits through bitsandbytes on CUDA.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lextune.artifacts import atomic_dir, file_sha256, make_meta, write_json_atomic
from lextune.config import save_config
from lextune.errors import ConfigError
from lextune.extras import optional_import
from lextune.schema import TrainingExample, read_training_examples
from lextune.train.biencoder import (
    LoraSettings,
    freeze_lower_layers,
    load_texts,
    no_final_checkpoint,
    peak_rss_gb,
    resume_point,
)
from lextune.train.losses import check_name, get_loss
from lextune.train.recipes import RERANKER_RECIPES, RecipeName, fill_recipe


class RerankerSettings(BaseModel):
    """How a reranker trains (what ``lextune run``'s ``train_reranker:`` section holds). Fields left out come from
    the device's recipe (``lextune.train.recipes``), then from the defaults."""

    model_config = ConfigDict(extra="forbid")

    recipe: RecipeName = Field("auto", description="Defaults for the fields left out: auto (by device), cpu, "
                               "gpu, or none (the plain field defaults).")
    loss: str = Field("listwise", description="A registered reranker loss (lextune.train.losses): listwise, "
                      "pairwise, pointwise.")
    n_negatives: int = Field(3, ge=1)
    random_ratio: float = Field(0.0, ge=0.0, le=1.0, description="Share of each epoch's negatives drawn at random.")
    epochs: int = Field(1, ge=1)
    max_steps: int = Field(-1, ge=-1, description="-1: as many as the epochs take.")
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    max_length: int = Field(256, ge=8)
    lora: LoraSettings | None = None
    qlora: bool = Field(False, description="4-bit base weights through bitsandbytes (CUDA only).")
    freeze_embeddings: bool = Field(True, description="Keep the word embeddings fixed (CPU recipe).")
    train_layers: int | None = Field(None, ge=1, description="Train only the top N layers (+ head); None: all.")
    seed: int = 13
    save_steps: int = Field(200, ge=1, description="Checkpoint every N steps; a killed run resumes from the last.")
    logging_steps: int = Field(10, ge=1)
    resume: bool = True
    device: str | None = None
    bf16: bool = False
    progress: bool = Field(True, description="Progress bar with loss and throughput.")

    @field_validator("loss")
    @classmethod
    def _registered_loss(cls, v: str) -> str:
        return check_name("reranker", v)

    @model_validator(mode="before")
    @classmethod
    def _recipe(cls, data: Any) -> Any:
        return fill_recipe(data, RERANKER_RECIPES)


class RerankerTrainConfig(RerankerSettings):
    """A reranker run (its settings, the base model and the files); saved beside the model."""

    base_model: str = "bundled:multilingual-e5-small"
    train_file: str
    corpus: str
    output_dir: str


def epoch_rows(records: list[TrainingExample], texts: dict[str, str], cfg: RerankerTrainConfig,
               epoch: int) -> list[dict]:
    """One epoch of (query, docs, labels) lists: the positive first, then freshly sampled negatives."""
    rng = random.Random(cfg.seed * 1000 + epoch)
    ids = list(texts)
    rows = []
    for rec in records:
        pos = [p for p in rec.pos if p in texts]
        hard = [n for n in rec.neg if n in texts]
        if not pos or not hard:
            continue
        n_rand = int(round(cfg.n_negatives * cfg.random_ratio))
        chosen = rng.sample(hard, min(len(hard), cfg.n_negatives - n_rand))
        banned = set(pos) | set(rec.neg)
        while len(chosen) < cfg.n_negatives and len(banned) < len(ids):
            c = rng.choice(ids)
            if c not in banned:
                chosen.append(c)
                banned.add(c)
        docs = [rec.pos_text or texts[rng.choice(pos)]] + [texts[c] for c in chosen]
        rows.append({"query": rec.query, "docs": docs, "labels": [1] + [0] * (len(docs) - 1)})
    return rows


def _dataset(rows: list[dict], loss: str):
    from datasets import Dataset

    if get_loss("reranker", loss).data == "pairs":
        flat = {"query": [], "doc": [], "label": []}
        for r in rows:
            for d, lab in zip(r["docs"], r["labels"], strict=True):
                flat["query"].append(r["query"])
                flat["doc"].append(d)
                flat["label"].append(float(lab))
        return Dataset.from_dict(flat)
    return Dataset.from_dict({"query": [r["query"] for r in rows], "docs": [r["docs"] for r in rows],
                              "labels": [r["labels"] for r in rows]})


def load_cross_encoder(cfg: RerankerTrainConfig):
    from sentence_transformers import CrossEncoder

    from lextune.models.resolve import resolve_model

    resolved = resolve_model(cfg.base_model)
    kwargs: dict = {}
    if cfg.qlora:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); on CPU use lora without qlora")
        optional_import("bitsandbytes", "gpu", "QLoRA")
        from transformers import BitsAndBytesConfig

        kwargs["model_kwargs"] = {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                                           bnb_4bit_compute_dtype=torch.bfloat16)}
        if cfg.lora is None:
            raise ConfigError("qlora trains a LoRA adapter: add a lora section")
    model = CrossEncoder(resolved.load_path, num_labels=1, max_length=cfg.max_length, device=cfg.device, **kwargs)
    if cfg.lora:
        from peft import LoraConfig, TaskType

        model.add_adapter(LoraConfig(
            task_type=TaskType.SEQ_CLS, r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules, modules_to_save=["classifier", "pooler"]))
    else:
        hf = model.model
        base = getattr(hf, hf.base_model_prefix, hf)
        if cfg.freeze_embeddings:
            for p in base.get_input_embeddings().parameters():
                p.requires_grad = False
        if cfg.train_layers:
            freeze_lower_layers(base, cfg.train_layers)
    return model, resolved


def train_reranker(cfg: RerankerTrainConfig, *, keep_model: bool = False,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Train a reranker and save it (model folder, or adapter with its head) into ``output_dir``.
    With ``keep_model`` the trained CrossEncoder is returned under ``summary["model"]`` (not saved).
    Progress: tqdm on a terminal, else a line a minute through ``progress`` (default: stderr)."""
    cross_encoder = optional_import("sentence_transformers.cross_encoder", "train", "training")
    CrossEncoderTrainer, CrossEncoderTrainingArguments = (cross_encoder.CrossEncoderTrainer,  # noqa: N806
                                                          cross_encoder.CrossEncoderTrainingArguments)
    start = time.perf_counter()
    texts = load_texts(cfg.corpus)
    records = read_training_examples(cfg.train_file)
    rows = [r for e in range(cfg.epochs) for r in epoch_rows(records, texts, cfg, e)]  # new negatives each epoch
    if not rows:
        raise ConfigError(f"{cfg.train_file}: no record with a positive and a negative in {cfg.corpus}")
    from transformers import set_seed

    from lextune.train.progress import training_progress

    set_seed(cfg.seed)  # the classification head (and LoRA) start from the seed: a rerun gives the same model
    model, resolved = load_cross_encoder(cfg)
    loss = get_loss("reranker", cfg.loss).build(model, cfg)
    out = Path(cfg.output_dir)
    ckpt_dir = out.with_name(f".{out.name}.checkpoints")
    disable_tqdm, callbacks = training_progress(cfg.progress, progress)
    args = CrossEncoderTrainingArguments(
        output_dir=str(ckpt_dir), num_train_epochs=1, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, seed=cfg.seed,
        logging_steps=cfg.logging_steps, report_to="none", save_steps=cfg.save_steps, save_total_limit=2,
        bf16=cfg.bf16, use_cpu=(cfg.device == "cpu"), disable_tqdm=disable_tqdm,
    )
    # The epochs' rows are drawn from the seed, so a resumed run sees the same rows in the same order.
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=_dataset(rows, cfg.loss), loss=loss,
                                  callbacks=[*callbacks, no_final_checkpoint()])
    resume = resume_point(ckpt_dir, cfg, [cfg.train_file])
    result = trainer.train(resume_from_checkpoint=resume)
    summary = {"rows": len(rows), "records": len(records), "steps": trainer.state.global_step,
               "train_loss": result.training_loss, "seconds": time.perf_counter() - start,
               "samples_per_second": result.metrics.get("train_samples_per_second"), "resumed": bool(resume),
               "peak_rss_gb": peak_rss_gb()}
    with atomic_dir(out, overwrite=True) as tmp:
        if cfg.lora:
            hf = model[0].auto_model if hasattr(model[0], "auto_model") else model.model
            hf.save_pretrained(str(tmp))  # adapter + the trained classification head (modules_to_save)
            model.tokenizer.save_pretrained(str(tmp))
            (tmp / "lextune_model.json").write_text(json.dumps({"base_spec": cfg.base_model, "kind": "cross-encoder"}),
                                                    encoding="utf-8")
        else:
            model.save_pretrained(str(tmp))
        save_config(cfg, tmp / "train_config.yaml")
        write_json_atomic(tmp / "meta.json", make_meta("reranker", config=cfg.model_dump(mode="json"),
                                                       inputs={cfg.train_file: file_sha256(cfg.train_file)},
                                                       base_path=resolved.load_path, training=summary))
    import shutil

    shutil.rmtree(ckpt_dir, ignore_errors=True)
    if keep_model:
        summary["model"] = model
    return summary


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Fold a LoRA adapter into its base and write a plain model folder (bi-encoder or cross-encoder)."""
    from peft import PeftModel

    from lextune.models.resolve import resolve_model

    adapter_dir = Path(adapter_dir)
    resolved = resolve_model(adapter_dir)
    if resolved.adapter is None:
        raise ConfigError(f"{adapter_dir} is not an adapter folder (no adapter_config.json)")
    task = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8")).get("task_type")
    with atomic_dir(out_dir, overwrite=True) as tmp:
        if task == "SEQ_CLS":
            from sentence_transformers import CrossEncoder

            model = CrossEncoder(resolved.load_path, num_labels=1, device="cpu")
            model[0].auto_model = PeftModel.from_pretrained(model[0].auto_model, str(adapter_dir)).merge_and_unload()
            model.save_pretrained(str(tmp))
        else:
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(resolved.load_path, device="cpu")
            st[0].auto_model = PeftModel.from_pretrained(st[0].auto_model, str(adapter_dir)).merge_and_unload()
            st.save(str(tmp))
        write_json_atomic(tmp / "meta.json", make_meta("model", config={"merged_from": str(adapter_dir),
                                                                        "base": resolved.load_path}))
    return Path(out_dir)
