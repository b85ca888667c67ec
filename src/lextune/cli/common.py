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
