"""Shared CLI helpers: one place that turns lextune errors into clean exits."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.text import Text

from lextune.errors import LextuneError

# markup=False: messages carry paths, field names and legal text ("[본조신설 2020. 1. 1.]"), which Rich
# would read as its markup and mangle or choke on. The program's own styling goes through ``styled``.
console = Console(stderr=True, markup=False)
out = Console(markup=False)


def styled(label: str, style: str, rest: str = "") -> Text:
    """``label`` in ``style``, then ``rest`` as plain text (never read as markup)."""
    return Text.assemble((label, style), rest)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a LextuneError as one red line and exit 2, instead of a traceback."""
    try:
        yield
    except LextuneError as err:
        console.print(styled("error:", "bold red", f" {err}"), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from err


def setup_logging(verbose: bool = False) -> None:
    """Warnings by default, info with --verbose; quiet the libraries' own chatter."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("transformers", "sentence_transformers", "huggingface_hub", "httpx", "bm25s", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.suppress(Exception):
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()


@contextlib.contextmanager
def progress_bar(label: str = "encoding", enabled: bool = True) -> Iterator:
    """A transient progress bar (passages encoded, queries mined); yields ``update(done, total)``. When stderr
    is not a terminal (a log file), a line every 30 s instead: ``label: done/total``, rate and time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not console.is_terminal:
        from lextune.progress import every

        yield (every(30, lambda m: console.print(m, highlight=False, soft_wrap=True), label) if enabled
               else (lambda d, t: None))
        return
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not enabled) as bar:
        task = bar.add_task("", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def load_pipelines(index, specs: dict[str, str], progress=None) -> dict:
    """Name -> pipeline over ``index`` for each spec: ``bm25``, ``dense``, ``hybrid`` or a pipeline YAML
    file; the pipelines share their models, encoded corpora and first-stage runs."""
    from lextune.config import load_config
    from lextune.index import PipelineConfig, PipelineResources, build_pipeline
    from lextune.index.pipeline import MODES

    resources = PipelineResources(progress=progress)
    configs = {name: PipelineConfig.preset(v) if v in MODES else load_config(PipelineConfig, v)
               for name, v in specs.items()}
    return {name: build_pipeline(index, cfg, resources) for name, cfg in configs.items()}


def print_table(title: str, headers: list[str], rows: list[list]) -> None:
    """A Rich table on a terminal; piped or redirected (a CI log, ``| tee``), a Markdown table that is never
    cut to fit 80 columns. Cells are strings or Rich ``Text``; the first column is left-aligned."""
    from rich.table import Table

    if out.is_terminal:
        table = Table(title=title)
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        out.print(table)
        return
    from lextune.markdown import table as markdown_table

    plain = [[c.plain if isinstance(c, Text) else str(c) for c in row] for row in rows]
    out.print("\n".join([title, "", *markdown_table(headers, plain)]) + "\n", soft_wrap=True, highlight=False)


def ray_config(address: str | None, workers: int, cpus: float = 1.0):
    """``--ray local|auto|ADDRESS`` (and ``--ray-workers``, ``--ray-cpus``) as a RayConfig; None without ``--ray``."""
    if not address:
        return None
    from lextune.raycluster import RayConfig

    return RayConfig(address=None if address == "local" else address, num_workers=workers, cpus_per_worker=cpus)
