"""Where a dense index keeps its vectors: a FAISS file in the index folder, or a Milvus collection.

Both stores hold, per chunk id, its vector and the fields a search can be restricted by (law, kind, article,
document), and answer the same calls: ``build``, ``search(vectors, k, where)``, ``upsert``, ``delete`` and
``vectors``. Milvus runs embedded (Milvus Lite, a ``.db`` folder inside the index folder) or as a server or
cluster reached by URI; the same client code talks to both. A store is a registry entry
(:func:`vector_store`); ``DenseConfig.vector_store`` names it (``faiss``, ``milvus``, ``milvus:URI``).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from lextune.artifacts import atomic_dir, atomic_file
from lextune.errors import ConfigError
from lextune.extras import optional_import

if TYPE_CHECKING:
    from lextune.index.dense import DenseConfig

FIELDS = ("law", "kind", "article", "document")
Hits = list[list[tuple[str, float]]]  # per query: (chunk id, inner product), best first


class DocFilter(BaseModel):
    """Which chunks a search may return: for every field named, the chunk's value is one of those listed
    (fields AND-ed, values OR-ed). YAML: ``filter: {law: 자본시장과 금융투자업에 관한 법률, kind: [법률, 시행령]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    law: tuple[str, ...] | None = None
    kind: tuple[str, ...] | None = None
    article: tuple[str, ...] | None = None
    document: tuple[str, ...] | None = None

    @field_validator(*FIELDS, mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if isinstance(v, str | int):
            return (str(v),)
        if isinstance(v, list | tuple):
            if not v:
                raise ValueError("give at least one value (or leave the field out)")
            return tuple(str(x) for x in v)
        return v

    @model_validator(mode="after")
    def _something(self) -> DocFilter:
        if not self.conditions():
            raise ValueError(f"a filter names at least one of {', '.join(FIELDS)}")
        return self

    def conditions(self) -> dict[str, tuple[str, ...]]:
        return {f: v for f in FIELDS if (v := getattr(self, f)) is not None}

    def matches(self, fields: Mapping[str, Any]) -> bool:
        return all(str(fields.get(f) or "") in values for f, values in self.conditions().items())

    def expr(self) -> str:
        """The Milvus boolean expression, e.g. ``law in ["민법"] and kind in ["법률", "시행령"]``."""
        return " and ".join(f"{f} in {json.dumps(list(v), ensure_ascii=False)}" for f, v in self.conditions().items())


def doc_fields(doc: Mapping[str, Any]) -> dict[str, str]:
    """A document's filterable fields (an index's ``docs.jsonl`` record), missing ones as ``""``."""
    return {f: str(doc.get(f) or "") for f in FIELDS}


class VectorStore:
    """Vectors by chunk id with their filterable fields; inner-product search over normalised vectors."""

    name: ClassVar[str] = ""

    def __init__(self, config: DenseConfig, folder: Path | None) -> None:
        self.config, self.folder = config, folder
        self.ids: list[str] = []

    def build(self, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]]) -> None:
        raise NotImplementedError

    def search(self, vectors: np.ndarray, k: int, where: DocFilter | None = None) -> Hits:
        raise NotImplementedError

    def upsert(self, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]]) -> None:
        """Insert these chunks, replacing any stored under the same ids."""
        raise NotImplementedError

    def delete(self, ids: Sequence[str]) -> None:
        raise NotImplementedError

    def update(self, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]],
               gone: Sequence[str] = ()) -> None:
        """Upsert ``ids``, then delete ``gone``: what an incremental update of the index does."""
        self.upsert(ids, vectors, fields)
        self.delete(gone)

    def vectors(self, ids: Sequence[str]) -> np.ndarray | None:
        """The stored vectors of ``ids`` in that order (None: the store cannot give them back)."""
        raise NotImplementedError

    def settings(self) -> DenseConfig:
        """The dense config to save beside the store: what opens it again."""
        return self.config

    def save(self, folder: Path) -> None:
        """Write what the folder needs to open the store again (``ids.json`` and the store's own files)."""
        (folder / "ids.json").write_text(json.dumps(self.ids, ensure_ascii=False), encoding="utf-8")

    def load(self, folder: Path) -> None:
        self.ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))

    def commit(self, folder: Path, save: Callable[[Path], None]) -> None:
        """Replace the saved store at ``folder`` by the current one through ``save`` (the dense index's, which
        writes its config beside): a complete new folder swapped in, never half-written files."""
        with atomic_dir(folder, overwrite=True) as tmp:
            save(tmp)

    def close(self) -> None:
        """Let go of connections and files (before the folder is moved)."""


