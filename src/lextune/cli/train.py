"""``lextune train biencoder``."""

from __future__ import annotations

from pathlib import Path

import typer

from lextune.cli.common import out, setup_logging, user_errors

app = typer.Typer(help="Fine-tune embedders (and rerankers).", no_args_is_help=True)


@app.command("biencoder")
def biencoder(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML BiEncoderTrainConfig (or its 'train' section)."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set learning_rate=1e-5 --set lora.r=8"),
    train_file: str | None = typer.Option(None, "--train", help="train.jsonl from `lextune mine`."),
    corpus: str | None = typer.Option(None, "--corpus", help="Index or ingest folder holding the passage texts."),
    output_dir: str | None = typer.Option(None, "--out", "-o"),
    base_model: str | None = typer.Option(None, "--model", "-m"),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter instead of all weights."),
) -> None:
    """Fine-tune a bi-encoder on mined training records (InfoNCE, full or LoRA)."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.train import BiEncoderTrainConfig, train_biencoder

        values = {"train_file": train_file, "corpus": corpus, "output_dir": output_dir, "base_model": base_model}
        if lora:
            values["lora"] = {}
        section = None
        if config is not None:
            import yaml

            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
            section = "train" if isinstance(data, dict) and isinstance(data.get("train"), dict) else None
        cfg = load_config(BiEncoderTrainConfig, config, overrides, section=section, **values)
        summary = train_biencoder(cfg)
    out.print(f"trained {summary['steps']} steps on {summary['examples']} examples in {summary['seconds']:.0f} s "
              f"(loss {summary['train_loss']:.4f}, {summary['samples_per_second'] or 0:.2f} samples/s, "
              f"recipe {cfg.recipe}) -> {cfg.output_dir}")


@app.command("query-encoder")
def query_encoder(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML QueryEncoderConfig."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set layers=4 --set epochs=3"),
    teacher: str | None = typer.Option(None, "--teacher", "-m", help="The model whose index the student queries."),
    queries: list[str] = typer.Option([], "--queries", "-q", help="JSONL with a 'text' field (synth queries.jsonl)."),
    corpus: str | None = typer.Option(None, "--corpus", help="Index or ingest folder: the passages the student learns "
                                      "to rank as the teacher does (an index by the teacher gives their vectors), "
                                      "and spans of their sentences as extra training texts."),
    layers: int | None = typer.Option(None, "--layers", help="Transformer layers the student keeps (default 6)."),
    output_dir: str | None = typer.Option(None, "--out", "-o"),
) -> None:
    """Distil a shallower query encoder from a bi-encoder; it searches the teacher's index, faster."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.train import QueryEncoderConfig, distill_query_encoder

        values = {"teacher": teacher, "queries": queries or None, "corpus": corpus, "layers": layers,
                  "output_dir": output_dir}
        cfg = load_config(QueryEncoderConfig, config, overrides, **values)
        summary = distill_query_encoder(cfg)
    b, a = summary["validation"]["before"], summary["validation"]["after"]
    val = f"; cosine to the teacher {b['cosine_mean']:.4f} -> {a['cosine_mean']:.4f}" if a else ""
    if a and "top10_overlap" in a:
        val += f", top-10 overlap {b['top10_overlap']:.3f} -> {a['top10_overlap']:.3f}"
    out.print(f"distilled {len(summary['layers'])} of {summary['teacher_layers']} layers {summary['layers']}: "
              f"{summary['steps']} steps on {summary['texts']['train']} texts in {summary['seconds']:.0f} s{val} "
              f"-> {cfg.output_dir}")


@app.command("reranker")
def reranker(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML RerankerTrainConfig."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set loss=pairwise --set n_negatives=7"),
    train_file: str | None = typer.Option(None, "--train"),
    corpus: str | None = typer.Option(None, "--corpus"),
    output_dir: str | None = typer.Option(None, "--out", "-o"),
    base_model: str | None = typer.Option(None, "--model", "-m"),
    lora: bool = typer.Option(False, "--lora"),
    qlora: bool = typer.Option(False, "--qlora", help="4-bit base through bitsandbytes (CUDA only)."),
) -> None:
    """Fine-tune a cross-encoder reranker (listwise, pairwise or pointwise; full, LoRA or QLoRA)."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.train import RerankerTrainConfig, train_reranker

        values = {"train_file": train_file, "corpus": corpus, "output_dir": output_dir, "base_model": base_model}
        if lora or qlora:
            values["lora"] = {}
        if qlora:
            values["qlora"] = True
        cfg = load_config(RerankerTrainConfig, config, overrides, **values)
        summary = train_reranker(cfg)
    out.print(f"trained reranker: {summary['steps']} steps on {summary['rows']} lists in {summary['seconds']:.0f} s "
              f"(loss {summary['train_loss']:.4f}, recipe {cfg.recipe}) -> {cfg.output_dir}")
