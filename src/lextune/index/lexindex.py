"""Index folders: the documents (``docs.jsonl``), a BM25 part and/or a dense part, and ``meta.json``.

What a pipeline (:mod:`lextune.index.pipeline`) searches. The folder's layout is known here only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lextune.artifacts import atomic_dir, make_meta, read_meta, write_json_atomic
from lextune.errors import ConfigError
from lextune.index.bm25 import BM25Config, BM25Index
from lextune.index.dense import DenseConfig, DenseIndex
from lextune.index.vectorstore import DocFilter, doc_fields
from lextune.jsonl import iter_records
from lextune.schema import IndexDoc, RefEdge


class IndexBuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bm25: BM25Config | None = Field(default_factory=BM25Config)
    dense: DenseConfig | None = None


class LexIndex:
    """An index folder: documents + BM25 and/or dense parts."""

    def __init__(self, folder: Path, docs: dict[str, dict], bm25: BM25Index | None, dense_folder: Path | None,
                 meta: dict) -> None:
        self.folder, self.docs, self.bm25, self.meta = folder, docs, bm25, meta
        self._dense_folder = dense_folder
        self._dense: DenseIndex | None = None
        self._structure = None
        self._matching: dict[DocFilter, frozenset[str]] = {}

    def dense(self, encoder=None) -> DenseIndex | None:
        """The stored vectors, queried with ``encoder`` (refused when another model built them)."""
        if self._dense_folder is None:
            return None
        # Loaded once per encoder (the service calls this on every search).
        if self._dense is None or (encoder is not None and self._dense._encoder is not encoder):
            self._dense = DenseIndex.load(self._dense_folder, encoder)
        return self._dense

    def dense_with(self, encoder, index_type: str = "flat", progress=None) -> DenseIndex:
        """An in-memory dense index of these documents encoded by another ``encoder`` (a tuned model),
        reusing the embedding cache; what base-versus-tuned comparisons search."""
        ids = list(self.docs)
        return DenseIndex(DenseConfig(model=encoder.spec, index_type=index_type), encoder).build(
            ids, [self.docs[i]["contents"] for i in ids], progress=progress,
            fields=[doc_fields(self.docs[i]) for i in ids])

    @property
    def has_dense(self) -> bool:
        return self._dense_folder is not None

    @property
    def parts(self) -> list[str]:
        """The retrievers this folder serves by itself: ``bm25`` and/or ``dense``."""
        return [p for p, on in (("bm25", self.bm25 is not None), ("dense", self.has_dense)) if on]

    @property
    def dense_spec(self) -> str | None:
        """The model spec that encoded the stored vectors (None without a dense part)."""
        return (self.meta.get("dense_model") or {}).get("spec")

    @property
    def has_links(self) -> bool:
        """Whether the folder holds the citations between its documents (``refs.jsonl``, written at build)."""
        return (self.folder / "refs.jsonl").is_file()

    def structure(self):
        """Each document's law and article and the citations between documents
        (:class:`~lextune.index.structure.Structure`), loaded once."""
        if self._structure is None:
            from lextune.index.structure import Structure

            edges = ([(e.source, e.target) for _, e in iter_records(self.folder / "refs.jsonl", RefEdge)]
                     if self.has_links else [])
            self._structure = Structure.build(self.docs, edges)
        return self._structure

    def matching(self, where: DocFilter) -> frozenset[str]:
        """The ids of the documents ``where`` admits (computed once per filter)."""
        if where not in self._matching:
            self._matching[where] = frozenset(d for d, v in self.docs.items() if where.matches(v))
        return self._matching[where]

    @property
    def texts(self) -> dict[str, str]:
        return {d: v["contents"] for d, v in self.docs.items()}

    @classmethod
    def load(cls, folder: str | Path) -> LexIndex:
        folder = Path(folder)
        meta = read_meta(folder)
        if not meta or meta.get("type") != "index":
            raise ConfigError(f"{folder} is not a lextune index (no meta.json of type 'index')")
        from lextune import __version__

        major = lambda v: str(v).split(".")[:2]  # noqa: E731
        if major(meta.get("lextune_version")) != major(__version__):
            raise ConfigError(f"{folder} was built by lextune {meta.get('lextune_version')}; this is {__version__}: "
                              "rebuild it with `lextune index build`")
        docs = read_docs(folder)
        bm25 = BM25Index.load(folder / "bm25") if (folder / "bm25").is_dir() else None
        dense = folder / "dense" if (folder / "dense").is_dir() else None
        return cls(folder, docs, bm25, dense, meta)


def is_index_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds an index's documents (``docs.jsonl``)."""
    return (Path(folder) / "docs.jsonl").is_file()


def read_docs(folder: str | Path) -> dict[str, dict]:
    """An index folder's documents by id, as :class:`~lextune.schema.IndexDoc` fields (id, title, text,
    contents, parent_id, law, article); a bad line names the file, the line and the field."""
    return {rec.id: rec.model_dump() for _, rec in iter_records(Path(folder) / "docs.jsonl", IndexDoc)}


