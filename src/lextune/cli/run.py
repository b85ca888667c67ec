"""``lextune run`` and ``lextune targeted``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from lextune.cli.common import console, out, print_table, setup_logging, styled, user_errors


def print_stages(result) -> None:
    rows = []
    for stage, r in result.stages.items():
        secs = r.get("seconds")
        rows.append([stage, r["status"], f"{secs:.0f}" if isinstance(secs, int | float) else ""])
    print_table(f"lextune run: {result.run_dir}", ["stage", "status", "seconds"], rows)


def print_comparison(comparison: dict | None) -> None:
    if not comparison:
        return
    from lextune.pipeline.compare import HEADLINE

    for name, d in comparison["datasets"].items():
        best = {m: max(s.get(m, 0) for s in d["systems"].values()) for m in HEADLINE}
        rows = [[s, *[(Text(f"{m[x]:.3f}", style="bold") if m.get(x) == best[x] else f"{m.get(x, 0):.3f}")
                      for x in HEADLINE]] for s, m in d["systems"].items()]
        print_table(f"{name} ({d['queries']} queries)", ["system", *HEADLINE], rows)
        if groups := d.get("by_generator"):
            rows = [[s, *[f"{gd['systems'][s].get('ndcg@10', 0):.3f}" for gd in groups.values()]] for s in d["systems"]]
            print_table(f"{name}: nDCG@10 by query generator",
                        ["system", *[f"{g} ({gd['queries']})" for g, gd in groups.items()]], rows)


def run_cmd(
    config: Path = typer.Argument(..., help="pipeline.yaml (RunConfig)."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set train_biencoder.max_steps=50"),
    from_stage: str | None = typer.Option(None, "--from", help="Run this stage and the later ones again."),
    until: str | None = typer.Option(None, "--until", help="Stop after this stage."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Overrides run_dir of the config."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run ingest -> synth -> index -> mine -> train -> eval -> targeted from one YAML file; unchanged
    stages are reused, a crashed run continues."""
    setup_logging(verbose)
    with user_errors():
        from lextune.config import load_config
        from lextune.pipeline import RunConfig, run_pipeline

        cfg = load_config(RunConfig, config, overrides, run_dir=str(run_dir) if run_dir else None)
        result = run_pipeline(cfg, from_stage=from_stage, until=until,
                              progress=lambda stage, msg: console.print(styled(stage, "cyan", f" {msg}"), highlight=False))
    print_stages(result)
    print_comparison(result.comparison)
    out.print(f"manifest: {result.run_dir / 'manifest.json'}")


def targeted_cmd(
    model: str = typer.Option(..., "--model", "-m", help="The tuned bi-encoder (folder or adapter) to continue."),
    index_dir: Path = typer.Option(..., "--index", "-i", help="Index over the chunks (lextune index build --chunks)."),
    queries: Path = typer.Option(..., "--queries", "-q", help="BEIR folder with a labelled dev split (lextune synth)."),
    train_file: Path = typer.Option(..., "--train", help="The earlier train.jsonl (replayed)."),
    out_dir: Path = typer.Option(..., "--out", "-o"),
    chunks: Path | None = typer.Option(None, "--chunks", help="Ingest folder (default: the index's source)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML with 'targeted' and 'train_biencoder' sections."),
    overrides: list[str] = typer.Option([], "--set", help="TargetedConfig fields, e.g. --set queries_per_gold=5"),
) -> None:
    """The failure-driven pass alone: new queries around missed golds, harder negatives, continued training,
    before/after on a split the targets were not chosen from."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.pipeline import TargetedConfig
        from lextune.pipeline.targeted import run_targeted
        from lextune.train.biencoder import BiEncoderTrainConfig

        tcfg = load_config(TargetedConfig, config, overrides, section="targeted" if config else None)
        train = load_config(BiEncoderTrainConfig, config, [], section="train_biencoder" if config else None,
                            base_model=model, train_file=str(train_file), corpus=str(index_dir),
                            output_dir=str(out_dir / "model"))
        report = run_targeted(tcfg, model=model, index_dir=index_dir, synth_dir=queries, train_file=train_file,
                              out_dir=out_dir, train_config=train, chunks_dir=chunks,
                              progress=lambda m: console.print(styled("targeted", "cyan", f" {m}"), highlight=False))
    from lextune.pipeline.targeted import targeted_markdown

    out.print(targeted_markdown(report))
