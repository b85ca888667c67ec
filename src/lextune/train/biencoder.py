"""Fine-tune a bi-encoder on mined training records with sentence-transformers' trainer.

Loss: InfoNCE / multiple-negatives ranking over in-batch and mined hard negatives, with an explicit
temperature (``scale = 1 / temperature``), its cached (GradCache) variant for large effective
batches in small memory, or distillation from the scores the mining stage stored (MarginMSE, KL).
Full fine-tuning or LoRA (peft); word embeddings frozen by default (they are 96M of e5-small's 118M
parameters and the costliest part of a CPU step). Evaluation during training on a validation split
held out by source document, with early stopping on nDCG@10. The output folder loads with ``BiEncoder``
and plain sentence-transformers, and carries the training config, metrics and a model card.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lextune.artifacts import atomic_dir, file_sha256, make_meta, write_json_atomic
from lextune.config import save_config
from lextune.errors import ConfigError
from lextune.extras import optional_import
from lextune.schema import read_training_examples
from lextune.train.losses import check_name, get_loss
from lextune.train.recipes import BIENCODER_RECIPES, RecipeName, fill_recipe

log = logging.getLogger(__name__)


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "key", "value", "dense"])


class EvalDuringTraining(BaseModel):
    """Validation while training: a BEIR folder (``lextune synth`` output) and its held-out split."""

    model_config = ConfigDict(extra="forbid")

    data: str | None = Field(None, description="BEIR folder whose queries/qrels give the validation split "
                             "(in `lextune run`: the run's synthetic queries).")
    split: str = "dev"
    max_queries: int = Field(300, ge=1)
    corpus_size: int = Field(5000, ge=0, description="Gold passages plus this many random distractors.")
    steps: int = Field(50, ge=1, description="Evaluate (and checkpoint) every this many steps.")
    patience: int | None = Field(3, ge=1, description="Stop after this many evaluations without gain; None: never.")


class BiEncoderSettings(BaseModel):
    """How a bi-encoder trains (what ``lextune run``'s ``train_biencoder:`` section holds). Fields left out come
    from the device's recipe (``lextune.train.recipes``: the measured CPU recipe, or the GPU one), then from the
    defaults."""

    model_config = ConfigDict(extra="forbid")

    recipe: RecipeName = Field("auto", description="Defaults for the fields left out: auto (by device), cpu, "
                               "gpu, or none (the plain field defaults).")
    loss: str = Field("infonce", description="A registered bi-encoder loss (lextune.train.losses): infonce, "
                      "cached_infonce, margin_mse, kl.")
    temperature: float = Field(0.02, gt=0)
    n_negatives: int = Field(1, ge=0, description="Mined hard negatives per query (in-batch ones come free).")
    gather_across_devices: bool = Field(False, description="Multi-process runs (torchrun): in-batch negatives "
                                        "from every process's batch.")
    max_positives: int = Field(1, ge=1, description="Rows per query when it has several positives (one each).")
    freeze_embeddings: bool = Field(True, description="Keep the word embeddings fixed (CPU recipe; also less drift).")
    train_layers: int | None = Field(None, ge=1, description="Train only the top N transformer layers (CPU recipe: "
                                     "backward stops below them); None: all.")
    eval: EvalDuringTraining | None = None
    batch_size: int = Field(16, ge=1)
    mini_batch_size: int = Field(8, ge=1, description="cached_infonce only: the chunk that fits in memory.")
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1: as many as the epochs take.")
    learning_rate: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    max_seq_length: int = Field(128, ge=8)
    attention_dropout: float = Field(0.0, ge=0, lt=1, description="0 lets CPU attention use the fused kernel (see notes).")
    gradient_checkpointing: bool = False
    layer_cache_gb: float = Field(1.0, ge=0, description="With train_layers: memory for the frozen bottom's "
                                  "outputs, computed once per text and reused across steps; 0: off.")
    lora: LoraSettings | None = None
    merge_lora: bool = False
    bf16: bool = False
    seed: int = 13
    save_steps: int = Field(200, ge=1)
    logging_steps: int = Field(10, ge=1)
    resume: bool = True
    max_examples: int | None = Field(None, ge=1)
    device: str | None = None
    progress: bool = Field(True, description="Progress bar with loss and throughput.")

    @field_validator("loss")
    @classmethod
    def _registered_loss(cls, v: str) -> str:
        return check_name("biencoder", v)

    @model_validator(mode="before")
    @classmethod
    def _recipe(cls, data: Any) -> Any:
        return fill_recipe(data, BIENCODER_RECIPES)


class BiEncoderTrainConfig(BiEncoderSettings):
    """Everything a bi-encoder run needs (its settings, the base model and the files); saved beside the model."""

    base_model: str = "bundled:multilingual-e5-small"
    train_file: str
    corpus: str = Field(..., description="An index folder (docs.jsonl) or an ingest folder (chunks.jsonl).")
    output_dir: str


def load_texts(corpus: str | Path) -> dict[str, str]:
    """Passage texts by id from an index folder or an ingest (chunks) folder: what training examples point at."""
    from lextune.index.lexindex import is_index_folder, read_docs

    if is_index_folder(corpus):
        return {i: d["contents"] for i, d in read_docs(corpus).items()}
    from lextune.ingest import read_chunks

    return {c.id: c.contents for c in read_chunks(Path(corpus))}


def build_dataset(cfg: BiEncoderTrainConfig, texts: dict[str, str] | None = None):
    """Rows (anchor, positive, negative_1..n) from the mined records; texts resolved from the corpus."""
    Dataset = optional_import("datasets", "train", "training").Dataset  # noqa: N806
    texts = texts if texts is not None else load_texts(cfg.corpus)
    rng = random.Random(cfg.seed)
    rows: dict[str, list[str]] = {"anchor": [], "positive": []}
    for i in range(cfg.n_negatives):
        rows[f"negative_{i + 1}"] = []
    skipped = 0
    records = read_training_examples(cfg.train_file)
    rng.shuffle(records)
    data = get_loss("biencoder", cfg.loss).data
    distill = data in ("margins", "scores")
    labels: list[list[float]] = []
    for line_no, rec in enumerate(records, 1):
        if cfg.max_examples and len(rows["anchor"]) >= cfg.max_examples:
            break
        neg_scores, pos_scores = rec.neg_scores, rec.pos_scores
        negs = [(n, neg_scores[i] if i < len(neg_scores) else None) for i, n in enumerate(rec.neg) if n in texts]
        pos = [(p, pos_scores[i] if i < len(pos_scores) else None) for i, p in enumerate(rec.pos) if p in texts]
        if not pos or len(negs) < cfg.n_negatives:
            skipped += 1
            continue
        if distill and (any(s is None for _, s in pos) or any(s is None for _, s in negs[: cfg.n_negatives])):
            raise ConfigError(f"{cfg.train_file}: record {rec.query_id or line_no} has no pos_scores/neg_scores; "
                              f"loss {cfg.loss!r} distils from the scores that `lextune mine` stores")
        chosen = pos[: cfg.max_positives] if cfg.max_positives > 1 else [rng.choice(pos)]
        for j, (pid, pscore) in enumerate(chosen):
            rows["anchor"].append(rec.query)
            rows["positive"].append(rec.pos_text if (j == 0 and rec.pos_text) else texts[pid])
            for i in range(cfg.n_negatives):
                rows[f"negative_{i + 1}"].append(texts[negs[i][0]])
            if distill:
                scores = [pscore] + [s for _, s in negs[: cfg.n_negatives]]
                labels.append([scores[0] - s for s in scores[1:]] if data == "margins" else scores)
    if not rows["anchor"]:
        raise ConfigError(f"{cfg.train_file}: no usable training record (check --corpus and n_negatives)")
    if distill:
        if cfg.n_negatives < 1:
            raise ConfigError(f"loss {cfg.loss!r} needs n_negatives >= 1")
        rows["label"] = labels  # type: ignore[assignment]
    return Dataset.from_dict(rows), skipped


def build_evaluator(cfg: BiEncoderTrainConfig, texts: dict[str, str], template):
    """An InformationRetrievalEvaluator over the validation split: its gold passages plus random distractors."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from lextune.runs import load_beir

    ev = cfg.eval
    if ev is None or not ev.data:
        raise ConfigError("eval during training needs eval.data: a BEIR folder with a validation split")
    ds = load_beir(ev.data, split=ev.split)
    rng = random.Random(cfg.seed)
    qids = sorted(q for q in ds.qrels if q in ds.queries and any(d in texts for d in ds.qrels[q]))
    rng.shuffle(qids)
    qids = qids[: ev.max_queries]
    if not qids:
        raise ConfigError(f"{ev.data}: split {ev.split!r} has no query whose gold passage is in {cfg.corpus}")
    relevant = {q: {d for d, g in ds.qrels[q].items() if g > 0 and d in texts} for q in qids}
    gold = set().union(*relevant.values())
    others = [d for d in texts if d not in gold]
    pick = rng.sample(others, min(ev.corpus_size, len(others)))
    corpus = {d: texts[d] for d in sorted(gold) + pick}
    return InformationRetrievalEvaluator(
        queries={q: ds.queries[q] for q in qids}, corpus=corpus, relevant_docs=relevant, name="val",
        query_prompt=template.query, corpus_prompt=template.passage, batch_size=64, write_csv=False,
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 10], precision_recall_at_k=[10], map_at_k=[100])


