"""``lextune demo``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lextune.cli.common import out, setup_logging, user_errors


def demo(
    out_dir: Path = typer.Option(Path("lextune-demo"), "--out", "-o", help="Working folder."),
    model: str = typer.Option("bundled:multilingual-e5-small", "--model", "-m"),
    k: int = typer.Option(3, "-k", help="Results per question."),
) -> None:
    """Run the bundled demo offline: embed the shipped statutes and answer sample questions."""
    setup_logging()
    with user_errors():
        from lextune.demo import run_demo

        hits = run_demo(out_dir, model=model, k=k)
    table = Table(title="lextune demo: dense search over the bundled statutes", show_lines=True)
    for col in ("question", "#", "score", "paragraph"):
        table.add_column(col)
    for h in hits:
        snippet = h.text.replace("\n", " ")
        table.add_row(h.question if h.rank == 1 else "", str(h.rank), f"{h.score:.3f}",
                      f"[dim]{h.chunk_id}[/] {snippet[:160]}")
    out.print(table)
