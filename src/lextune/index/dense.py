"""Dense retrieval: BiEncoder embeddings in a FAISS index, with an embedding cache.

Embeddings are cached by model fingerprint and text hash under ``$LEXTUNE_HOME/cache/embeddings``, in
parts written as they are encoded, so an unchanged model never re-encodes a passage and a crashed
encoding resumes. The index folder records the model spec and fingerprint; loading it with another
model is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lextune.artifacts import atomic_file
from lextune.errors import ConfigError
from lextune.index.vectorstore import DocFilter, VectorStore, open_store
from lextune.raycluster import RayConfig
from lextune.runs import Run


class DenseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "bundled:multilingual-e5-small"
    index_type: Literal["flat", "hnsw", "ivf", "auto"] = Field(
        "flat", description="auto: exact below auto_hnsw_above vectors, HNSW above (p99 < 50 ms on 2 cores).")
    auto_hnsw_above: int = 200_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    ivf_nlist: int | None = None
    ivf_nprobe: int = Field(64, ge=1, description="IVF lists searched per query (16 kept 0.74-0.81 of the exact "
                            "top-10 on real questions over 16k passages; 64: 0.91-0.99, docs/benchmarks.md).")
    batch_size: int = 32
    passage_max_seq_length: int | None = None
    query_max_seq_length: int | None = None
    long_passages: Literal["truncate", "window"] = "truncate"
    cache: bool = True
    vector_store: str = Field(
        "faiss", pattern=r"^(faiss|milvus(:.+)?)$",
        description="faiss (a file in the index folder), milvus (Milvus Lite: a .db folder in the index folder) "
        "or milvus:URI (a Milvus server or cluster, e.g. milvus:http://localhost:19530).")
    collection: str | None = Field(None, description="The Milvus collection (chosen at build).")
    ray: RayConfig | None = Field(None, description="Encode the passages on a Ray cluster (lextune[ray]).")


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors by text hash for one model fingerprint, stored as append-only parts named by their keys'
    hash (safe with several writers: each part is written to a temporary file and renamed)."""

    def __init__(self, root: Path, fingerprint: str) -> None:
        self.folder = root / fingerprint
        self._index: dict[str, tuple[int, int]] | None = None
        self._parts: list[np.ndarray] = []

    def _load(self) -> None:
        if self._index is not None:
            return
        self._index = {}
        self._parts = []
        if not self.folder.is_dir():
            return
        for part in sorted(self.folder.glob("part-*.npz")):
            data = np.load(part)
            p = len(self._parts)
            self._parts.append(data["vectors"])
            for row, key in enumerate(data["keys"].tolist()):
                self._index[key] = (p, row)

    def get(self, keys: list[str]) -> tuple[np.ndarray, list[int]]:
        """Found vectors (in the order of ``keys`` that were found) and the positions that were missing."""
        self._load()
        assert self._index is not None
        found, missing = [], []
        for i, key in enumerate(keys):
            hit = self._index.get(key)
            if hit is None:
                missing.append(i)
            else:
                found.append(self._parts[hit[0]][hit[1]])
        return (np.stack(found) if found else np.zeros((0, 0), dtype=np.float32)), missing

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        self._load()
        assert self._index is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        # Named by what it holds, so that two processes filling one cache never write the same name with
        # different vectors (a count of the parts already there could be taken by both at once).
        name = hashlib.sha1("\n".join(keys).encode("utf-8")).hexdigest()[:20]
        with atomic_file(self.folder / f"part-{name}.npz", suffix=".npz") as tmp:
            np.savez(tmp, keys=np.asarray(keys), vectors=vectors.astype(np.float32))
        p = len(self._parts)
        self._parts.append(vectors.astype(np.float32))
        for row, key in enumerate(keys):
            self._index[key] = (p, row)


def encode_passages_cached(encoder, texts: list[str], *, cache: bool = True, part_size: int = 1024,
                           progress=None, ray: RayConfig | None = None) -> np.ndarray:
    """Passage embeddings, reusing and filling the cache in parts (resumable); with ``ray``, the missing parts
    are encoded by a Ray Data job and each is put into the cache as it ends."""
    from lextune.models.bundled import lextune_home

    dim = encoder.get_embedding_dimension()
    keys = [text_key(t) for t in texts]
    out = np.zeros((len(texts), dim), dtype=np.float32)
    store = EmbeddingCache(lextune_home() / "cache" / "embeddings", encoder.fingerprint()) if cache else None
    todo = list(range(len(texts)))
    if store is not None:
        found, todo = store.get(keys)
        missing = set(todo)
        done = [i for i in range(len(texts)) if i not in missing]
        if done:
            out[done] = found
    if progress:
        progress(len(texts) - len(todo), len(texts))
    todo.sort(key=lambda i: len(texts[i]))  # little padding inside batches
    if ray is not None and todo:
        _encode_on_ray(encoder, texts, keys, todo, part_size, out, store, ray, progress)
        return out
    for start in range(0, len(todo), part_size):
        rows = todo[start : start + part_size]
        vecs = encoder.encode_passages([texts[i] for i in rows])
        out[rows] = vecs
        if store is not None:
            store.put([keys[i] for i in rows], vecs)
        if progress:
            progress(len(texts) - len(todo) + start + len(rows), len(texts))
    return out