VECTOR_STORES: dict[str, type[VectorStore]] = {}


def vector_store(name: str) -> Callable[[type[VectorStore]], type[VectorStore]]:
    """Class decorator: the store ``name`` (what ``DenseConfig.vector_store`` names before any ``:``)."""

    def deco(cls: type[VectorStore]) -> type[VectorStore]:
        cls.name = name
        VECTOR_STORES[name] = cls
        return cls

    return deco


def open_store(config: DenseConfig, folder: Path | None) -> VectorStore:
    name = config.vector_store.split(":", 1)[0]
    if name not in VECTOR_STORES:
        raise ConfigError(f"unknown vector store {name!r}; known: {', '.join(sorted(VECTOR_STORES))}")
    return VECTOR_STORES[name](config, folder)


# -- FAISS -------------------------------------------------------------------------------------------
def _faiss():
    return optional_import("faiss", "index", "dense search")


@vector_store("faiss")
class FaissStore(VectorStore):
    """A FAISS index (flat, HNSW or IVF) in the index folder; fields kept beside it for filtered search.
    An update rebuilds the FAISS index from the stored vectors (nothing is encoded again)."""

    def __init__(self, config: DenseConfig, folder: Path | None) -> None:
        super().__init__(config, folder)
        self.index = None
        self.fields: list[dict[str, str]] | None = None
        self._pos: dict[str, int] | None = None  # id -> row, and the rows each filter admits: made once
        self._rows: dict[DocFilter, np.ndarray] = {}

    def kind(self, n: int) -> str:
        kind = self.config.index_type
        if kind == "auto":
            kind = "hnsw" if n > self.config.auto_hnsw_above else "flat"
        return kind

    def build(self, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]] | None) -> None:
        faiss = _faiss()
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vecs.shape[1]
        kind = self.kind(len(vecs))
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.config.hnsw_ef_search
        else:
            nlist = self.config.ivf_nlist or max(1, int(4 * np.sqrt(len(vecs))))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, min(nlist, len(vecs)), faiss.METRIC_INNER_PRODUCT)
            index.train(vecs)
            index.nprobe = self.config.ivf_nprobe
        index.add(vecs)
        self.index, self.ids, self.fields = index, list(ids), fields
        self._pos, self._rows = None, {}

    def _admitted(self, where: DocFilter) -> np.ndarray:
        if self.fields is None:
            raise ConfigError("this dense index keeps no fields to filter by (built before filters existed): "
                              "rebuild it with `lextune index build`")
        if where not in self._rows:
            self._rows[where] = np.asarray([i for i, f in enumerate(self.fields) if where.matches(f)], dtype=np.int64)
        return self._rows[where]

    def _params(self, selector):
        faiss = _faiss()
        if isinstance(self.index, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(sel=selector, efSearch=self.config.hnsw_ef_search)
        if isinstance(self.index, faiss.IndexIVF):
            return faiss.SearchParametersIVF(sel=selector, nprobe=self.config.ivf_nprobe)
        return faiss.SearchParameters(sel=selector)

    def search(self, vectors: np.ndarray, k: int, where: DocFilter | None = None) -> Hits:
        if self.index is None:
            raise ConfigError("the dense index is empty: build or load it first")
        q = np.ascontiguousarray(vectors, dtype=np.float32)
        if where is None:
            scores, idx = self.index.search(q, min(k, len(self.ids)))
        else:
            rows = self._admitted(where)
            if not len(rows):
                return [[] for _ in range(len(q))]
            selector = _faiss().IDSelectorBatch(rows)
            scores, idx = self.index.search(q, min(k, len(rows)), params=self._params(selector))
        return [[(self.ids[int(i)], float(s)) for i, s in zip(ri, rs, strict=True) if i >= 0]
                for ri, rs in zip(idx, scores, strict=True)]

    def _all_vectors(self) -> np.ndarray:
        faiss = _faiss()
        if isinstance(self.index, faiss.IndexIVF):
            self.index.make_direct_map()
        return self.index.reconstruct_n(0, self.index.ntotal)

    def vectors(self, ids: Sequence[str]) -> np.ndarray | None:
        if self._pos is None:
            self._pos = {d: i for i, d in enumerate(self.ids)}
            if isinstance(self.index, _faiss().IndexIVF):
                self.index.make_direct_map()
        try:
            return np.stack([self.index.reconstruct(self._pos[d]) for d in ids]).astype(np.float32)
        except RuntimeError:
            return None

    def upsert(self, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]]) -> None:
        self.update(ids, vectors, fields)

    def delete(self, ids: Sequence[str]) -> None:
        self.update([], np.zeros((0, 0), dtype=np.float32), [], ids)

    def update(self, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]],
               gone: Sequence[str] = ()) -> None:
        """Upsert and delete in one rebuild of the FAISS index from its stored vectors (an HNSW rebuild of the
        whole law takes minutes: once, not once per kind of change)."""
        drop = set(gone)
        if not ids and not drop & set(self.ids):
            return
        vecs = self._all_vectors()
        all_ids = list(self.ids)
        all_fields = list(self.fields) if self.fields is not None else None
        if ids:
            all_fields = all_fields or [doc_fields({}) for _ in all_ids]
            pos = {d: i for i, d in enumerate(all_ids)}
            new_rows = []
            for d, v, f in zip(ids, vectors, fields, strict=True):
                if d in pos:
                    vecs[pos[d]], all_fields[pos[d]] = v, f
                else:
                    pos[d] = len(all_ids)
                    new_rows.append(v)
                    all_ids.append(d)
                    all_fields.append(f)
            vecs = np.concatenate([vecs, np.asarray(new_rows, dtype=np.float32).reshape(-1, vecs.shape[1])])
        keep = [i for i, d in enumerate(all_ids) if d not in drop]
        self.build([all_ids[i] for i in keep], vecs[keep],
                   [all_fields[i] for i in keep] if all_fields is not None else None)

    def save(self, folder: Path) -> None:
        super().save(folder)
        _faiss().write_index(self.index, str(folder / "faiss.index"))
        if self.fields is not None:
            (folder / "fields.json").write_text(json.dumps(self.fields, ensure_ascii=False), encoding="utf-8")

    def load(self, folder: Path) -> None:
        super().load(folder)
        self.index = _faiss().read_index(str(folder / "faiss.index"))
        if self.config.index_type == "hnsw":
            self.index.hnsw.efSearch = self.config.hnsw_ef_search
        elif self.config.index_type == "ivf":
            self.index.nprobe = self.config.ivf_nprobe
        path = folder / "fields.json"
        self.fields = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# -- Milvus ------------------------------------------------------------------------------------------
