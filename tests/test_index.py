"""Retrieval engine: BM25 against hand-computed scores, dense index and its guard, fusion, rerank, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from lextune.errors import ConfigError
from lextune.index.bm25 import BM25Config, BM25Index
from lextune.index.fusion import FusionConfig, fuse_runs
from lextune.index.tokenize import TokenizerConfig, make_tokenizer

WS = BM25Config(tokenizer=TokenizerConfig(kind="whitespace"))


def test_kiwi_keeps_content_morphemes_and_drops_party_placeholders():
    tok = make_tokenizer(TokenizerConfig(num_workers=0))
    (tokens,) = tok(["갑이 을에게 전세보증금을 돌려받지 못한 경우"])
    assert "보증금" in tokens and "전세" in tokens
    assert "갑" not in tokens and "을" not in tokens and "이" not in tokens  # particles and placeholders
    assert tok(["갑이 을에게"]) == [[]]


def test_bm25_matches_hand_computed_lucene_scores():
    docs = ["a b c", "a a d", "e f"]
    index = BM25Index(WS).build(["d1", "d2", "d3"], docs)
    run = index.search({"q": "a d"}, k=3)["q"]
    n, avgdl, k1, b = 3, 8 / 3, 1.2, 0.75

    def idf(df):
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def tf_part(tf, dl):  # Lucene's variant (Kamphuis et al. 2020): no (k1 + 1) factor
        return tf / (tf + k1 * (1 - b + b * dl / avgdl))

    expected_d1 = idf(2) * tf_part(1, 3)
    expected_d2 = idf(2) * tf_part(2, 3) + idf(1) * tf_part(1, 3)
    assert run["d2"] == pytest.approx(expected_d2, rel=1e-4)
    assert run["d1"] == pytest.approx(expected_d1, rel=1e-4)
    assert "d3" not in run  # zero scores are not hits


def test_bm25_empty_and_unknown_queries_give_empty_rankings(tmp_path):
    index = BM25Index().build(["x", "y"], ["금융회사는 이용자를 보호한다", "예금보험공사는 보험금을 지급한다"])
    run = index.search({"empty": "", "stop": "갑이 을에게", "unknown": "블록체인", "ok": "보험금 지급"}, k=5)
    assert run["empty"] == {} and run["stop"] == {} and run["unknown"] == {}
    assert list(run["ok"]) == ["y"]
    index.save(tmp_path / "bm25")
    again = BM25Index.load(tmp_path / "bm25")
    assert again.search({"ok": "보험금 지급"}, k=5) == {"ok": run["ok"]}
    assert again.config.tokenizer.kind == "kiwi"


def test_rrf_fusion_by_hand():
    a = {"q": {"x": 3.0, "y": 2.0, "z": 1.0}}
    b = {"q": {"y": 0.9, "w": 0.8}}
    fused = fuse_runs([a, b], FusionConfig(method="rrf", rrf_k=60))["q"]
    assert fused["y"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["x"] == pytest.approx(1 / 61)
    assert max(fused, key=fused.get) == "y"
    assert fuse_runs([{"q": {}}, {"q": {}}]) == {"q": {}}
    only = fuse_runs([a, {"q": {}}])
    assert only["q"].keys() == a["q"].keys()


def test_rrf_equals_ranx():
    """The plain-Python RRF gives ranx's scores on random runs (distinct scores, queries some runs lack)."""
    import ranx

    rng = np.random.default_rng(3)
    docs = [f"d{i}" for i in range(40)]
    runs = []
    for r in range(3):
        run = {}
        for q in range(12):
            if (q + r) % 5 == 0:
                continue
            picked = rng.choice(docs, size=int(rng.integers(1, 30)), replace=False)
            run[f"q{q}"] = {str(d): float(s) for d, s in zip(picked, rng.permutation(len(picked)) + rng.random(), strict=True)}
        runs.append(run)
    ours = fuse_runs(runs, FusionConfig(method="rrf", rrf_k=20))
    qids = sorted({q for r in runs for q in r})
    filled = [ranx.Run({q: (r.get(q) or {f"__none__{i}": 0.0}) for q in qids}) for i, r in enumerate(runs)]
    ref = ranx.fuse(runs=filled, method="rrf", params={"k": 20}).to_dict()
    for q in qids:
        expected = {d: s for d, s in ref[q].items() if not d.startswith("__none__")}
        assert ours[q].keys() == expected.keys()
        for d, s in expected.items():
            assert ours[q][d] == pytest.approx(s, rel=1e-9)


