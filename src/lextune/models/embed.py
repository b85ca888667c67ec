"""Embed a JSONL file of queries or passages into ``.npz`` / ``.npy``, resumable after a crash.

Texts are sorted by length once (so batches pad little), encoded in parts of ``part_size`` rows, and
each finished part is saved atomically under ``OUT/.parts-<key>/``. A rerun with the same input,
model and settings skips the parts already on disk. The final files and ``meta.json`` are written
last, through temporary files and renames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from lextune.artifacts import atomic_file, file_sha256, make_meta, write_json_atomic
from lextune.errors import ConfigError, InputFormatError
from lextune.jsonl import ReadReport, iter_jsonl, require_str
from lextune.raycluster import RayConfig

log = logging.getLogger(__name__)

Side = Literal["query", "passage"]
OutFormat = Literal["npz", "npy"]


@dataclass
class EmbedResult:
    """Summary of one ``embed_file`` call."""

    rows: int
    dimension: int
    files: list[str]
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    duplicate_ids: int = 0
    resumed_parts: int = 0
    encoded_parts: int = 0
    truncated: int = 0


def read_texts(path: str | Path, *, id_field: str = "id", text_field: str = "text",
               skip_bad: bool = False) -> tuple[list[str], list[str], ReadReport]:
    """Ids and texts of a JSONL file; bad lines raise (or are counted with ``skip_bad``)."""
    ids: list[str] = []
    texts: list[str] = []
    report = ReadReport()
    for lineno, obj in iter_jsonl(path, skip_bad=skip_bad, report=report):
        try:
            rid = require_str(obj, id_field, path=str(path), line=lineno, allow_number=True)
            text = require_str(obj, text_field, path=str(path), line=lineno)
        except InputFormatError as err:
            if not skip_bad:
                raise
            report.read -= 1
            report.skip(err)
            continue
        ids.append(rid)
        texts.append(text)
    return ids, texts, report


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_file(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def part_file(parts_dir: Path, part: int) -> Path:
    return parts_dir / f"part-{part:05d}.npy"


def encode_part(encoder, texts: list[str], side: Side, parts_dir: Path, part: int, batch_size: int) -> np.ndarray:
    """Encode one part and write it atomically as its part file (here or on a Ray worker)."""
    encode = encoder.encode_queries if side == "query" else encoder.encode_passages
    arr = encode(texts, batch_size=batch_size).astype(np.float32)
    _save_npy_atomic(part_file(parts_dir, part), arr)
    return arr


def _encode_parts(encoder, parts: list[list[str]], parts_dir: Path, side: Side, dim: int, batch_size: int, bar,
                  ray: RayConfig | None = None) -> tuple[list[np.ndarray], int, int]:
    """Each part's vectors: read back when a finished part file is on disk, else encoded (here, or on Ray) and
    saved atomically. Returns the parts' arrays and how many were resumed and encoded."""
    arrays: dict[int, np.ndarray] = {}
    for p, batch in enumerate(parts):
        if part_file(parts_dir, p).is_file():
            arr = np.load(part_file(parts_dir, p))
            if arr.shape == (len(batch), dim):
                arrays[p] = arr
                bar.advance(len(batch))
    resumed = len(arrays)
    todo = [p for p in range(len(parts)) if p not in arrays]
    if ray is not None:
        from lextune.raycluster import encode_parts_on_ray

        encode_parts_on_ray(encoder.init_args, [(p, parts[p]) for p in todo], parts_dir, side, batch_size, ray,
                            lambda _part, rows: bar.advance(rows))
        arrays.update({p: np.load(part_file(parts_dir, p)) for p in todo})
    else:
        for p in todo:
            arrays[p] = encode_part(encoder, parts[p], side, parts_dir, p, batch_size)
            bar.advance(len(parts[p]))
    return [arrays[p] for p in range(len(parts))], resumed, len(todo)


