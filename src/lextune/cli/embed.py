"""``lextune embed``."""

from __future__ import annotations

from pathlib import Path

import typer

from lextune.cli.common import out, ray_config, setup_logging, styled, user_errors


def embed(
    input: Path = typer.Option(..., "--input", "-i", help="JSONL file with one record a line."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    model: str = typer.Option("bundled:multilingual-e5-small", "--model", "-m", help="Model spec."),
    type_: str = typer.Option("passage", "--type", "-t", help="query or passage."),
    format_: str = typer.Option("npz", "--format", help="npz ({prefix}.npz) or npy ({prefix}_ids.npy + {prefix}_embeds.npy)."),
    prefix: str = typer.Option("embeddings", "--prefix", help="File name prefix of the outputs."),
    id_field: str = typer.Option("id", "--id-field"),
    text_field: str = typer.Option("text", "--text-field"),
    batch_size: int = typer.Option(32, "--batch-size"),
    part_size: int = typer.Option(1024, "--part-size", help="Rows per resumable part."),
    max_seq_length: int | None = typer.Option(None, "--max-seq-length", help="Token limit of this side."),
    long_passages: str = typer.Option("truncate", "--long-passages", help="truncate or window."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip and count bad lines instead of stopping."),
    device: str | None = typer.Option(None, "--device"),
    ray: str | None = typer.Option(None, "--ray", help="Encode on Ray: 'local' (a cluster started for the job), "
                                   "'auto' (this machine's cluster) or an address (ray://host:10001)."),
    ray_workers: int = typer.Option(2, "--ray-workers", help="Encoder actors on Ray (each loads the model once)."),
    ray_cpus: float = typer.Option(1.0, "--ray-cpus", help="CPUs per Ray actor."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Embed queries or passages from a JSONL file (resumes after a crash)."""
    setup_logging(verbose)
    with user_errors():
        from lextune.models.biencoder import BiEncoder
        from lextune.models.embed import embed_file

        limit = {"query_max_seq_length": max_seq_length} if type_ == "query" else {"passage_max_seq_length": max_seq_length}
        encoder = BiEncoder(model, device=device, batch_size=batch_size, long_passages=long_passages, **limit)  # type: ignore[arg-type]
        res = embed_file(
            encoder, input, out_dir, side=type_, out_format=format_, prefix=prefix,  # type: ignore[arg-type]
            id_field=id_field, text_field=text_field, skip_bad=skip_bad, batch_size=batch_size,
            part_size=part_size, progress=not quiet,
            ray=ray_config(ray, ray_workers, ray_cpus),
        )
    out.print(f"embedded {res.rows} {type_} texts -> {out_dir} ({', '.join(res.files)}; dim {res.dimension})")
    if res.resumed_parts:
        out.print(f"resumed: {res.resumed_parts} parts were already done, {res.encoded_parts} encoded now")
    if res.skipped:
        out.print(f"skipped {res.skipped} bad lines: {res.skip_reasons}")
    if res.duplicate_ids:
        out.print(styled("warning:", "yellow", f" {res.duplicate_ids} duplicate ids"))
    if res.truncated:
        out.print(styled("warning:", "yellow", f" {res.truncated} texts were longer than the token limit and truncated"))
