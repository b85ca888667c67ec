"""Entry point of the ``lextune`` command."""

from __future__ import annotations

import typer

from lextune import __version__
from lextune.cli import demo as demo_cmd
from lextune.cli import embed as embed_cmd
from lextune.cli import eval as eval_cmd
from lextune.cli import index as index_cmd
from lextune.cli import ingest as ingest_cmd
from lextune.cli import mine as mine_cmd
from lextune.cli import models as models_cmd
from lextune.cli import run as run_cmd
from lextune.cli import serve as serve_cmd
from lextune.cli import synth as synth_cmd
from lextune.cli import train as train_cmd

app = typer.Typer(
    name="lextune",
    help="Turn Korean legal and financial documents into a better retriever, without labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models_cmd.app, name="models")
app.add_typer(index_cmd.app, name="index")
app.add_typer(train_cmd.app, name="train")
app.command("search")(index_cmd.search)
app.command("ingest")(ingest_cmd.ingest)
app.command("synth")(synth_cmd.synth_cmd)
app.command("mine")(mine_cmd.mine_cmd)
app.command("embed")(embed_cmd.embed)
app.command("eval")(eval_cmd.eval_cmd)
app.command("demo")(demo_cmd.demo)
app.command("serve")(serve_cmd.serve_cmd)
app.command("label")(serve_cmd.label_cmd)
app.command("run")(run_cmd.run_cmd)
app.command("targeted")(run_cmd.targeted_cmd)


@app.command()
def version() -> None:
    """Print lextune's version."""
    typer.echo(__version__)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # python -m lextune.cli.main (torchrun -m ...)
    main()
