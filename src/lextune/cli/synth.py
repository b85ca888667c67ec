"""``lextune synth``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lextune.cli.common import console, out, setup_logging, user_errors


def synth_cmd(
    chunks: Path = typer.Option(..., "--chunks", help="An ingest output folder."),
    out_dir: Path = typer.Option(..., "--out", "-o"),
    generator: list[str] = typer.Option([], "--generator", "-g", help=(
        "llm, title, ict, question, refs, precedents or holdings; repeatable.")),
    precedents: list[Path] = typer.Option([], "--precedents", help=(
        "Court decisions (law.go.kr precedent JSON/JSONL, gzip too) for -g precedents / -g holdings; repeatable.")),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML SynthConfig (or its 'synth' section)."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set llm.model=solar-pro2 --set max_chunks=500"),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint for --generator llm."),
    model: str | None = typer.Option(None, "--model", help="LLM model name for --generator llm."),
) -> None:
    """Generate synthetic queries (LLM or offline) and write them as a BEIR dataset split by document."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.synth import SynthConfig, synth

        values: dict = {}
        if generator:
            values["generators"] = generator
        if precedents:
            values["precedents"] = [str(p) for p in precedents]
        if base_url or model:
            values["llm"] = {k: v for k, v in (("base_url", base_url), ("model", model)) if v}
        cfg = load_config(SynthConfig, config, overrides, **values)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total)
                bar.update(tasks[name], completed=done)

            summary = synth(chunks, out_dir, cfg, progress=progress)
    table = Table(title=f"synthetic queries -> {out_dir}")
    for col in ("generator", "generated", "kept"):
        table.add_column(col, justify="right")
    for g, n in summary.generated.items():
        table.add_row(g, str(n), str(summary.kept.get(g, 0)))
    out.print(table)
    out.print(f"dropped: {summary.filters.dropped or 'none'}")
    for kind, s in summary.precedents.items():
        out.print(f"{kind}: {s['decisions']} decisions, {s['items']} items -> {s['queries']} queries, "
                  f"{s['resolved']}/{s['citations']} citations resolved; dropped: "
                  + ", ".join(f"{r} {n}" for r, n in s["dropped"].items())
                  + (f"; {s['bad_records']} bad records skipped" if s["bad_records"] else ""))
    out.print(f"train {summary.train_queries} queries ({summary.train_docs} documents), "
              f"dev {summary.dev_queries} queries ({summary.dev_docs} documents)")
    if summary.llm:
        s = summary.llm
        out.print(f"LLM: {s['requests']} requests ({s['retries']} retries, {s['cached']} cached), "
                  f"{s['prompt_tokens']}+{s['completion_tokens']} tokens, cost {s['cost']:.4f}, "
                  f"{s['failed_chunks']} chunks failed")
