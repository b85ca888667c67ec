"""The HTTP service on loopback: the real openai client, plain HTTP for rerank and search, limits, a
bounded schemathesis fuzz of the OpenAPI spec, and micro-batching of concurrent requests."""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from liveserver import serving  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAW = REPO / "src" / "lextune" / "data" / "laws" / "000549.json"
KEY = "test-key-123"


@pytest.fixture(scope="module")
def served(encoder, onnx_encoder, bundled_dir, module_tmp, monkeypatch_module):
    """The service as `lextune serve` runs it on a CPU: queries on ONNX Runtime, the index built by torch."""

    from lextune.index import IndexBuildConfig, build_index, docs_from_chunks
    from lextune.index.dense import DenseConfig
    from lextune.index.rerank import RerankConfig, Reranker
    from lextune.ingest import ingest_chunks
    from lextune.serve import ServeConfig, create_app

    chunks, _ = ingest_chunks([LAW])
    index = build_index(docs_from_chunks(chunks), module_tmp / "idx",
                        IndexBuildConfig(dense=DenseConfig(model="bundled:multilingual-e5-small")), encoder=encoder)
    reranker = Reranker(RerankConfig(model=str(bundled_dir), max_length=256), device="cpu")
    monkeypatch_module.setenv("LEXTUNE_TEST_KEY", KEY)
    config = ServeConfig(api_key_env="LEXTUNE_TEST_KEY", model_name="e5-small", reranker_name="rr",
                         limits={"max_body_bytes": 64 * 1024, "max_inputs": 16, "max_documents": 20,
                                 "max_chars": 2000, "max_total_chars": 20_000, "max_k": 20},
                         batching={"max_batch": 64, "max_wait_ms": 20}, rerank_depth=10)
    app = create_app(config, encoder=onnx_encoder, reranker=reranker, index=index)
    with serving(app) as url:
        yield {"url": url, "app": app, "index": index, "reranker": reranker, "chunks": chunks}


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _post(served, path, body, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(served["url"] + path, json=body, headers=headers, timeout=60, **kw)


def test_openai_client_embeddings_float_and_base64(served, encoder):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=served["url"] + "/v1", api_key=KEY)
    texts = ["전세보증금을 돌려받지 못하면?", "금융거래의 비밀보장"]
    # the client asks for base64 by default and decodes it itself
    got = client.embeddings.create(model="e5-small", input=texts)
    want = encoder.encode_queries(texts)
    assert got.model == "e5-small" and len(got.data) == 2 and [d.index for d in got.data] == [0, 1]
    np.testing.assert_allclose(np.array([d.embedding for d in got.data]), want, atol=1e-5)
    # usage: the tokens the model read, prompt ("query: ") and special tokens included
    tokens = sum(len(ids) for ids in encoder.model.tokenizer(["query: " + t for t in texts])["input_ids"])
    assert got.usage.prompt_tokens == got.usage.total_tokens == tokens
    flt = client.embeddings.create(model="e5-small", input=texts[0], encoding_format="float")
    np.testing.assert_allclose(flt.data[0].embedding, want[0], atol=1e-5)
    psg = client.embeddings.create(model="e5-small", input=[texts[1]], extra_body={"input_type": "passage"})
    np.testing.assert_allclose(psg.data[0].embedding, encoder.encode_passages([texts[1]])[0], atol=1e-5)
    assert [m.id for m in client.models.list().data] == ["e5-small", "rr"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served["url"] + "/v1", api_key="wrong").embeddings.create(model="e5-small", input="x")
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_base64_is_little_endian_float32(served, encoder):
    r = _post(served, "/v1/embeddings", {"input": "보증금", "encoding_format": "base64", "input_type": "query"})
    assert r.status_code == 200
    vec = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, encoder.encode_queries(["보증금"])[0], atol=1e-5)


