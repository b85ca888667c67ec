"""``lextune ingest``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lextune.cli.common import console, out, setup_logging, styled, user_errors


def ingest(
    sources: list[Path] = typer.Argument(..., help="Files, folders or .tar.gz archives: statutes (law.go.kr JSON, "
                                         "legalize-kr Markdown), precedents, JSONL/BEIR, and documents (PDF, DOCX, "
                                         "HWPX, HWP, HTML, Markdown, text)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder (chunks.jsonl, refs.jsonl, meta.json)."),
    unit: str | None = typer.Option(None, "--unit", help="article, paragraph (default) or item."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (IngestConfig, or its 'ingest' section)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config field: --set max_chars=800"),
    no_title: bool = typer.Option(False, "--no-title", help="Do not prepend the breadcrumb to the embedded text."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad file or line."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Read statutes, rules, precedents and documents into structure-aware chunks."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.ingest import IngestConfig
        from lextune.ingest import ingest as run_ingest

        section = "ingest" if config and _has_section(config, "ingest") else None
        cfg = load_config(IngestConfig, config, overrides, section=section, unit=unit,
                          strict=True if strict else None, prepend_title=False if no_title else None)
        if quiet:
            summary = run_ingest(sources, out_dir, cfg)
        else:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(SpinnerColumn(), TextColumn("{task.completed} files"), TimeElapsedColumn(),
                          TextColumn("{task.description}", style="dim", markup=False), console=console, transient=True) as bar:
                task = bar.add_task("", total=None)
                summary = run_ingest(sources, out_dir, cfg,
                                     progress=lambda name: bar.update(task, advance=1, description=name[-60:]))
    table = Table(title=f"ingested {summary.files} files -> {out_dir}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for kind, n in sorted(summary.documents.items()):
        table.add_row(f"documents: {kind}", str(n))
    table.add_row("articles", str(summary.articles))
    for kind, n in sorted(summary.chunks.items()):
        table.add_row(f"chunks: {kind}", str(n))
    table.add_row("deleted provisions dropped", str(summary.deleted_dropped))
    table.add_row("부칙/별표 kept apart (not chunked)", str(summary.blocks_skipped))
    if summary.duplicate_ids:
        table.add_row("duplicate chunk ids (kept first)", str(summary.duplicate_ids))
    if summary.citations:
        share = summary.citations_resolved / summary.citations
        table.add_row("references resolved", f"{summary.citations_resolved}/{summary.citations} ({share:.1%})")
        table.add_row("reference edges written", str(summary.refs))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    out.print(table)
    if summary.needs_ocr:
        pages = sum(len(p) for p in summary.needs_ocr.values())
        out.print(styled(f"{pages} pages in {len(summary.needs_ocr)} files have no text layer (need OCR; not "
                         "ingested):", "yellow", ""))
        for path, numbers in list(summary.needs_ocr.items())[:20]:
            out.print(f"  {path}: pages {', '.join(map(str, numbers[:30]))}{' …' if len(numbers) > 30 else ''}",
                      highlight=False, soft_wrap=True)
    if summary.errors:
        out.print(styled(f"{len(summary.errors)} problems", "yellow",
                         " (other files were ingested; --strict stops at the first):"))
        for e in summary.errors[:20]:
            out.print(f"  {e.path}{':' + e.position if e.position else ''}: {e.message}", highlight=False,
                      soft_wrap=True)


def _has_section(path: Path, name: str) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and isinstance(data.get(name), dict)