def test_weighted_sum_fusion_normalises():
    a = {"q": {"x": 10.0, "y": 0.0}}
    b = {"q": {"x": 0.0, "y": 1.0}}
    fused = fuse_runs([a, b], FusionConfig(method="wsum", weights=[0.8, 0.2]))["q"]
    assert fused["x"] == pytest.approx(0.8) and fused["y"] == pytest.approx(0.2)


PASSAGES = {
    "p1": "전자금융거래법 제9조 금융회사는 접근매체의 위조나 변조로 발생한 사고로 이용자에게 손해가 발생한 경우 그 손해를 배상할 책임을 진다.",
    "p2": "예금자보호법 제32조 보험금의 지급한도는 5천만원으로 한다.",
    "p3": "채권의 공정한 추심에 관한 법률 제9조 채권추심자는 야간에 채무자를 방문하여서는 아니 된다.",
}


@pytest.fixture(scope="module")
def built_index(bundled_dir, module_tmp):
    from lextune.index import IndexBuildConfig, build_index
    from lextune.index.dense import DenseConfig

    docs = [{"id": k, "title": k, "text": v, "contents": v, "parent_id": None} for k, v in PASSAGES.items()]
    out = module_tmp / "index"
    return build_index(docs, out, IndexBuildConfig(dense=DenseConfig()))


def _pipe(index, config, encoder=None):
    from lextune.index import PipelineResources, build_pipeline

    return build_pipeline(index, config, PipelineResources(encoder=encoder))


def test_dense_and_hybrid_pipelines(built_index, encoder):
    from lextune.index import PipelineConfig

    q = {"q": "은행이 망하면 예금은 얼마까지 보호되나요?"}
    dense = _pipe(built_index, PipelineConfig(retrievers=["dense"]), encoder).search(q, k=3)["q"]
    assert len(dense) == 3 and max(dense, key=dense.get) == "p2"
    expected = encoder.encode_queries([q["q"]]) @ encoder.encode_passages([PASSAGES["p2"]]).T
    assert dense["p2"] == pytest.approx(float(expected[0, 0]), abs=1e-4)
    hybrid = _pipe(built_index, PipelineConfig(), encoder).search(q, k=2)["q"]
    assert len(hybrid) == 2 and "p2" in hybrid
    assert _pipe(built_index, PipelineConfig(), encoder).search({"e": ""}, k=2) == {"e": {}}


def test_dense_index_refuses_another_model(built_index, bundled_dir):
    from lextune.models.biencoder import BiEncoder

    other = BiEncoder(bundled_dir, template="none", device="cpu")  # other settings -> other vectors
    with pytest.raises(ConfigError, match="was built with model"):
        built_index.dense(other)


def test_embedding_cache_avoids_reencoding(encoder, monkeypatch):
    from lextune.index.dense import encode_passages_cached

    texts = ["캐시 시험 문장 하나", "캐시 시험 문장 둘"]
    first = encode_passages_cached(encoder, texts)
    monkeypatch.setattr(encoder, "encode_passages", lambda *a, **k: pytest.fail("re-encoded a cached passage"))
    again = encode_passages_cached(encoder, list(reversed(texts)))
    assert np.allclose(again, first[::-1])


