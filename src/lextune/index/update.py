"""Incremental update of an index folder: new and changed chunks upserted, removed ones deleted.

Only new and changed chunks are encoded (through the embedding cache); the vector store keeps every other
vector. The BM25 part is rebuilt from the documents (tokenizing is cheap next to encoding). Chunk ids are
the key: ingest gives a provision the same id on every run (``{law id}:a{article}...``), so a re-ingested
law replaces its own chunks.

Crash-safe by order: the vector store first (upsert and delete are idempotent), then BM25 and the
citations (each written beside and swapped in), then ``docs.jsonl`` and ``meta.json``. The plan is made
from ``docs.jsonl``, so a run cut short is finished by running it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lextune.artifacts import atomic_dir, atomic_file, read_meta, write_json_atomic
from lextune.errors import ConfigError
from lextune.index.bm25 import BM25Index
from lextune.index.lexindex import LexIndex, write_docs, write_links
from lextune.index.vectorstore import doc_fields
from lextune.schema import RefEdge


@dataclass
class UpdatePlan:
    """What an update does, by chunk id."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def _document_of(doc: dict) -> str:
    return doc.get("document") or doc["id"].split(":", 1)[0]


def plan_update(old: dict[str, dict], new: list[dict], full: bool = False) -> UpdatePlan:
    """Compare the index's documents ``old`` with ``new`` (index input dicts). Removed: the old chunks of the
    source documents ``new`` holds that it no longer has (``full``: every old chunk not in ``new``)."""
    plan = UpdatePlan()
    new_ids = {d["id"] for d in new}
    if len(new_ids) != len(new):
        raise ConfigError("duplicate document ids in the update")
    for d in new:
        before = old.get(d["id"])
        if before is None:
            plan.added.append(d["id"])
        elif before["contents"] != d["contents"] or doc_fields(before) != doc_fields(d) or any(
                before.get(k) != d.get(k) for k in ("title", "text", "parent_id")):
            plan.changed.append(d["id"])
        else:
            plan.unchanged += 1
    sources = {_document_of(d) for d in new}
    plan.removed = [i for i, d in old.items() if i not in new_ids and (full or _document_of(d) in sources)]
    return plan


def update_index(folder: str | Path, new: list[dict], *, links: list[RefEdge] | None = None, full: bool = False,
                 source: dict | None = None, encoder=None,
                 progress: Callable[[int, int], None] | None = None) -> UpdatePlan:
    """Bring the index at ``folder`` up to ``new`` (index input dicts, e.g. ``linked_docs`` of a re-ingest):
    upsert added and changed chunks, delete removed ones, rebuild BM25, merge the citations ``links``."""
    folder = Path(folder)
    index = LexIndex.load(folder)
    plan = plan_update(index.docs, new, full)
    by_id = {d["id"]: d for d in new}
    gone = set(plan.removed)
    docs = [by_id.get(i, d) for i, d in index.docs.items() if i not in gone]
    docs += [by_id[i] for i in plan.added]
    if not docs:
        raise ConfigError("the update would leave the index empty")
    if not plan.empty:
        touched = plan.added + plan.changed
        if index.has_dense:
            dense = index.dense(encoder)
            try:
                dense.update(touched, [by_id[i]["contents"] for i in touched],
                             [doc_fields(by_id[i]) for i in touched], plan.removed, progress=progress)
                dense.store.commit(folder / "dense", dense.save)  # FAISS: a new folder swapped in
            finally:
                dense.close()
        if index.bm25 is not None:
            bm25 = BM25Index(index.bm25.config).build([d["id"] for d in docs], [d["contents"] for d in docs])
            _swap(folder / "bm25", bm25.save)
        if index.has_links or links is not None:
            _update_links(index, links or [], set(touched) | gone, docs)
        with atomic_file(folder / "docs.jsonl") as tmp:
            write_docs(tmp, docs)
    meta = read_meta(folder)
    meta["documents"] = len(docs)
    meta.setdefault("updates", []).append({**{k: len(v) for k, v in asdict(plan).items() if isinstance(v, list)},
                                           "unchanged": plan.unchanged, "inputs": source or {},
                                           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    write_json_atomic(folder / "meta.json", meta)
    return plan


def _swap(target: Path, write: Callable[[Path], None]) -> None:
    """Write a new version of the folder ``target`` beside it, then put it in its place."""
    with atomic_dir(target, overwrite=True) as tmp:
        write(tmp)


def _update_links(index: LexIndex, links: list[RefEdge], touched: set[str], docs: list[dict]) -> None:
    """Keep the citations of untouched chunks to chunks still there; add the update's own (``links``)."""
    from lextune.jsonl import iter_records

    kept = ([e for _, e in iter_records(index.folder / "refs.jsonl", RefEdge) if e.source not in touched]
            if index.has_links else [])
    fresh = [e for e in links if e.source in touched]
    with atomic_file(index.folder / "refs.jsonl") as tmp:
        write_links(tmp, kept + fresh, docs)