def stored_dense(folder: str | Path, fingerprint: str) -> DenseIndex | None:
    """The dense part of the index folder ``folder`` when the model with ``fingerprint`` encoded it (else None:
    no index there, no dense part, or another model's vectors); nothing is encoded."""
    dense = Path(folder) / "dense"
    if not (dense / "model.json").is_file():
        return None
    info = json.loads((dense / "model.json").read_text(encoding="utf-8"))
    return DenseIndex.load(dense) if info.get("fingerprint") == fingerprint else None


def build_index(docs: list[dict], out_dir: str | Path, config: IndexBuildConfig | None = None,
                source: dict | None = None, encoder=None,
                progress: Callable[[int, int], None] | None = None, links: list[RefEdge] | None = None) -> LexIndex:
    """Index ``docs`` (dicts with id, contents, and optionally title, text, parent_id, law, article) into
    ``out_dir``; ``links`` (ingest's ``RefEdge`` citation edges) are kept as
    ``refs.jsonl`` between the index's documents, for the pipeline's cross-reference expansion."""
    config = config or IndexBuildConfig()
    if config.bm25 is None and config.dense is None:
        raise ConfigError("nothing to build: enable BM25 and/or give a dense model")
    ids = [d["id"] for d in docs]
    if len(set(ids)) != len(ids):
        raise ConfigError("duplicate document ids in the index input")
    contents = [d["contents"] for d in docs]
    with atomic_dir(out_dir, overwrite=True) as tmp:
        write_docs(tmp / "docs.jsonl", docs)
        if links is not None:
            write_links(tmp / "refs.jsonl", links, docs)
        if config.bm25 is not None:
            BM25Index(config.bm25).build(ids, contents).save(tmp / "bm25")
        model_info = None
        if config.dense is not None:
            dense = DenseIndex(config.dense, encoder, tmp / "dense")
            try:
                dense.build(ids, contents, progress=progress, fields=[doc_fields(d) for d in docs])
                dense.save(tmp / "dense")
            finally:
                dense.close()  # Milvus Lite lets go of its folder before the folder is moved
            model_info = dense.model_info
        write_json_atomic(tmp / "meta.json", make_meta(
            "index", config=config.model_dump(mode="json"), inputs=source or {}, documents=len(docs),
            dense_model=model_info))
        replaced = _server_collection(Path(out_dir) / "dense")
    if replaced is not None:  # the folder it belonged to is gone: its collection would stay on the server
        replaced.drop()
        replaced.close()
    return LexIndex.load(out_dir)


def _server_collection(dense_folder: Path):
    """The Milvus store of an existing index folder's dense part when its collection lives on a server (outside
    the folder, so replacing the folder does not remove it); else None."""
    path = dense_folder / "config.json"
    if not path.is_file():
        return None
    config = DenseConfig.model_validate_json(path.read_text(encoding="utf-8"))
    if not config.vector_store.startswith("milvus:") or config.collection is None:
        return None
    from lextune.index.vectorstore import open_store

    return open_store(config, dense_folder)


def write_docs(path: Path, docs: list[dict]) -> None:
    """An index's ``docs.jsonl``: one :class:`~lextune.schema.IndexDoc` per document."""
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(IndexDoc(**{k: d.get(k) for k in IndexDoc.model_fields}).model_dump_json() + "\n")


def write_links(path: Path, links: list[RefEdge], docs: list[dict]) -> int:
    """Citation edges between indexed documents: a target that is not a document itself (an article above
    paragraph chunks, a paragraph above item chunks) stands for the documents under it."""
    ids = {d["id"] for d in docs}
    under: dict[str, list[str]] = {}
    for d in docs:
        parts = d["id"].split(":")
        for i in range(1, len(parts)):
            under.setdefault(":".join(parts[:i]), []).append(d["id"])
        if d.get("parent_id") and d["parent_id"] not in ids:
            under.setdefault(d["parent_id"], []).append(d["id"])
    seen: set[tuple[str, str]] = set()
    with open(path, "w", encoding="utf-8") as f:
        for e in links:
            if e.source not in ids:
                continue
            for t in [e.target] if e.target in ids else dict.fromkeys(under.get(e.target, [])):
                if t != e.source and (e.source, t) not in seen:
                    seen.add((e.source, t))
                    f.write(e.model_copy(update={"target": t}).model_dump_json() + "\n")
    return len(seen)


def docs_from_chunks(chunks) -> list[dict]:
    """Index input from ingest chunks (with each one's law and article, which the structure steps use)."""
    return [{"id": c.id, "title": c.title, "text": c.text, "contents": c.contents, "parent_id": c.parent_id,
             "law": c.law_name, "article": c.article, "kind": str(c.doc_kind), "document": c.doc_id}
            for c in chunks]


def docs_from_beir(corpus: dict[str, dict]) -> list[dict]:
    """Index input from a BEIR corpus (``load_beir(...).corpus``): the title, a newline and the text."""
    return [{"id": i, "title": d["title"], "text": d["text"],
             "contents": f"{d['title']}\n{d['text']}" if d["title"] else d["text"]} for i, d in corpus.items()]