def make_loss(model, cfg: BiEncoderTrainConfig):
    """The configured loss, built from its registry entry (lextune.train.losses)."""
    return get_loss("biencoder", cfg.loss).build(model, cfg)


def load_trainable(cfg: BiEncoderTrainConfig):
    """The base model as a SentenceTransformer ready for training (dropout, lengths, LoRA)."""
    from sentence_transformers import SentenceTransformer

    from lextune.models.resolve import resolve_model

    resolved = resolve_model(cfg.base_model)
    model = SentenceTransformer(resolved.load_path, device=cfg.device)
    if resolved.adapter:
        model.load_adapter(resolved.adapter, is_trainable=True)
    model.lextune_base_max_seq_length = model.max_seq_length  # restored before saving
    model.max_seq_length = cfg.max_seq_length
    hf = model[0].auto_model
    if cfg.freeze_embeddings and not cfg.lora:
        for p in hf.get_input_embeddings().parameters():
            p.requires_grad = False
    if cfg.train_layers and not cfg.lora:
        freeze_lower_layers(hf, cfg.train_layers)
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


def freeze_lower_layers(hf, keep: int) -> None:
    """Freeze all embeddings and every transformer layer below the top ``keep``."""
    layers = getattr(getattr(hf, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(f"train_layers: {type(hf).__name__} has no encoder.layer list to freeze")
    for module in [hf.embeddings, *list(layers)[: max(0, len(layers) - keep)]]:
        for p in module.parameters():
            p.requires_grad = False
        _keep_eval(module)


def _keep_eval(module) -> None:
    """A frozen module stays in eval mode (no dropout) even when the trainer calls ``model.train()``: it is a
    fixed feature extractor, and its outputs can then be reused across steps and models
    (``lextune.models.prefix_cache``)."""
    import types

    import torch

    module.eval()
    module.train = types.MethodType(lambda self, mode=True: torch.nn.Module.train(self, False), module)


def _training_args(cfg: BiEncoderTrainConfig, ckpt_dir: Path, prompts: dict[str, str], disable_tqdm: bool):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    return SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, bf16=cfg.bf16, seed=cfg.seed, save_total_limit=2,
        logging_steps=cfg.logging_steps, batch_sampler=BatchSamplers.NO_DUPLICATES, prompts=prompts,
        activation_checkpointing=cfg.gradient_checkpointing, report_to="none", dataloader_drop_last=False,
        use_cpu=(cfg.device == "cpu"), disable_tqdm=disable_tqdm,
        **({"save_steps": cfg.save_steps} | _eval_args(cfg)),
    )


def train_biencoder(cfg: BiEncoderTrainConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Train, save atomically into ``output_dir`` and return the run's summary. Progress: tqdm on a terminal,
    else a line a minute through ``progress`` (default: stderr)."""
    optional_import("sentence_transformers", "train", "training")
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import set_seed

    from lextune.models.prefix_cache import active, attach, recipe_cache
    from lextune.models.templates import template_from_prompts
    from lextune.train.progress import training_progress

    start = time.perf_counter()
    set_seed(cfg.seed)  # new weights (LoRA matrices) come from the seed: a rerun gives the same model
    model, resolved = load_trainable(cfg)
    texts = load_texts(cfg.corpus)
    dataset, skipped = build_dataset(cfg, texts)
    template = template_from_prompts(getattr(model, "prompts", None))
    evaluator = build_evaluator(cfg, texts, template) if cfg.eval else None
    prompts = {"anchor": template.query, "positive": template.passage}
    prompts.update({f"negative_{i + 1}": template.passage for i in range(cfg.n_negatives)})
    out = Path(cfg.output_dir)
    ckpt_dir = out.with_name(f".{out.name}.checkpoints")
    disable_tqdm, callbacks = training_progress(cfg.progress, progress)
    args = _training_args(cfg, ckpt_dir, prompts, disable_tqdm)
    callbacks.append(no_final_checkpoint())
    if cfg.eval and cfg.eval.patience:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.eval.patience))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=make_loss(model, cfg),
                                         evaluator=evaluator, callbacks=callbacks)
    resume = resume_point(ckpt_dir, cfg, [cfg.train_file])
    # Passages recur across steps: with the bottom layers frozen their outputs are computed once per text
    # (within `lextune run` the run's cache also holds those of the index and mining stages).
    own_cache = recipe_cache(cfg.train_layers, cfg.lora, cfg.layer_cache_gb) if active() is None else nullcontext()
    with own_cache, attach(model[0].auto_model):
        before = evaluator(model) if evaluator else None
        result = trainer.train(resume_from_checkpoint=resume)
        after = evaluator(model) if evaluator else None
    history = [h for h in trainer.state.log_history if "loss" in h]
    evals = [{"step": h["step"], "ndcg@10": h[f"eval_{VAL_METRIC}"]} for h in trainer.state.log_history
             if f"eval_{VAL_METRIC}" in h]
    summary = {"examples": len(dataset), "skipped_records": skipped, "steps": trainer.state.global_step,
               "train_loss": result.training_loss, "seconds": time.perf_counter() - start,
               "samples_per_second": result.metrics.get("train_samples_per_second"), "loss_history": history,
               "resumed": bool(resume), "peak_rss_gb": peak_rss_gb()}
    if evaluator is not None and after is not None:
        summary["validation"] = {"before_ndcg@10": before.get(VAL_METRIC) if before else None,
                                 "after_ndcg@10": after.get(VAL_METRIC), "history": evals,
                                 "best_step": _best_step(trainer), "stopped_early": trainer.state.global_step
                                 < (trainer.state.max_steps or 0)}
    model.max_seq_length = getattr(model, "lextune_base_max_seq_length", model.max_seq_length)
    summary["world_size"] = trainer.args.world_size
    if not trainer.is_world_process_zero():  # torchrun: one process writes the model
        return summary
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


VAL_METRIC = "val_cosine_ndcg@10"


def resume_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest whole checkpoint under ``ckpt_dir``, or None. The trainer writes ``trainer_state.json``
    last, so a run killed while saving leaves a folder without it, which is skipped (resuming from it
    would fail, or lose the optimizer state)."""
    whole = [p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()
             and p.name.split("-")[-1].isdigit()]
    return str(max(whole, key=lambda p: int(p.name.split("-")[-1]))) if whole else None


def resume_point(ckpt_dir: Path, cfg: BaseModel, inputs: list[str]) -> str | None:
    """The checkpoint a restarted run continues from: the newest whole one, and only if the checkpoints were
    written by a run of this same config on the same input files. Others (or all, with ``resume`` off)
    are removed, so a run never mixes in another config's weights or optimizer state."""
    import os
    import shutil

    ckpt_dir = Path(ckpt_dir)
    stamp = ckpt_dir / "lextune_run.json"
    want = {"config": cfg.model_dump(mode="json", exclude={"resume", "progress", "logging_steps", "device"}),
            "inputs": {p: file_sha256(p) for p in inputs}}
    same = stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == want
    usable = same and getattr(cfg, "resume", True)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: the first process tidies, the others only read
        return resume_checkpoint(ckpt_dir) if usable else None
    if ckpt_dir.exists() and not usable:
        if resume_checkpoint(ckpt_dir):
            log.warning("%s: checkpoints of another config or input, or resume off: starting afresh", ckpt_dir)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamp, want)
    return resume_checkpoint(ckpt_dir)


def no_final_checkpoint():
    """A trainer callback that drops the checkpoint the trainer writes after the last step when that step is
    not a scheduled save: the finished model is written right after, so that copy (model + optimizer state,
    ~1.4 GB for e5-small trained fully) only costs disk and time. A crash before the model is written
    resumes from the last scheduled checkpoint."""
    from transformers import TrainerCallback

    class NoFinalCheckpoint(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            every = max(1, int(state.save_steps or args.save_steps))
            if state.global_step >= state.max_steps and state.global_step % every:
                control.should_save = False
            return control

    return NoFinalCheckpoint()


def _eval_args(cfg: BiEncoderTrainConfig) -> dict:
    if not cfg.eval:
        return {}
    return {"eval_strategy": "steps", "eval_steps": cfg.eval.steps, "save_steps": cfg.eval.steps,
            "load_best_model_at_end": True, "metric_for_best_model": f"eval_{VAL_METRIC}", "greater_is_better": True}


def _best_step(trainer) -> int | None:
    ckpt = trainer.state.best_model_checkpoint
    return int(ckpt.rsplit("-", 1)[1]) if ckpt else None


def peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _model_card(folder: Path, cfg: BiEncoderTrainConfig, summary: dict) -> None:
    kind = f"LoRA r={cfg.lora.r} alpha={cfg.lora.alpha} on {', '.join(cfg.lora.target_modules)}" if cfg.lora else "full fine-tuning"
    text = f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
language: [ko]
base_model: {cfg.base_model}
---
# lextune bi-encoder

Fine-tuned from `{cfg.base_model}` by lextune ({kind}; recipe `{cfg.recipe}`{_layers_note(cfg)}).

- Data: `{cfg.train_file}` ({summary['examples']} examples; {cfg.n_negatives} mined hard negative(s) per query
  plus in-batch negatives), texts from `{cfg.corpus}`.
- Loss: {cfg.loss}, temperature {cfg.temperature} (scale {1 / cfg.temperature:g}); batch {cfg.batch_size};
  lr {cfg.learning_rate}; max length {cfg.max_seq_length}; {cfg.epochs} epoch(s), {summary['steps']} steps.
- Training loss {summary['train_loss']:.4f}; {summary['seconds']:.0f} s wall.
{_validation_line(summary)}
Scores: see the evaluation that produced this model's numbers (`lextune eval`), recorded in
docs/benchmarks.md of the lextune repository.
"""
    (folder / "README.md").write_text(text, encoding="utf-8")


def _layers_note(cfg: BiEncoderTrainConfig) -> str:
    return f", top {cfg.train_layers} layers trained" if cfg.train_layers and not cfg.lora else ""


def _validation_line(summary: dict) -> str:
    v = summary.get("validation")
    if not v:
        return ""
    return (f"- Validation (synthetic split held out by source document): nDCG@10 {v['before_ndcg@10']:.4f} before, "
            f"{v['after_ndcg@10']:.4f} after (best step {v['best_step']}).\n")