MILVUS_LITE_FILE = "milvus.db"
MILVUS_BATCH = 1000  # rows per insert / vectors per search request (gRPC messages stay well under 64 MB)
MILVUS_MAX_K = 16384  # Milvus's largest topk


def _pymilvus():
    module = optional_import("pymilvus", "milvus", "the Milvus vector store")
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # it logs every failed call with a traceback
    # Milvus Lite's in-process gRPC server answers an optional call (AllocTimestamp) with "not implemented",
    # which grpc logs as an error although the client goes on without it.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    return module


@vector_store("milvus")
class MilvusStore(VectorStore):
    """A Milvus collection: Milvus Lite in ``milvus.db`` inside the index folder (``vector_store: milvus``),
    or a Milvus server or cluster (``milvus:http://host:19530``; a token from ``LEXTUNE_MILVUS_TOKEN``).
    The collection's name is chosen at build (``lextune_<random>``) and kept in the index's config."""

    def __init__(self, config: DenseConfig, folder: Path | None) -> None:
        super().__init__(config, folder)
        _, _, uri = config.vector_store.partition(":")
        self.uri = uri or None  # None: Milvus Lite inside the folder
        self.collection = config.collection or f"lextune_{uuid.uuid4().hex[:12]}"
        self._client = None
        self._lite_path: str | None = None
        self._is_loaded = False

    @property
    def client(self):
        if self._client is None:
            if self.uri is None:
                if self.folder is None:
                    raise ConfigError("a Milvus Lite store lives in an index folder: save the index first")
                self.folder.mkdir(parents=True, exist_ok=True)
                self._lite_path = str(self.folder.resolve() / MILVUS_LITE_FILE)
                uri = self._lite_path
            else:
                uri = self.uri
            try:
                self._client = _pymilvus().MilvusClient(uri=uri, token=os.environ.get("LEXTUNE_MILVUS_TOKEN", ""))
            except Exception as e:  # noqa: BLE001 - a connection error of any kind
                raise ConfigError(f"cannot reach Milvus at {uri}: {e}") from e
        return self._client

    def _index_params(self, n: int):
        c = self.config
        kind = c.index_type if c.index_type != "auto" else ("hnsw" if n > c.auto_hnsw_above else "flat")
        params = self.client.prepare_index_params()
        if kind == "hnsw":
            params.add_index("vector", index_type="HNSW", metric_type="IP",
                             params={"M": c.hnsw_m, "efConstruction": 200})
        elif kind == "ivf":
            params.add_index("vector", index_type="IVF_FLAT", metric_type="IP",
                             params={"nlist": c.ivf_nlist or max(1, int(4 * np.sqrt(max(n, 1))))})
        else:
            params.add_index("vector", index_type="FLAT", metric_type="IP")
        return params, kind

    def _search_params(self) -> dict:
        return {"metric_type": "IP", "params": {"ef": self.config.hnsw_ef_search, "nprobe": self.config.ivf_nprobe}}

    def build(self, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]] | None) -> None:
        fields = fields if fields is not None else [doc_fields({}) for _ in ids]  # the schema has the columns
        pm = _pymilvus()
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", pm.DataType.VARCHAR, is_primary=True, max_length=1024)
        schema.add_field("vector", pm.DataType.FLOAT_VECTOR, dim=int(vectors.shape[1]))
        for f in FIELDS:
            schema.add_field(f, pm.DataType.VARCHAR, max_length=1024)
        params, _ = self._index_params(len(ids))
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        self.client.create_collection(self.collection, schema=schema, index_params=params)
        self._write(self.client.insert, ids, vectors, fields)
        self.client.flush(self.collection)  # sealed and indexed: unflushed rows are searched by brute force
        self.client.load_collection(self.collection)
        self._is_loaded = True
        self.ids = list(ids)

    def _write(self, call, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]]) -> None:
        vecs = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(ids), MILVUS_BATCH):
            rows = [{"id": d, "vector": vecs[i].tolist(), **fields[i]}
                    for i, d in enumerate(ids[start : start + MILVUS_BATCH], start)]
            call(self.collection, rows)

    def _loaded(self):
        client = self.client
        if not self._is_loaded:
            if not client.has_collection(self.collection):
                raise ConfigError(f"Milvus at {self.uri or self.folder / MILVUS_LITE_FILE} has no collection "
                                  f"{self.collection!r}: rebuild the index with `lextune index build`")
            client.load_collection(self.collection)
            self._is_loaded = True
        return client

    def search(self, vectors: np.ndarray, k: int, where: DocFilter | None = None) -> Hits:
        client = self._loaded()
        q = np.asarray(vectors, dtype=np.float32)
        out: Hits = []
        limit = max(1, min(k, len(self.ids), MILVUS_MAX_K))
        for start in range(0, len(q), MILVUS_BATCH):
            res = client.search(self.collection, data=q[start : start + MILVUS_BATCH].tolist(), limit=limit,
                                filter=where.expr() if where else "", output_fields=["id"],
                                search_params=self._search_params())
            out.extend([(h["id"], float(h["distance"])) for h in hits] for hits in res)
        return out

    def vectors(self, ids: Sequence[str]) -> np.ndarray | None:
        client = self._loaded()
        found: dict[str, list[float]] = {}
        ids = list(ids)
        for start in range(0, len(ids), MILVUS_BATCH):
            for row in client.get(self.collection, ids=ids[start : start + MILVUS_BATCH], output_fields=["vector"]):
                found[row["id"]] = row["vector"]
        if len(found) < len(set(ids)):
            return None
        return np.asarray([found[d] for d in ids], dtype=np.float32)

    def upsert(self, ids: list[str], vectors: np.ndarray, fields: list[dict[str, str]]) -> None:
        if not ids:
            return
        self._write(self._loaded().upsert, ids, vectors, fields)
        known = set(self.ids)
        self.ids.extend(d for d in ids if d not in known)

    def delete(self, ids: Sequence[str]) -> None:
        gone = set(ids)
        if not gone:
            return
        client = self._loaded()
        listed = list(gone)
        for start in range(0, len(listed), MILVUS_BATCH):
            client.delete(self.collection, ids=listed[start : start + MILVUS_BATCH])
        self.ids = [d for d in self.ids if d not in gone]

    def settings(self) -> DenseConfig:
        return self.config.model_copy(update={"collection": self.collection})

    def commit(self, folder: Path, save: Callable[[Path], None]) -> None:
        """The rows are in Milvus already (upsert and delete are idempotent): only the folder's id list and
        config are rewritten, in place (Milvus Lite's data lives in that folder)."""
        self._loaded().flush(self.collection)
        with atomic_file(folder / "ids.json") as tmp:
            tmp.write_text(json.dumps(self.ids, ensure_ascii=False), encoding="utf-8")

    def drop(self) -> None:
        """Remove the collection (an index folder built on a server was replaced or deleted)."""
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        self.ids = []

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._is_loaded = False
        if self._lite_path is not None:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self._lite_path)
            self._lite_path = None