def test_rerank_reorders_the_top_k(built_index, bundled_dir):
    from lextune.index.pipeline import RerankStep
    from lextune.index.rerank import RerankConfig, Reranker

    reranker = Reranker(RerankConfig(model=str(bundled_dir), k=3), device="cpu")
    base_run = {"q": {"p1": 3.0, "p2": 2.0, "p3": 1.0}}
    queries = {"q": "보이스피싱 피해 배상"}
    scores = dict(zip(["p1", "p2", "p3"], reranker.score([(queries["q"], PASSAGES[p]) for p in ["p1", "p2", "p3"]]), strict=True))
    reranked = reranker.rerank(queries, base_run, PASSAGES)["q"]
    assert reranked == pytest.approx(scores)
    # a shared cache: a second ranking of the same query scores only the pairs not seen yet
    cache: dict = {}
    reranker.rerank(queries, {"q": {"p1": 2.0, "p2": 1.0}}, PASSAGES, k=2, cache=cache)
    seen = []
    original = reranker.score
    reranker.score = lambda pairs: seen.append(len(pairs)) or original(pairs)
    try:
        again = reranker.rerank(queries, base_run, PASSAGES, k=3, cache=cache)["q"]
    finally:
        reranker.score = original
    assert seen == [1] and again == pytest.approx(scores, abs=1e-5)

    top = _apply(RerankStep(reranker, PASSAGES, k_rerank=2, weight=1.0), queries, base_run, k=3)["q"]
    assert set(list(top)[:2]) == {"p1", "p2"} and min(top, key=top.get) == "p3"  # below k keeps its place
    # weight 0 is the first stage itself, and the reranker is not run
    assert _apply(RerankStep(None, PASSAGES, k_rerank=2, weight=0.0), queries, base_run, k=3) == base_run


def _apply(step, queries, run, k):
    from lextune.index.bm25 import run_top

    return run_top(step.apply(queries, run, {}), k)


def test_article_aggregation():
    from lextune.index.pipeline import AggregateStep

    run = {"q": {"L:a1:p1": 0.5, "L:a1:p2": 0.9, "L:a2": 0.7}}
    agg = _apply(AggregateStep({"L:a1:p1": "L:a1", "L:a1:p2": "L:a1"}, depth=100), {"q": "x"}, run, k=5)["q"]
    assert agg == {"L:a1": 0.9, "L:a2": 0.7}


def test_a_retriever_added_through_its_registry_entry_alone(built_index, encoder):
    """A toy retriever is one registry entry: YAML names it with its options, fused like the built-in ones."""
    from lextune.index import PipelineConfig, register_retriever
    from lextune.index.pipeline import RETRIEVERS, RetrieverOptions

    class ToyOptions(RetrieverOptions):
        favourite: str

    class Toy:
        def __init__(self, favourite):
            self.favourite = favourite

        def search(self, queries, k=10):
            return {q: {self.favourite: 1.0} for q in queries}

    register_retriever("toy", ToyOptions)(lambda index, options, config, resources: Toy(options.favourite))
    try:
        cfg = PipelineConfig.model_validate({"retrievers": ["bm25", {"name": "toy", "favourite": "p3"}]})
        assert cfg.model_dump(mode="json")["retrievers"] == ["bm25", {"name": "toy", "favourite": "p3"}]
        run = _pipe(built_index, cfg, encoder).search({"q": "예금 보험금 지급한도"}, k=3)["q"]
        assert "p3" in run and "p2" in run
        alone = _pipe(built_index, PipelineConfig(retrievers=[{"name": "toy", "favourite": "p1"}])).search({"q": "x"}, 3)
        assert alone == {"q": {"p1": 1.0}}
        with pytest.raises(ValueError, match="favourite"):
            PipelineConfig.model_validate({"retrievers": ["toy"]})
    finally:
        del RETRIEVERS["toy"]
    with pytest.raises(ValueError, match="unknown retriever 'toy'"):
        PipelineConfig.model_validate({"retrievers": ["toy"]})