def test_rerank_cohere_shape(served):
    docs = [c.contents for c in served["chunks"][:6]]
    query = "금융회사등은 거래자의 실명으로 금융거래를 하여야 한다"
    r = _post(served, "/v1/rerank", {"model": "rr", "query": query, "documents": docs, "top_n": 3,
                                     "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    want = served["reranker"].score([(query, d) for d in docs])
    order = sorted(range(len(docs)), key=lambda i: -want[i])[:3]
    assert [x["index"] for x in body["results"]] == order
    assert [x["relevance_score"] for x in body["results"]] == pytest.approx([want[i] for i in order], abs=1e-4)
    assert body["results"][0]["document"]["text"] == docs[order[0]]
    assert body["usage"]["total_tokens"] > 0
    # Jina-style documents as objects, no documents returned by default
    r = _post(served, "/v1/rerank", {"query": query, "documents": [{"text": d} for d in docs[:2]]})
    assert r.status_code == 200 and all("document" not in x for x in r.json()["results"])


def test_search_returns_breadcrumbs_and_each_part_score(served):
    r = _post(served, "/v1/search", {"query": "금융회사등이 거래정보를 제공할 수 있는 경우", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reranked"] is True and len(body["results"]) == 5
    hit = body["results"][0]
    assert hit["id"] in served["index"].docs and " > " in hit["title"] and hit["text"]
    assert {"rerank", "fused"} <= set(hit["scores"]) and ({"bm25", "dense"} & set(hit["scores"]))
    assert [h["rank"] for h in body["results"]] == [1, 2, 3, 4, 5]
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)
    plain = _post(served, "/v1/search", {"query": "금융거래의 비밀보장", "k": 3, "rerank": False}).json()
    assert plain["reranked"] is False and "rerank" not in plain["results"][0]["scores"]
    # no query terms left after Kiwi filtering and a tiny query: still an answer, never a 500
    assert _post(served, "/v1/search", {"query": "", "k": 3}).status_code == 200


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("/v1/embeddings", {"input": ["a"] * 17}, 400, "too_many_inputs"),
    ("/v1/embeddings", {"input": "가" * 2001}, 400, "input_too_long"),
    ("/v1/embeddings", {"input": []}, 400, None),
    ("/v1/embeddings", {"input": [1, 2, 3]}, 422, "invalid_body"),
    ("/v1/embeddings", {"input": "a", "dimensions": 1024}, 400, None),
    ("/v1/embeddings", {"input": "a", "model": "../../etc/passwd"}, 404, "model_not_found"),
    ("/v1/rerank", {"query": "q", "documents": ["d"] * 21}, 400, "too_many_inputs"),
    ("/v1/search", {"query": "q", "k": 21}, 400, None),
    ("/v1/search", {"query": "q", "k": 0}, 422, "invalid_body"),
])
def test_limits_and_bad_bodies_get_clear_4xx(served, path, body, status, code):
    r = _post(served, path, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"] == "invalid_request_error"
    if code:
        assert err["code"] == code


def test_auth_malformed_and_oversized_bodies(served):
    assert _post(served, "/v1/embeddings", {"input": "a"}, key=None).status_code == 401
    r = httpx.post(served["url"] + "/v1/embeddings", json={"input": "a"}, headers={"X-API-Key": KEY})
    assert r.status_code == 200
    r = httpx.post(served["url"] + "/v1/embeddings", content=b'{"input": ["a",', timeout=30,
                   headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json" and r.json()["error"]["param"] is None
    assert "not valid JSON" in r.json()["error"]["message"] and "at character 15" in r.json()["error"]["message"]
    health = httpx.get(served["url"] + "/health").json()  # no key needed for liveness
    assert health["status"] == "ok" and health["backend"] == "onnx"


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/embeddings", '{"input": "\\ud800abc"}', "input[0]"),
    ("/v1/embeddings", '{"input": ["ok", "x\\udfff"]}', "input[1]"),
    ("/v1/search", '{"query": "\\udfff"}', "query"),
    ("/v1/rerank", '{"query": "\\ud83d", "documents": ["d"]}', "query"),
    ("/v1/rerank", '{"query": "q", "documents": [{"text": "\\udc00"}]}', "documents[0]"),
])
def test_unpaired_surrogates_get_a_400_that_names_the_field(served, path, body, param):
    r = httpx.post(served["url"] + path, content=body.encode(), timeout=30,
                   headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_text" and err["param"] == param and "surrogate" in err["message"]


def test_poison_requests_do_not_fail_their_neighbours(served):
    poison = [b'{"input": "\\ud800abc"}', b'{"query": "\\udfff"}']
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    with ThreadPoolExecutor(12) as pool:
        good = [pool.submit(_post, served, "/v1/embeddings", {"input": [f"질문 {i}", "전세 보증금"]}) for i in range(10)]
        good += [pool.submit(_post, served, "/v1/search", {"query": f"보험 {i}", "k": 3}) for i in range(6)]
        bad = [pool.submit(httpx.post, served["url"] + ("/v1/embeddings" if i % 2 == 0 else "/v1/search"),
                           content=poison[i % 2], headers=headers, timeout=60) for i in range(8)]
        assert [f.result().status_code for f in good] == [200] * 16
        assert {f.result().status_code for f in bad} == {400}


def _held_batches(fn, first, rest, max_batch):
    """Submit ``first``; while ``fn`` holds the model on it, queue ``rest``; then release. Returns every
    request's result (or exception), the item lists ``fn`` was called with, and the batcher."""
    import asyncio

    from lextune.serve.batcher import MicroBatcher

    release = threading.Event()
    calls: list[list] = []

    def held(items):
        calls.append(list(items))
        if len(calls) == 1:
            release.wait(10)  # the first (lone) request holds the model while the others queue
        return fn(items)

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(held, pool, max_batch=max_batch, max_wait_ms=0)
            head = asyncio.create_task(batcher.submit(first))
            while not calls:
                await asyncio.sleep(0.001)
            tail = [asyncio.create_task(batcher.submit(items)) for items in rest]
            await asyncio.sleep(0.05)
            release.set()
            out = await asyncio.gather(head, *tail, return_exceptions=True)
            await batcher.close()
            return out, batcher

    out, batcher = asyncio.run(scenario())
    return out, calls, batcher


def test_a_failing_batch_is_retried_one_request_at_a_time():
    """The batcher's own guarantee, whatever slips past the edge checks: only the culprit fails."""
    def fn(items):
        if "bad" in items:
            raise ValueError("cannot take 'bad'")
        return [x.upper() for x in items]

    (a, bc, bad, d), calls, batcher = _held_batches(fn, ["a"], [["b", "c"], ["bad"], ["d"]], max_batch=16)
    assert a == ["A"] and bc == ["B", "C"] and d == ["D"]
    assert isinstance(bad, ValueError) and batcher.failed_batches == 1
    assert calls == [["a"], ["b", "c", "bad", "d"], ["b", "c"], ["bad"], ["d"]]


@pytest.mark.parametrize(("method", "path", "content", "status"), [
    ("GET", "/v1/nothing-here", None, 404),
    ("GET", "/v1/embeddings", None, 405),
    ("POST", "/v1/embeddings", b'{"input": "\xff\xfe"}', 400),
    ("POST", "/v1/embeddings", b'{"input": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400),
    ("POST", "/v1/search", b"not json at all", 400),
])
def test_every_error_has_the_documented_shape(served, method, path, content, status):
    r = httpx.request(method, served["url"] + path, content=content, timeout=30,
                      headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and "detail" not in body


def test_the_key_is_checked_before_the_body(served):
    for content in (b'{"input": ["a",', b'{"input": [1, 2]}', b"\xff"):
        r = httpx.post(served["url"] + "/v1/embeddings", content=content, timeout=30,
                       headers={"content-type": "application/json"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(served["url"] + "/v1/embeddings", content=b'{"input": "a"}', timeout=30,
                   headers={"Authorization": f"bearer {KEY}", "content-type": "application/json"})
    assert r.status_code == 200  # the scheme's case does not matter, as before
    assert httpx.get(served["url"] + "/openapi.json").status_code == 200


def test_oversized_bodies_are_refused_without_hurting_requests_in_flight(served):
    big = json.dumps({"input": ["가" * 1000] * 40}).encode()  # ~120 KB > the 64 KiB limit

    def chunked():  # no Content-Length: the limit must still hold while streaming
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    with ThreadPoolExecutor(8) as pool:
        good = [pool.submit(_post, served, "/v1/embeddings", {"input": [f"질문 {i}"] * 4}) for i in range(6)]
        bad = pool.submit(httpx.post, served["url"] + "/v1/embeddings", content=big, headers=headers, timeout=30)
        bad_stream = pool.submit(httpx.post, served["url"] + "/v1/embeddings", content=chunked(), headers=headers,
                                 timeout=30)
        assert bad.result().status_code == 413
        assert bad_stream.result().status_code == 413
        assert [f.result().status_code for f in good] == [200] * 6


def test_concurrent_requests_are_batched(served, encoder):
    state = served["app"].state.lextune
    batcher = state.batchers["query"]
    calls_before, items_before = batcher.calls, batcher.items
    texts = [f"임대차 보증금 질문 {i}" for i in range(24)]
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda t: _post(served, "/v1/embeddings", {"input": t, "encoding_format": "float"}),
                                texts))
    assert all(r.status_code == 200 for r in results)
    got = np.array([r.json()["data"][0]["embedding"] for r in results])
    np.testing.assert_allclose(got, encoder.encode_queries(texts), atol=1e-4)  # each answer is its own text's
    assert batcher.items - items_before == 24
    assert batcher.calls - calls_before < 24  # fewer model calls than requests


def test_health_counts_batches_and_faiss_runs_single_threaded_in_the_model_thread(served):
    faiss = pytest.importorskip("faiss")
    state = served["app"].state.lextune
    r = _post(served, "/v1/search", {"query": "금융거래의 비밀보장", "k": 3, "rerank": False})
    assert r.status_code == 200
    stats = httpx.get(served["url"] + "/health", timeout=10).json()["batching"]["search"]
    assert stats["calls"] >= 1 and stats["items"] >= stats["calls"] and stats["busy_s"] > 0
    # OpenMP's thread count is per thread: it must be set where the searches run, not only where the
    # service was built (there faiss kept its default team of spinning threads beside the model).
    assert state.executor.submit(faiss.omp_get_max_threads).result() == state.config.faiss_threads == 1


def test_greedy_batching_takes_what_queued_while_the_model_ran():
    out, calls, _ = _held_batches(lambda items: [x * 10 for x in items], [0], [[i] for i in range(1, 7)], max_batch=4)
    assert out == [[i * 10] for i in range(7)]
    assert calls == [[0], [1, 2, 3, 4], [5, 6]]  # alone at once; then what queued, max_batch at a time


def test_openapi_fuzz_gives_no_server_errors(served):
    """A bounded property-based fuzz of every operation in the OpenAPI spec (schemathesis)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    schema = schemathesis.openapi.from_url(served["url"] + "/openapi.json")
    headers = {"Authorization": f"Bearer {KEY}"}
    ran = cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            nonlocal cases
            cases += 1
            response = case.call(base_url=served["url"], headers=headers, timeout=60)
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                     response_schema_conformance], headers=headers)
            if response.status_code >= 400:
                _documented_error(response)

        check()
        ran += 1
    assert ran == 5
    print(f"schemathesis: {cases} cases over {ran} operations, no response outside the documented shape")


def _documented_error(response) -> None:
    assert response.status_code in (400, 401, 404, 405, 413, 422), response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


HOSTILE = [
    b'{"input": "\\ud800abc"}', b'{"input": ["a", "\\udfff"]}', b'{"query": "\\udfff"}',
    b'{"query": "q", "documents": ["\\ud800"]}', b'{"query": "q", "k": 1e309}', b'{"query": "q", "k": 1' + b"0" * 400 + b"}",
    b'{"input": "a", "dimensions": -1' + b"0" * 40 + b"}", b'{"query": "q", "top_n": 99999999999999999999}',
    b"[" * 5000 + b"]" * 5000, b'{"input": ' + b"[" * 3000 + b"]" * 3000 + b"}", b"null", b"[]", b'"text"', b"{}",
    b'{"input": null}', b'{"query": ["a"]}', b'{"query": {"$gt": ""}}', b"\xff\xfe\x00", b"", b'{"input": "a"',
    b'{"input": "a", "encoding_format": "base85"}', b'{"query": "q", "rerank": "yes"}', b'{"documents": "abc", "query": 1}',
]


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/rerank", "/v1/search"])
def test_hostile_bodies_get_a_documented_error_or_an_answer(served, path):
    """Surrogates, numbers past float range, deep nesting, wrong JSON types: never a 5xx, never a shape
    the API does not document."""
    for body in HOSTILE:
        for headers in ({"Authorization": f"Bearer {KEY}"}, {}):
            r = httpx.post(served["url"] + path, content=body, timeout=60,
                           headers={**headers, "content-type": "application/json"})
            if r.status_code == 200:
                assert headers, "answered without the key"
                continue
            _documented_error(r)
            if not headers:
                assert r.status_code == 401


def test_serve_answers_the_ranking_that_lextune_eval_measures(served, encoder, bundled_dir, tmp_path):
    """One pipeline YAML (hybrid, RRF, reranker blended at 0.5): /v1/search and `lextune eval -s` rank alike."""
    import torch
    import yaml
    from fastapi.testclient import TestClient
    from sentence_transformers import CrossEncoder
    from typer.testing import CliRunner

    from lextune.cli.main import app as cli
    from lextune.index import PipelineConfig
    from lextune.runs import read_trec_run
    from lextune.serve import ServeConfig, create_app

    torch.manual_seed(0)  # a reranker with a fixed head, saved once: both sides load the same weights
    CrossEncoder(str(bundled_dir), num_labels=1, max_length=128, device="cpu").save(str(tmp_path / "rr"))
    spec = {"retrievers": ["bm25", "dense"], "fusion": {"method": "rrf", "rrf_k": 60}, "depth": 30,
            "rerank": {"model": str(tmp_path / "rr"), "k": 8, "max_length": 128, "weight": 0.5}}
    (tmp_path / "pipe.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    index = served["index"]
    queries = {"q1": "금융회사등이 거래정보를 제공할 수 있는 경우", "q2": "실명확인 의무 위반 과태료",
               "q3": "비밀보장 위반 시 처벌"}
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    with open(data / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in index.docs.values():
            f.write(json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]}, ensure_ascii=False) + "\n")
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n"
                                                for q, t in queries.items()), encoding="utf-8")
    first = next(iter(index.docs))
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{first}\t1\n" for q in queries), encoding="utf-8")
    res = CliRunner().invoke(cli, ["eval", "-d", str(data), "-i", str(index.folder), "-s",
                                   f"p={tmp_path / 'pipe.yaml'}", "-o", str(tmp_path / "ev"), "--no-report"])
    assert res.exit_code == 0, res.output
    measured = read_trec_run(tmp_path / "ev" / "runs" / "p.trec")
    config = ServeConfig(api_key_env=None, pipeline=PipelineConfig.model_validate(spec))
    with TestClient(create_app(config, encoder=encoder, index=index)) as client:
        for q, text in queries.items():
            body = client.post("/v1/search", json={"query": text, "k": 10}).json()
            assert body["reranked"] is True
            served_ids = [h["id"] for h in body["results"]]
            expected = sorted(measured[q].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            assert served_ids == [d for d, _ in expected]
            assert [h["score"] for h in body["results"]] == pytest.approx([s for _, s in expected], abs=1e-6)
