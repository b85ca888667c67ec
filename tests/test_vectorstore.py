"""Vector stores: FAISS and Milvus Lite (a real embedded Milvus, no mock) on real statute paragraphs, the
pipeline's filter, and incremental updates of an index (`lextune index add`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")

REPO = Path(__file__).resolve().parents[1]
LAWS = REPO / "src" / "lextune" / "data" / "laws"
LAW = LAWS / "000549.json"  # 37 paragraphs


def _store(kind: str, folder: Path, **config):
    from lextune.index.dense import DenseConfig
    from lextune.index.vectorstore import open_store

    return open_store(DenseConfig(vector_store=kind, **config), folder)


@pytest.fixture(scope="module")
def paragraphs(law_texts, module_tmp):
    """Up to 2,000 real statute paragraphs (the shared corpus when present, else the bundled laws), encoded by
    the bundled model (64 tokens: enough for real neighbourhoods, fast enough for the default suite), and 40
    real queries: the first words of other paragraphs, encoded as queries."""
    from lextune.models.biencoder import BiEncoder

    encoder = BiEncoder("bundled:multilingual-e5-small", device="cpu", passage_max_seq_length=64,
                        query_max_seq_length=32)
    texts = law_texts[:2000]
    vectors = encoder.encode_passages(texts)
    rng = np.random.default_rng(0)
    queries = encoder.encode_queries([law_texts[int(i)][:40] for i in rng.choice(len(law_texts), 40, replace=False)])
    fields = [{"law": f"law{i % 5}", "kind": "시행령" if i % 3 == 0 else "법률", "article": str(i % 50),
               "document": f"doc{i % 7}"} for i in range(len(texts))]
    return {"ids": [f"p{i}" for i in range(len(texts))], "vectors": vectors, "queries": queries, "fields": fields}


def _tied(row: list[tuple[str, float]], tol: float = 1e-5) -> list[frozenset[str]]:
    """A ranking as its groups of equal scores: engines order exact ties as they like."""
    groups: list[list[str]] = []
    last = None
    for d, s in row:
        if last is None or abs(s - last) > tol:
            groups.append([])
        groups[-1].append(d)
        last = s
    return [frozenset(g) for g in groups]


def _exact(vectors: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[list[int]]:
    scores = queries @ vectors.T
    if rows is not None:
        mask = np.full(len(vectors), -np.inf)
        mask[rows] = 0
        scores = scores + mask
    return [list(r) for r in np.argsort(-scores, axis=1, kind="stable")[:, :k]]


def test_milvus_lite_exact_search_equals_faiss(paragraphs, tmp_path):
    ids, vecs, q = paragraphs["ids"], paragraphs["vectors"], paragraphs["queries"]
    faiss_store, milvus = _store("faiss", None), _store("milvus", tmp_path / "m")
    faiss_store.build(ids, vecs, paragraphs["fields"])
    milvus.build(ids, vecs, paragraphs["fields"])
    try:
        a, b = faiss_store.search(q, 10), milvus.search(q, 10)
        assert len(ids) >= 700 and len(a) == len(b) == len(q)
        for ra, rb in zip(a, b, strict=True):
            assert _tied(ra) == _tied(rb)  # identical paragraphs (repealed ones, truncated ones) tie exactly
            assert [s for _, s in ra] == pytest.approx([s for _, s in rb], abs=1e-5)
        exact = _exact(vecs, q, 10)
        assert [{ids[i] for i in row} for row in exact] == [{d for d, _ in r} for r in a]
        # the stored vectors come back as they went in (mining reads them)
        assert np.allclose(milvus.vectors(["p3", "p1"]), vecs[[3, 1]], atol=1e-6)
    finally:
        milvus.close()


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_milvus_approximate_indexes_keep_recall_at_10(paragraphs, tmp_path, index_type):
    ids, vecs, q = paragraphs["ids"], paragraphs["vectors"], paragraphs["queries"]
    milvus = _store("milvus", tmp_path / index_type, index_type=index_type)
    milvus.build(ids, vecs, paragraphs["fields"])
    try:
        got = milvus.search(q, 10)
    finally:
        milvus.close()
    exact = _exact(vecs, q, 10)
    recall = np.mean([len({ids[i] for i in e} & {d for d, _ in g}) / 10 for e, g in zip(exact, got, strict=True)])
    assert recall >= 0.99, recall


@pytest.mark.parametrize("kind", ["faiss", "milvus"])
def test_filtered_search_returns_only_matching_chunks_and_the_best_of_them(paragraphs, tmp_path, kind):
    from lextune.index.vectorstore import DocFilter

    ids, vecs, q, fields = paragraphs["ids"], paragraphs["vectors"], paragraphs["queries"], paragraphs["fields"]
    store = _store(kind, tmp_path / "s")
    store.build(ids, vecs, fields)
    where = DocFilter(law=["law1", "law3"], kind="법률")
    try:
        got = store.search(q, 10, where)
    finally:
        store.close()
    rows = np.array([i for i, f in enumerate(fields) if where.matches(f)])
    exact = _exact(vecs, q, 10, rows)
    for row, best in zip(got, exact, strict=True):
        assert len(row) == 10 and all(where.matches(fields[int(d[1:])]) for d, _ in row)
        assert {d for d, _ in row} == {ids[i] for i in best}


@pytest.mark.parametrize("kind", ["faiss", "milvus"])
def test_an_upsert_changes_one_result_and_a_delete_removes_it(paragraphs, tmp_path, kind):
    ids, vecs, q, fields = paragraphs["ids"], paragraphs["vectors"], paragraphs["queries"], paragraphs["fields"]
    store = _store(kind, tmp_path / "s")
    store.build(ids, vecs, fields)
    try:
        before = store.search(q[:1], 5)[0]
        target = "p7"
        assert target not in dict(before)
        store.upsert([target], q[:1], [fields[7]])  # p7 now lies exactly on the query
        after = store.search(q[:1], 5)[0]
        assert after[0][0] == target and after[0][1] == pytest.approx(float(q[0] @ q[0]), abs=1e-5)
        assert [d for d, _ in after[1:]] == [d for d, _ in before[:4]]
        store.upsert(["new"], q[:1], [fields[0]])  # a new id is added
        store.delete([target])
        final = store.search(q[:1], 5)[0]
        assert target not in dict(final) and final[0][0] == "new" and len(store.ids) == len(ids)
    finally:
        store.close()


def test_a_filter_from_pipeline_yaml_reaches_bm25_dense_and_expansion(tmp_path, encoder):
    import yaml

    from lextune.config import load_config
    from lextune.index import PipelineConfig, build_index, build_pipeline
    from lextune.index.dense import DenseConfig
    from lextune.index.lexindex import IndexBuildConfig
    from lextune.index.pipeline import PipelineResources
    from lextune.ingest import ingest_chunks
    from lextune.ingest.refs import linked_docs

    chunks, _ = ingest_chunks([LAW, LAWS / "010910.json"])
    docs, links = linked_docs(chunks)
    index = build_index(docs, tmp_path / "idx", IndexBuildConfig(dense=DenseConfig(vector_store="milvus")),
                        encoder=encoder, links=links)
    law = docs[0]["law"]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "retrievers": ["bm25", "dense"], "expand": {"top": 5}, "filter": {"law": law, "kind": ["법률", "시행령"]}},
        allow_unicode=True), encoding="utf-8")
    config = load_config(PipelineConfig, tmp_path / "p.yaml")
    assert config.filter.expr() == f'law in ["{law}"] and kind in ["법률", "시행령"]'
    queries = {"a": "전자금융거래 이용자 보호", "b": "거래정보 제공 요구", "c": "과태료 부과"}
    unfiltered = build_pipeline(index, PipelineConfig(retrievers=["bm25", "dense"]),
                                PipelineResources(encoder=encoder)).search(queries, 20)
    assert {index.docs[d]["law"] for r in unfiltered.values() for d in r} != {law}  # both laws answer
    pipe = build_pipeline(index, config, PipelineResources(encoder=encoder))
    run, trace = pipe.run(queries, 20)
    for part in ("bm25", "dense"):
        assert {index.docs[d]["law"] for r in trace[part].values() for d in r} == {law}
    assert {index.docs[d]["law"] for r in run.values() for d in r} == {law}
    assert all(len(r) == 20 for r in run.values())
    index.dense().close()


def test_a_filter_needs_a_field(tmp_path):
    from pydantic import ValidationError

    from lextune.index.vectorstore import DocFilter

    with pytest.raises(ValidationError, match="at least one of"):
        DocFilter()
    with pytest.raises(ValidationError, match="at least one value"):
        DocFilter(law=[])
    assert DocFilter(article=6).conditions() == {"article": ("6",)}


def test_chunk_ids_are_stable_across_reingests(tmp_path):
    """The key of every incremental update: the same provision gets the same id on every ingest, and an
    amended law keeps the ids of the provisions it did not touch."""
    from lextune.ingest import ingest_chunks

    first, _ = ingest_chunks([LAW])
    again, _ = ingest_chunks([LAW])
    assert [c.id for c in first] == [c.id for c in again]
    law = json.loads(LAW.read_text(encoding="utf-8"))
    text = json.dumps(law, ensure_ascii=False).replace("경제정의를 실현하고", "경제정의와 공정을 실현하고", 1)
    (tmp_path / LAW.name).write_text(text, encoding="utf-8")
    amended, _ = ingest_chunks([tmp_path / LAW.name])
    assert [c.id for c in amended] == [c.id for c in first]
    assert [c.id for c, d in zip(first, amended, strict=True) if c.contents != d.contents] == [first[0].id]


def _write_chunks(folder: Path, chunks) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as f:
        for c in chunks:
            f.write(c.model_dump_json() + "\n")
    return folder


@pytest.mark.parametrize("kind", ["faiss", "milvus"])
def test_index_add_upserts_changed_and_new_chunks_deletes_removed_ones_and_encodes_only_those(
        tmp_path, encoder, monkeypatch, kind):
    from typer.testing import CliRunner

    from lextune.cli.main import app
    from lextune.index import LexIndex
    from lextune.index.pipeline import PipelineConfig, build_pipeline
    from lextune.ingest import ingest_chunks
    from lextune.models.biencoder import BiEncoder

    chunks, _ = ingest_chunks([LAW])
    _write_chunks(tmp_path / "v1", chunks)
    runner = CliRunner()
    res = runner.invoke(app, ["index", "build", "--chunks", str(tmp_path / "v1"), "-o", str(tmp_path / "idx"),
                              "--dense", "bundled:multilingual-e5-small", "--vector-store", kind])
    assert res.exit_code == 0, res.output
    before = LexIndex.load(tmp_path / "idx")
    kept = chunks[5].id
    old_vector = before.dense().vectors([before.dense().ids.index(kept)])
    before.dense().close()

    # v2 of the law: paragraph 0 amended, paragraph 3 repealed, a new paragraph at the end
    changed = chunks[0].model_copy(update={"text": "개정된 목적 조항: 가상자산 거래의 투명성을 확보한다.",
                                           "contents": "개정된 목적 조항: 가상자산 거래의 투명성을 확보한다."})
    added = chunks[1].model_copy(update={"id": chunks[1].id + "-new", "text": "신설: 스테이블코인 발행인의 준비자산 공시",
                                         "contents": "신설: 스테이블코인 발행인의 준비자산 공시"})
    v2 = [changed, *chunks[1:3], *chunks[4:], added]
    _write_chunks(tmp_path / "v2", v2)
    encoded: list[str] = []
    real = BiEncoder.encode_passages
    monkeypatch.setattr(BiEncoder, "encode_passages", lambda self, texts, *a, **kw: (
        encoded.extend(texts), real(self, texts, *a, **kw))[1])
    res = runner.invoke(app, ["index", "add", str(tmp_path / "idx"), "--chunks", str(tmp_path / "v2")])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert f"1 added, 1 changed, 1 removed, {len(v2) - 2} unchanged" in said
    # only the two new texts go to the encoder (or come from the embedding cache, filled by an earlier test)
    assert "encoding: 2/2" in said and set(encoded) <= {changed.contents, added.contents}

    index = LexIndex.load(tmp_path / "idx")
    ids = [c.id for c in v2]
    assert list(index.docs) == ids and index.meta["documents"] == len(v2)
    assert sorted(index.bm25.ids) == sorted(ids) and sorted(index.dense().ids) == sorted(ids)
    assert np.allclose(index.dense().vectors([index.dense().ids.index(kept)]), old_vector, atol=1e-6)
    pipe = build_pipeline(index, PipelineConfig(retrievers=["dense"]))
    assert next(iter(pipe.search({"q": "스테이블코인 준비자산 공시"}, 3)["q"])) == added.id
    bm25 = build_pipeline(index, PipelineConfig(retrievers=["bm25"])).search({"q": "가상자산 투명성"}, 3)["q"]
    assert next(iter(bm25)) == changed.id
    assert chunks[3].id not in pipe.search({"q": chunks[3].text}, 10)["q"]
    assert index.meta["updates"][-1] | {"at": None, "inputs": None} == {
        "added": 1, "changed": 1, "removed": 1, "unchanged": len(v2) - 2, "at": None, "inputs": None}
    index.dense().close()

    # the same input again: nothing to do, nothing encoded
    encoded.clear()
    res = runner.invoke(app, ["index", "add", str(tmp_path / "idx"), "--chunks", str(tmp_path / "v2")])
    assert "0 added, 0 changed, 0 removed" in " ".join(res.output.split()) and encoded == []


def test_index_add_scopes_deletion_to_the_documents_it_holds(tmp_path, encoder):
    from lextune.index import LexIndex, build_index, docs_from_chunks
    from lextune.index.update import update_index
    from lextune.ingest import ingest_chunks

    a, _ = ingest_chunks([LAW])
    b, _ = ingest_chunks([LAWS / "010910.json"])
    build_index(docs_from_chunks(a), tmp_path / "idx")  # BM25 only
    plan = update_index(tmp_path / "idx", docs_from_chunks(b))  # another law: added, nothing of the first removed
    assert len(plan.added) == len(b) and not plan.removed
    plan = update_index(tmp_path / "idx", docs_from_chunks(b[:-1]))  # that law lost its last chunk
    assert plan.removed == [b[-1].id]
    plan = update_index(tmp_path / "idx", docs_from_chunks(a), full=True)  # the whole corpus is now law a
    assert sorted(plan.removed) == sorted(c.id for c in b[:-1])
    assert list(LexIndex.load(tmp_path / "idx").docs) == [c.id for c in a]


def test_serve_answers_from_a_milvus_index(tmp_path, encoder):
    from fastapi.testclient import TestClient

    from lextune.index import IndexBuildConfig, LexIndex, build_index, docs_from_chunks
    from lextune.index.dense import DenseConfig
    from lextune.ingest import ingest_chunks
    from lextune.serve import ServeConfig, create_app

    chunks, _ = ingest_chunks([LAW])
    for store, folder in (("faiss", "f"), ("milvus", "m")):
        build_index(docs_from_chunks(chunks), tmp_path / folder, IndexBuildConfig(dense=DenseConfig(vector_store=store)),
                    encoder=encoder)
    results = {}
    for folder in ("f", "m"):
        index = LexIndex.load(tmp_path / folder)
        with TestClient(create_app(ServeConfig(api_key_env=None), encoder=encoder, index=index)) as client:
            body = client.post("/v1/search", json={"query": "금융거래 정보 제공 요구", "k": 5}).json()
        results[folder] = [(h["id"], round(h["score"], 4)) for h in body["results"]]
        if index.dense() is not None:
            index.dense().close()
    assert results["f"] == results["m"] and len(results["m"]) == 5


def test_the_milvus_extra_is_named_when_missing(monkeypatch, tmp_path):
    import sys

    from lextune.errors import LextuneError
    from lextune.index.vectorstore import MilvusStore

    monkeypatch.setitem(sys.modules, "pymilvus", None)
    store = _store("milvus", tmp_path / "m")
    assert isinstance(store, MilvusStore)
    with pytest.raises(LextuneError, match=r'pip install "lextune\[milvus\]"'):
        store.build(["a"], np.eye(1, 4, dtype=np.float32), [{}])


def test_an_index_on_a_milvus_uri_replaced_by_a_rebuild_leaves_no_collection_behind(tmp_path, encoder):
    """`milvus:URI` stores outside the index folder (here a Milvus Lite file standing in for a server): a rebuild
    into the same folder drops the collection it replaces."""
    from pymilvus import MilvusClient

    from lextune.index import IndexBuildConfig, LexIndex, build_index, docs_from_chunks
    from lextune.index.dense import DenseConfig
    from lextune.ingest import ingest_chunks

    server = tmp_path / "server.db"
    chunks, _ = ingest_chunks([LAW])
    config = IndexBuildConfig(dense=DenseConfig(vector_store=f"milvus:{server}"))
    names = []
    for _ in range(2):
        index = build_index(docs_from_chunks(chunks), tmp_path / "idx", config, encoder=encoder)
        names.append(index.dense().store.collection)
        assert not (tmp_path / "idx" / "dense" / "milvus.db").exists()  # the vectors live at the URI
        hits = index.dense().search({"q": chunks[3].text}, 3)["q"]
        assert next(iter(hits)) == chunks[3].id
        index.dense().close()
    assert names[0] != names[1]
    client = MilvusClient(str(server))
    try:
        assert client.list_collections() == [names[1]]
    finally:
        client.close()
    assert LexIndex.load(tmp_path / "idx").dense_spec
