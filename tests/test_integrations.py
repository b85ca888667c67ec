"""lextune as a retriever of the real LangChain (langchain-core) and LlamaIndex (llama-index-core) packages:
the same ids in the same order as `lextune search` for the same pipeline YAML, locally and through a
running service, with the chunk's breadcrumb, law, article and scores as metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from liveserver import serving

LAWS = Path(__file__).resolve().parents[1] / "src" / "lextune" / "data" / "laws"
QUESTIONS = {"q1": "금융거래의 비밀보장과 거래정보 제공", "q2": "채권추심자가 채무자에게 연락할 수 있는 시간",
             "q3": "실명확인 의무를 위반한 금융회사의 과태료"}
PIPELINE = "retrievers: [bm25]\nexpand: {top: 3}\n"  # BM25, then the provisions its top hits cite


@pytest.fixture(scope="module")
def indexed(module_tmp):
    from lextune.index import IndexBuildConfig, build_index
    from lextune.ingest import ingest, read_chunks
    from lextune.ingest.refs import linked_docs

    ingest([LAWS / "000549.json", LAWS / "010910.json"], module_tmp / "chunks")
    docs, links = linked_docs(read_chunks(module_tmp / "chunks"))
    build_index(docs, module_tmp / "idx", IndexBuildConfig(dense=None), links=links)
    (module_tmp / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    queries = module_tmp / "queries.jsonl"
    queries.write_text("".join(json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n"
                               for q, t in QUESTIONS.items()), encoding="utf-8")
    res = CliRunner().invoke(app, ["search", "--index", str(module_tmp / "idx"), "--pipeline",
                                   str(module_tmp / "pipeline.yaml"), "--queries", str(queries), "-k", "5",
                                   "--run-out", str(module_tmp / "run.trec")])
    assert res.exit_code == 0, res.output
    from lextune.runs import read_trec_run

    run = read_trec_run(module_tmp / "run.trec")
    expected = {q: [d for d, _ in sorted(run[q].items(), key=lambda kv: -kv[1])] for q in QUESTIONS}
    assert all(len(v) == 5 for v in expected.values())
    return module_tmp, expected


def test_langchain_retriever_returns_what_lextune_search_returns(indexed):
    from langchain_core.documents import Document

    from lextune.integrations.langchain import LextuneRetriever

    folder, expected = indexed
    retriever = LextuneRetriever(index=str(folder / "idx"), pipeline=str(folder / "pipeline.yaml"), k=5)
    for q, text in QUESTIONS.items():
        docs = retriever.invoke(text)
        assert all(isinstance(d, Document) for d in docs)
        assert [d.id for d in docs] == [d.metadata["id"] for d in docs] == expected[q]
    top = retriever.invoke(QUESTIONS["q2"])[0]
    assert top.metadata["law"] == "채권의 공정한 추심에 관한 법률" and top.metadata["article"]
    assert top.metadata["title"].startswith("채권의 공정한 추심에 관한 법률 > 제") and "bm25" in top.metadata["scores"]
    from lextune.index import LexIndex

    assert top.page_content == LexIndex.load(folder / "idx").docs[top.id]["text"]  # the chunk's text, no breadcrumb
    assert retriever.batch(list(QUESTIONS.values()))[0][0].id == expected["q1"][0]  # a Runnable like any other


def test_llama_index_retriever_returns_what_lextune_search_returns(indexed):
    from llama_index.core.schema import NodeWithScore

    from lextune.integrations.llama_index import LextuneRetriever

    folder, expected = indexed
    retriever = LextuneRetriever(index=folder / "idx", pipeline=folder / "pipeline.yaml", k=5)
    for q, text in QUESTIONS.items():
        nodes = retriever.retrieve(text)
        assert all(isinstance(n, NodeWithScore) for n in nodes)
        assert [n.node.id_ for n in nodes] == expected[q]
        assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    node = retriever.retrieve(QUESTIONS["q3"])[0].node
    assert node.metadata["law"] and node.metadata["article"] and node.text


def test_both_retrievers_over_a_running_service_match_the_local_pipeline(indexed, monkeypatch):
    from lextune.config import load_config
    from lextune.errors import ConfigError
    from lextune.index.pipeline import PipelineConfig
    from lextune.integrations.langchain import LextuneRetriever as LangChainRetriever
    from lextune.integrations.llama_index import LextuneRetriever as LlamaRetriever
    from lextune.serve import ServeConfig, create_app

    folder, expected = indexed
    monkeypatch.setenv("LEXTUNE_INTEGRATION_KEY", "k-123")
    config = ServeConfig(index=str(folder / "idx"), pipeline=load_config(PipelineConfig, folder / "pipeline.yaml"),
                         api_key_env="LEXTUNE_INTEGRATION_KEY")
    with serving(create_app(config)) as url:
        lc = LangChainRetriever(url=url, api_key="k-123", k=5)
        li = LlamaRetriever(url=url, api_key="k-123", k=5)
        for q, text in QUESTIONS.items():
            assert [d.id for d in lc.invoke(text)] == expected[q]
            assert [n.node.id_ for n in li.retrieve(text)] == expected[q]
        assert lc.invoke(QUESTIONS["q2"])[0].metadata["law"] == "채권의 공정한 추심에 관한 법률"
        with pytest.raises(ConfigError, match="401"):
            LangChainRetriever(url=url, api_key="wrong", k=5).invoke("보증금")
    with pytest.raises(ConfigError, match="either index"):
        LangChainRetriever(k=5)