def test_a_pipeline_names_its_dense_model_and_the_index_encodes_for_it(built_index, encoder, bundled_dir):
    """dense_model = the index's model: the stored vectors; another model: the documents encoded for it."""
    from lextune.index import PipelineConfig, PipelineResources, build_pipeline
    from lextune.models.biencoder import BiEncoder

    other = BiEncoder(bundled_dir, template="none", device="cpu")  # other settings -> other vectors
    q = {"q": "은행이 망하면 예금은 얼마까지 보호되나요?"}
    resources = PipelineResources(encoders=[encoder, other])
    stored = build_pipeline(built_index, PipelineConfig(retrievers=["dense"], dense_model=encoder.spec), resources)
    assert stored.retrievers["dense"].inner.index is built_index.dense(encoder)
    encoded = build_pipeline(built_index, PipelineConfig(retrievers=["dense"], dense_model=other.spec), resources)
    run = encoded.search(q, 3)["q"]
    expected = other.encode_queries([q["q"]]) @ other.encode_passages(list(PASSAGES.values())).T
    assert run == pytest.approx(dict(zip(PASSAGES, expected[0].tolist(), strict=True)), abs=1e-4)
    assert not built_index.dense_spec or built_index.dense_spec != other.spec


def test_cli_index_build_and_search(bundled_dir, tmp_path):
    from lextune.runs import read_trec_run

    runner = CliRunner()
    res = runner.invoke(app, ["ingest", "src/lextune/data/laws/010910.json", "-o", str(tmp_path / "chunks"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["index", "build", "--chunks", str(tmp_path / "chunks"), "-o", str(tmp_path / "idx")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["search", "밤에 빚 독촉을 하면 불법인가요", "-i", str(tmp_path / "idx"), "-k", "3"])
    assert res.exit_code == 0, res.output
    assert "채권의 공정한 추심에 관한 법률" in res.output
    (tmp_path / "q.jsonl").write_text('{"_id": "q1", "text": "채권추심자의 야간 방문"}\n', encoding="utf-8")
    res = runner.invoke(app, ["search", "-i", str(tmp_path / "idx"), "--queries", str(tmp_path / "q.jsonl"),
                              "--run-out", str(tmp_path / "run.trec"), "-k", "5"])
    assert res.exit_code == 0, res.output
    run = read_trec_run(tmp_path / "run.trec")
    assert len(run["q1"]) == 5
    res = runner.invoke(app, ["search", "질문", "-i", str(tmp_path / "idx"), "--mode", "dense"])
    assert res.exit_code == 2 and "no dense part" in res.output


def test_cli_index_build_from_a_beir_corpus_indexes_title_and_text(tmp_path):
    from pathlib import Path

    from lextune.index import LexIndex

    tiny = Path(__file__).parent / "fixtures" / "beir_tiny"
    res = CliRunner().invoke(app, ["index", "build", "--beir", str(tiny), "-o", str(tmp_path / "idx")])
    assert res.exit_code == 0, res.output
    index = LexIndex.load(tmp_path / "idx")
    assert index.texts["L1-2-1-0"] == "가상법 제2조\n금융회사는 설명의무를 진다."
    assert index.docs["L1-2-1-0"]["title"] == "가상법 제2조"
    run = index.bm25.search({"q": "설명의무 위반 손해 배상"}, 1)
    assert list(run["q"]) == ["L1-2-2-0"]
    # with a dense part, piped (not a terminal): the encoding is reported as lines, not a bar nobody sees
    res = CliRunner().invoke(app, ["index", "build", "--beir", str(tiny), "-o", str(tmp_path / "idx2"), "--dense",
                                   "bundled:multilingual-e5-small"])
    assert res.exit_code == 0, res.output
    n = len(index.docs)
    assert f"encoding: {n}/{n}" in res.output and LexIndex.load(tmp_path / "idx2").has_dense


def test_auto_index_type_is_exact_when_small_and_hnsw_when_large():
    import faiss
    import numpy as np

    from lextune.index.dense import DenseConfig, DenseIndex

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 16)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(300)]
    small = DenseIndex(DenseConfig(index_type="auto")).build_from_vectors(ids, vecs)
    large = DenseIndex(DenseConfig(index_type="auto", auto_hnsw_above=100)).build_from_vectors(ids, vecs)
    assert isinstance(small.store.index, faiss.IndexFlatIP) and isinstance(large.store.index, faiss.IndexHNSWFlat)
    exact = small.search_vectors(["q"], vecs[:1], 5)["q"]
    approx = large.search_vectors(["q"], vecs[:1], 5)["q"]
    assert next(iter(sorted(exact, key=lambda d: -exact[d]))) == "d0" == max(approx, key=approx.get)


def test_cli_eval_compares_pipeline_yamls_in_one_table_with_p_values(built_index, tmp_path):
    import json

    import yaml

    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": k, "text": v}, ensure_ascii=False) + "\n"
                                               for k, v in PASSAGES.items()), encoding="utf-8")
    queries = {"a": "예금 보험금 지급한도", "b": "야간 방문 채권추심", "c": "접근매체 위조 손해배상"}
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n"
                                                for q, t in queries.items()), encoding="utf-8")
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\na\tp2\t1\nb\tp3\t1\nc\tp1\t1\n", encoding="utf-8")
    (tmp_path / "wsum.yaml").write_text(yaml.safe_dump({"retrievers": ["bm25", "dense"], "fusion": {
        "method": "wsum", "weights": [0.3, 0.7], "norm": "min-max"}}), encoding="utf-8")
    res = CliRunner().invoke(app, ["eval", "-d", str(data), "-i", str(built_index.folder), "-s", "bm25=bm25",
                                   "-s", f"w={tmp_path / 'wsum.yaml'}", "-o", str(tmp_path / "ev"), "--no-report"])
    assert res.exit_code == 0, res.output
    assert "p (ndcg@10)" in res.output and "paired two-sided t-test against bm25" in res.output
    # piped (not a terminal) the whole table prints as Markdown, never cut to 80 columns
    assert "| system | ndcg@10 | recall@10 | recall@100 | mrr@10 | hit_rate@1 | map@10 | precision@10 | W/T/L | p (" \
        in res.output and "…" not in res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["results"]["p_vs_first"]["ndcg@10"]) == {"w"}
    assert metrics["systems"]["w"]["pipeline"]["fusion"]["weights"] == [0.3, 0.7]
    bad = CliRunner().invoke(app, ["eval", "-d", str(data), "-i", str(built_index.folder), "-s", "x=bm25", "-s",
                                   "x=dense", "-o", str(tmp_path / "ev2")])
    assert bad.exit_code == 2 and "its own name" in bad.output


def test_two_writers_on_one_embedding_cache_lose_no_vector(encoder, tmp_path):
    """Two encoders with the same model writing one cache at once (a demo and an index build): every part
    survives, and a fresh reader finds every vector as it was encoded."""
    import threading

    from lextune.index.dense import EmbeddingCache, text_key

    texts = [f"제{i}조 금융회사는 {i}번째 설명의무를 진다." for i in range(48)]
    vecs = encoder.encode_passages(texts)
    halves = {0: range(0, 24), 1: range(24, 48)}
    barrier = threading.Barrier(2)

    def write(which: int) -> None:
        cache = EmbeddingCache(tmp_path, encoder.fingerprint())
        rows = list(halves[which])
        for start in range(0, len(rows), 2):  # twelve parts each, written in step with the other writer
            part = rows[start : start + 2]
            barrier.wait()
            cache.put([text_key(texts[i]) for i in part], vecs[part])

    threads = [threading.Thread(target=write, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found, missing = EmbeddingCache(tmp_path, encoder.fingerprint()).get([text_key(t) for t in texts])
    assert missing == []
    assert np.array_equal(found, vecs.astype(np.float32))
