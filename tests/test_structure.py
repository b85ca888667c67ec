"""The structure steps of a pipeline: law routing, cross-reference expansion and article pooling, on tiny
hand-built corpora with hand-computed scores."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from lextune.errors import ConfigError
from lextune.index.structure import ExpandConfig, LawMatcher, Structure, expand, normalized, pool, route

# A BEIR corpus of statute paragraphs whose titles name their articles (as koblex's): 가상법 제3조 cites its own
# 제5조 and 「나라법」 제2조제1항; 제1조 is the definitions article.
CORPUS = [
    {"_id": "G-1-0-0", "title": "가상법 제1조(정의)", "text": "이 법에서 \"예탁금\"이란 투자자가 맡긴 돈을 말한다."},
    {"_id": "G-3-0-1", "title": "가상법 제3조(예탁금의 반환)", "text": "① 회사는 예탁금을 제5조에 따라 반환한다."},
    {"_id": "G-3-0-2", "title": "가상법 제3조(예탁금의 반환)", "text": "② 반환의 이자는 「나라법」 제2조제1항에 따른다."},
    {"_id": "G-5-0-0", "title": "가상법 제5조(반환의 절차)", "text": "반환은 서면으로 청구한다."},
    {"_id": "N-2-0-1", "title": "나라법 제2조(법정이율)", "text": "① 이율은 연 5분으로 한다."},
    {"_id": "N-2-0-2", "title": "나라법 제2조(법정이율)", "text": "② 상사채권은 연 6분으로 한다."},
    {"_id": "N-9-0-0", "title": "나라법 시행령 제9조(신고)", "text": "신고는 서면으로 한다."},
]


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    from lextune.index import LexIndex

    root = tmp_path_factory.mktemp("structure")
    data = root / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in CORPUS),
                                       encoding="utf-8")
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "예탁금 반환 이자"}, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq\tN-9-0-0\t1\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["index", "build", "--beir", str(data), "-o", str(root / "idx")])
    assert res.exit_code == 0, res.output
    return LexIndex.load(root / "idx")


def test_index_build_keeps_the_citations_between_beir_passages_and_their_law_and_article(tiny_index):
    lines = (tiny_index.folder / "refs.jsonl").read_text(encoding="utf-8").splitlines()
    edges = {(e["source"], e["target"]) for e in map(json.loads, lines)}
    # 제5조 of the same law; 「나라법」 제2조제1항: the first paragraph only
    assert edges == {("G-3-0-1", "G-5-0-0"), ("G-3-0-2", "N-2-0-1")}
    assert tiny_index.docs["G-3-0-2"]["law"] == "가상법" and tiny_index.docs["G-3-0-2"]["article"] == "3"
    s = tiny_index.structure()
    assert s.cites["G-3-0-1"] == ["G-5-0-0"] and s.cited_by["N-2-0-1"] == ["G-3-0-2"]
    assert s.article["G-3-0-1"] == s.article["G-3-0-2"] != s.article["G-5-0-0"]
    assert s.definitions == {"가상법": {"예탁금": ["G-1-0-0"]}}


def test_expansion_reaches_the_cited_provision_scored_from_its_source(tiny_index):
    s = tiny_index.structure()
    # normalised: G-3-0-1 1.0, G-3-0-2 0.5, N-9-0-0 0.0
    scores = {"G-3-0-1": 9.0, "G-3-0-2": 6.0, "N-9-0-0": 3.0}
    out, derived, notes = expand("반환", scores, s, ExpandConfig(top=2, decay=0.5, cited_by=False, definitions=False))
    assert out == pytest.approx({"G-3-0-1": 1.0, "G-3-0-2": 0.5, "N-9-0-0": 0.0, "G-5-0-0": 0.5, "N-2-0-1": 0.25})
    assert notes == {"G-5-0-0": "cited by 가상법 제3조(예탁금의 반환)", "N-2-0-1": "cited by 가상법 제3조(예탁금의 반환)"}
    # top 1: only the best hit's citations; cited_by: the provisions citing a hit join too
    out, _, notes = expand("반환", {"N-2-0-1": 2.0, "N-9-0-0": 1.0}, s, ExpandConfig(top=1, decay=0.8, definitions=False))
    assert out == pytest.approx({"N-2-0-1": 1.0, "N-9-0-0": 0.0, "G-3-0-2": 0.8})
    assert notes["G-3-0-2"] == "cites 나라법 제2조(법정이율)"
    # two hops: 5조 <- 3조① (cites it) ... depth 1 stops there; a candidate keeps its better own score
    out, derived, _ = expand("x", {"G-5-0-0": 1.0, "G-3-0-1": 0.9, "N-9-0-0": 0.0}, s,
                             ExpandConfig(top=1, decay=0.5, definitions=False))
    assert out["G-3-0-1"] == pytest.approx(0.9) and "G-3-0-1" not in derived
    out, _, _ = expand("x", {"G-5-0-0": 1.0, "N-9-0-0": 0.0}, s, ExpandConfig(top=1, decay=0.5, depth=2,
                                                                               definitions=False))
    assert out["G-3-0-1"] == pytest.approx(0.5) and out["G-5-0-0"] == 1.0 and "N-2-0-1" not in out


def test_expansion_adds_the_definition_of_a_term_the_query_uses_in_a_hit_law(tiny_index):
    s = tiny_index.structure()
    out, _, notes = expand("예탁금을 돌려받으려면?", {"G-5-0-0": 4.0, "N-9-0-0": 2.0}, s,
                           ExpandConfig(top=1, decay=0.5, cited_by=False))
    assert out["G-1-0-0"] == pytest.approx(0.5) and notes["G-1-0-0"] == "defines '예탁금' (가상법)"
    out, _, _ = expand("이율은?", {"G-5-0-0": 4.0, "N-9-0-0": 2.0}, s, ExpandConfig(top=1, cited_by=False))
    assert "G-1-0-0" not in out


def test_law_routing_by_name_short_name_and_family():
    laws = ["자본시장과 금융투자업에 관한 법률", "자본시장과 금융투자업에 관한 법률 시행령", "상법", "해상법", "상법 시행령"]
    m = LawMatcher(laws)
    assert m.laws_in("자본시장법상 투자권유는?") == {"자본시장과 금융투자업에 관한 법률",
                                             "자본시장과 금융투자업에 관한 법률 시행령"}
    assert m.laws_in("「상법」 제5조") == {"상법", "상법 시행령"}
    assert m.laws_in("상법 시행령에서 정한 신고") == {"상법 시행령"}  # a decree named alone stays alone
    assert m.laws_in("해상법의 선박") == {"해상법"}  # not 상법 inside 해상법
    assert LawMatcher(laws, family=False).laws_in("상법상 회사") == {"상법"}
    assert m.laws_in("회사의 이사는?") == set()
    law_of = {"a": "상법", "b": "해상법", "c": "상법 시행령"}
    # normalised a 1, b 0.5, c 0; named 상법 family: +0.3
    assert route({"a": 3.0, "b": 2.0, "c": 1.0}, {"상법", "상법 시행령"}, law_of, 0.3) == pytest.approx(
        {"a": 1.3, "b": 0.5, "c": 0.3})
    # no law named: the top 2 hits' laws by their share of the scores (상법 1.0, 해상법 0.5 -> 2/3, 1/3)
    assert route({"a": 3.0, "b": 2.0, "c": 1.0}, set(), law_of, 0.3, hits=2) == pytest.approx(
        {"a": 1.2, "b": 0.6, "c": 0.0})
    assert route({"a": 3.0, "b": 2.0}, set(), law_of, 0.3, hits=0) == {"a": 1.0, "b": 0.0}


def test_article_pooling_by_hand():
    art = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "c1": "C"}
    scores = {"a1": 0.8, "a2": 0.7, "a3": 0.45, "b1": 0.9, "c1": 0.0}
    base = normalized(scores)
    assert base == pytest.approx({"a1": 8 / 9, "a2": 7 / 9, "a3": 0.5, "b1": 1.0, "c1": 0.0})
    # m 2: A's best paragraph gains 0.3 x its second (7/9); its other paragraphs and lone articles keep theirs
    out = pool(scores, art, 2, 0.3)
    assert out == pytest.approx({"a1": 8 / 9 + 0.3 * 7 / 9, "a2": 7 / 9, "a3": 0.5, "b1": 1.0, "c1": 0.0})
    assert max(out, key=out.get) == "a1"  # the article whose paragraphs match lifts its best paragraph
    assert pool(scores, art, 3, 0.3)["a1"] == pytest.approx(8 / 9 + 0.3 * (7 / 9 + 0.5))


def test_steps_in_a_pipeline_yaml_mark_what_they_added(tiny_index, tmp_path):
    from lextune.index.pipeline import PipelineConfig, build_pipeline

    cfg = PipelineConfig.model_validate({"retrievers": ["bm25"], "route": {}, "expand": {"top": 1}, "pool": {}})
    pipe = build_pipeline(tiny_index, cfg)
    assert [s.name for s in pipe.steps] == ["route", "expand", "pool"]
    hits = pipe.explain({"q": "예탁금 반환 이자"}, 10)["q"]
    by_id = {h["id"]: h for h in hits}
    assert "N-2-0-1" in by_id and by_id["N-2-0-1"]["note"].startswith("cited by 가상법 제3조")
    assert "bm25" not in by_id["N-2-0-1"]["scores"] and "expand" in by_id["N-2-0-1"]["scores"]
    assert all("note" not in h for h in hits if "bm25" in h["scores"])
    assert pipe.search({"q": "예탁금 반환 이자"}, 10) == {"q": {h["id"]: h["score"] for h in hits}}
    with pytest.raises(ValueError, match="decay"):
        PipelineConfig.model_validate({"expand": {"decay": 0}})
    with pytest.raises(ValueError, match="extra"):
        PipelineConfig.model_validate({"route": {"bosst": 0.2}})
    # the eval CLI's failure notebook marks the expanded hit
    data = tiny_index.folder.parent / "beir"
    (tmp_path / "p.yaml").write_text("retrievers: [bm25]\nexpand: {top: 1}\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["eval", "-d", str(data), "-i", str(tiny_index.folder), "-s",
                                   f"x={tmp_path / 'p.yaml'}", "-o", str(tmp_path / "ev"), "--no-report"])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "ev" / "failures-x.md").read_text(encoding="utf-8")
    assert "↪ cited by 가상법 제3조" in md
    # and `lextune search --pipeline` shows it under the hit
    res = CliRunner().invoke(app, ["search", "예탁금 반환 이자", "-i", str(tiny_index.folder), "-p",
                                   str(tmp_path / "p.yaml")])
    assert res.exit_code == 0, res.output
    assert "↪ cited by 가상법 제3조" in res.output


def test_expand_needs_an_index_with_its_citations(tiny_index, tmp_path):
    import shutil

    from lextune.index import LexIndex
    from lextune.index.pipeline import PipelineConfig, build_pipeline

    old = tmp_path / "old"
    shutil.copytree(tiny_index.folder, old)
    (old / "refs.jsonl").unlink()
    with pytest.raises(ConfigError, match="rebuild it"):
        build_pipeline(LexIndex.load(old), PipelineConfig(retrievers=["bm25"], expand={}))
    # routing and pooling need only each document's law and article
    build_pipeline(LexIndex.load(old), PipelineConfig(retrievers=["bm25"], route={}, pool={}))


def test_structure_of_ingested_statutes_maps_article_citations_to_their_paragraphs():
    from lextune.schema import RefEdge

    edges = [RefEdge(source="L:a3:p1", target="L:a5", level="article", citation="제5조"),
             RefEdge(source="L:a3:p1", target="M:a2:p1", level="paragraph", citation="「M법」 제2조제1항"),
             RefEdge(source="X", target="L:a5", level="article", citation="?")]
    docs = {"L:a3:p1": {"law": "L법", "article": "3", "parent_id": "L:a3"},
            "L:a5:p1": {"law": "L법", "article": "5", "parent_id": "L:a5"},
            "L:a5:p2": {"law": "L법", "article": "5", "parent_id": "L:a5"},
            "M:a2:p1": {"law": "M법", "article": "2", "parent_id": "M:a2"}}
    import tempfile
    from pathlib import Path

    from lextune.index.lexindex import write_links

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "refs.jsonl"
        n = write_links(path, edges, [{"id": i, **v} for i, v in docs.items()])
        written = [(e["source"], e["target"]) for e in map(json.loads, path.read_text(encoding="utf-8").splitlines())]
    assert n == 3 and written == [("L:a3:p1", "L:a5:p1"), ("L:a3:p1", "L:a5:p2"), ("L:a3:p1", "M:a2:p1")]
    s = Structure.build(docs, written)
    assert s.article["L:a5:p1"] == s.article["L:a5:p2"] == "L법|5"


def test_the_service_answers_the_expanded_hits_with_their_note(tiny_index):
    from fastapi.testclient import TestClient

    from lextune.index import PipelineConfig
    from lextune.serve import ServeConfig, create_app

    config = ServeConfig(api_key_env=None, model=None,  # a BM25 index: no embedding model to load
                         pipeline=PipelineConfig(retrievers=["bm25"], expand={"top": 1}))
    with TestClient(create_app(config, index=tiny_index)) as client:
        body = client.post("/v1/search", json={"query": "예탁금 반환 이자", "k": 10}).json()
    noted = {h["id"]: h["note"] for h in body["results"] if h.get("note")}
    assert noted and all(n.startswith(("cited by ", "cites ", "defines ")) for n in noted.values())
    assert all("bm25" not in h["scores"] for h in body["results"] if h["id"] in noted)