def _write_embeddings(out_dir: Path, prefix: str, out_format: OutFormat, ids: np.ndarray, emb: np.ndarray) -> list[str]:
    """``PREFIX.npz`` (ids, embeddings) or ``PREFIX_ids.npy`` + ``PREFIX_embeds.npy``, atomically; their names."""
    if out_format == "npz":
        _save_npz_atomic(out_dir / f"{prefix}.npz", ids=ids, embeddings=emb)
        return [f"{prefix}.npz"]
    files = []
    for name, arr in ((f"{prefix}_ids.npy", ids), (f"{prefix}_embeds.npy", emb)):
        _save_npy_atomic(out_dir / name, arr)
        files.append(name)
    return files


def embed_file(
    model,
    input_path: str | Path,
    out_dir: str | Path,
    *,
    side: Side = "passage",
    out_format: OutFormat = "npz",
    prefix: str = "embeddings",
    id_field: str = "id",
    text_field: str = "text",
    skip_bad: bool = False,
    batch_size: int = 32,
    part_size: int = 1024,
    progress: bool = True,
    ray: RayConfig | None = None,
) -> EmbedResult:
    """Embed ``input_path`` with ``model`` (a BiEncoder or a model spec) into ``out_dir``; with ``ray``, the parts
    are encoded by a Ray Data job (:mod:`lextune.raycluster`) into the same files, in the same order."""
    from lextune.models.biencoder import BiEncoder

    if side not in ("query", "passage"):
        raise ConfigError(f"--type must be 'query' or 'passage', not {side!r}")
    if out_format not in ("npz", "npy"):
        raise ConfigError(f"--format must be 'npz' or 'npy', not {out_format!r}")
    if part_size < 1:
        raise ConfigError("part_size must be at least 1")
    input_path = Path(input_path)
    out_dir = Path(out_dir)
    ids, texts, report = read_texts(input_path, id_field=id_field, text_field=text_field, skip_bad=skip_bad)
    dup = sum(c - 1 for c in Counter(ids).values() if c > 1)
    if dup:
        log.warning("%s: %d duplicate ids (kept; every row is embedded)", input_path, dup)

    encoder = model if isinstance(model, BiEncoder) else BiEncoder(model, batch_size=batch_size)
    desc = encoder.describe()
    config = {"side": side, "id_field": id_field, "text_field": text_field, "skip_bad": skip_bad,
              "part_size": part_size, "model": desc}
    input_hash = file_sha256(input_path)
    key = hashlib.sha1(json.dumps([input_hash, config], sort_keys=True).encode()).hexdigest()[:16]
    parts_dir = out_dir / f".parts-{key}"
    parts_dir.mkdir(parents=True, exist_ok=True)

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    dim = encoder.get_embedding_dimension()
    truncated_before = encoder.truncated[side]
    bar = _progress(progress, len(order), f"embedding {side}s")
    try:
        chunks, resumed, encoded = _encode_parts(encoder, [[texts[i] for i in order[p : p + part_size]]
                                                           for p in range(0, len(order), part_size)],
                                                 parts_dir, side, dim, batch_size, bar, ray)
    finally:
        bar.close()
    emb = np.zeros((len(texts), dim), dtype=np.float32)
    if chunks:
        emb[np.asarray(order)] = np.concatenate(chunks)
    files = _write_embeddings(out_dir, prefix, out_format, np.asarray(ids, dtype=str), emb)
    result = EmbedResult(
        rows=len(texts), dimension=dim, files=files, skipped=report.skipped, skip_reasons=report.reasons,
        duplicate_ids=dup, resumed_parts=resumed, encoded_parts=encoded,
        truncated=encoder.truncated[side] - truncated_before,
    )
    meta = make_meta(
        "embeddings",
        config={**config, "format": out_format, "prefix": prefix},
        inputs={str(input_path): input_hash},
        rows=len(texts), dimension=dim, files=files, skipped=report.skipped, duplicate_ids=dup,
        truncated=result.truncated,
    )
    write_json_atomic(out_dir / "meta.json", meta)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return result


class _NullBar:
    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _RichBar:
    def __init__(self, total: int, description: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), transient=False)
        self._p.start()
        self._task = self._p.add_task(description, total=total)

    def advance(self, n: int) -> None:
        self._p.advance(self._task, n)

    def close(self) -> None:
        self._p.stop()


def _progress(enabled: bool, total: int, description: str):
    return _RichBar(total, description) if enabled else _NullBar()