def _encode_on_ray(encoder, texts: list[str], keys: list[str], todo: list[int], part_size: int, out: np.ndarray,
                   store: EmbeddingCache | None, ray: RayConfig, progress) -> None:
    """The parts of ``todo`` encoded on Ray (:mod:`lextune.raycluster`) into ``out`` and the cache."""
    import tempfile

    from lextune.models.bundled import lextune_home
    from lextune.models.embed import part_file
    from lextune.raycluster import encode_parts_on_ray

    parts = [todo[s : s + part_size] for s in range(0, len(todo), part_size)]
    finished = len(texts) - len(todo)
    root = lextune_home() / "cache"  # workers of a local cluster (or on a shared disk) reach it
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ray-parts-", dir=root) as tmp:

        def done(part: int, rows: int) -> None:
            nonlocal finished
            vecs = np.load(part_file(Path(tmp), part))
            out[parts[part]] = vecs
            if store is not None:
                store.put([keys[i] for i in parts[part]], vecs)
            finished += rows
            if progress:
                progress(finished, len(texts))

        encode_parts_on_ray(encoder.init_args, [(p, [texts[i] for i in rows]) for p, rows in enumerate(parts)],
                            Path(tmp), "passage", encoder.batch_size, ray, done)


class DenseIndex:
    """Normalised chunk embeddings in a vector store (:mod:`lextune.index.vectorstore`: FAISS by default,
    Milvus by ``vector_store``), searched by inner product with the model that encoded them."""

    def __init__(self, config: DenseConfig | None = None, encoder=None, folder: Path | None = None) -> None:
        self.config = config or DenseConfig()
        self._encoder = encoder
        self.folder = Path(folder) if folder is not None else None
        self.store: VectorStore = open_store(self.config, self.folder)
        self.model_info: dict = {}

    @property
    def ids(self) -> list[str]:
        return self.store.ids

    @property
    def encoder(self):
        if self._encoder is None:
            from lextune.models.biencoder import BiEncoder

            self._encoder = BiEncoder(self.config.model, batch_size=self.config.batch_size,
                                      passage_max_seq_length=self.config.passage_max_seq_length,
                                      query_max_seq_length=self.config.query_max_seq_length,
                                      long_passages=self.config.long_passages)
            built_with = self.model_info.get("fingerprint")
            if built_with and self._encoder.fingerprint() != built_with:
                raise ConfigError(
                    f"the index was built with {self.model_info.get('spec')!r} ({built_with[:12]}), but that model "
                    f"now has fingerprint {self._encoder.fingerprint()[:12]}: rebuild the index"
                )
        return self._encoder

    def build(self, ids: list[str], texts: list[str], progress=None,
              fields: list[dict[str, str]] | None = None) -> DenseIndex:
        """Encode ``texts`` (through the embedding cache) and store them under ``ids`` with their filterable
        ``fields`` (:func:`~lextune.index.vectorstore.doc_fields`)."""
        vecs = encode_passages_cached(self.encoder, texts, cache=self.config.cache, progress=progress,
                                      ray=self.config.ray)
        return self.build_from_vectors(ids, vecs, fields)

    def build_from_vectors(self, ids: list[str], vecs: np.ndarray,
                           fields: list[dict[str, str]] | None = None) -> DenseIndex:
        self.store.build(list(ids), np.ascontiguousarray(vecs, dtype=np.float32), fields)
        if self._encoder is not None:
            self.model_info = {"spec": self.encoder.spec, "fingerprint": self.encoder.fingerprint(),
                               "dimension": int(vecs.shape[1])}
        return self

    def search(self, queries: dict[str, str], k: int = 100, where: DocFilter | None = None) -> Run:
        """Top-k chunks per query (only chunks ``where`` admits, when given)."""
        qids = [q for q in queries if queries[q].strip()]
        run: Run = {q: {} for q in queries}
        if not qids:
            return run
        q = self.encoder.encode_queries([queries[x] for x in qids])
        return {**run, **self.search_vectors(qids, q, k, where)}

    def search_vectors(self, qids: list[str], vectors: np.ndarray, k: int, where: DocFilter | None = None) -> Run:
        hits = self.store.search(vectors, k, where)
        return {q: dict(row) for q, row in zip(qids, hits, strict=True)}

    def vectors(self, rows: list[int]) -> np.ndarray | None:
        """The stored vectors at ``rows`` (positions in ``ids``); None when the store cannot give them back."""
        return self.store.vectors([self.ids[int(i)] for i in rows])

    def update(self, ids: list[str], texts: list[str], fields: list[dict[str, str]], gone: list[str],
               progress=None) -> None:
        """Encode ``texts`` (through the embedding cache), insert or replace them under ``ids``, delete ``gone``."""
        vecs = (encode_passages_cached(self.encoder, texts, cache=self.config.cache, progress=progress,
                                       ray=self.config.ray) if ids else np.zeros((0, 0), dtype=np.float32))
        self.store.update(list(ids), vecs, fields, gone)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.store.save(folder)
        (folder / "config.json").write_text(self.store.settings().model_dump_json(indent=2), encoding="utf-8")
        (folder / "model.json").write_text(json.dumps(self.model_info, ensure_ascii=False, indent=2), encoding="utf-8")

    def close(self) -> None:
        """Let go of the store's connections and files (Milvus Lite holds its folder while open)."""
        self.store.close()

    @classmethod
    def load(cls, folder: str | Path, encoder=None) -> DenseIndex:
        """Load an index; with ``encoder``, refuse one built by another model."""
        folder = Path(folder)
        cfg = DenseConfig.model_validate_json((folder / "config.json").read_text(encoding="utf-8"))
        info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        if encoder is not None and info.get("fingerprint") and encoder.fingerprint() != info["fingerprint"]:
            raise ConfigError(
                f"{folder} was built with model {info.get('spec')!r} (fingerprint {info['fingerprint'][:12]}); "
                f"the query encoder is {encoder.spec!r} ({encoder.fingerprint()[:12]}). Rebuild the index "
                "with `lextune index build --dense MODEL` or query it with the model that built it."
            )
        index = cls(cfg, encoder, folder)
        index.store.load(folder)
        index.model_info = info
        return index
