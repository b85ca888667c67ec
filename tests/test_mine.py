"""Hard-negative mining: the pool, false-negative control with counted drops, selection, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from lextune.mine import MineConfig, mine

FIX = Path(__file__).parent / "fixtures" / "ingest"


@pytest.fixture(scope="module")
def prepared(bundled_dir, module_tmp):
    from lextune.index import IndexBuildConfig, build_index, docs_from_chunks
    from lextune.index.dense import DenseConfig
    from lextune.ingest import ingest, read_chunks
    from lextune.synth import SynthConfig, synth

    root = module_tmp
    ingest([FIX / "law_900001.json", Path("src/lextune/data/laws/010910.json")], root / "chunks")
    build_index(docs_from_chunks(read_chunks(root / "chunks")), root / "idx", IndexBuildConfig(dense=DenseConfig()),
                source={"chunks": str(root / "chunks")})
    synth(root / "chunks", root / "q", SynthConfig(generators=["title", "ict"], dev_fraction=0.0))
    return root


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_mined_records_respect_false_negative_control(prepared):
    from lextune.index import LexIndex

    out = prepared / "train.jsonl"
    summary = mine(prepared / "q", prepared / "idx", out, MineConfig(n_negatives=4, score_scale="raw"))
    recs = _records(out)
    assert summary.records == len(recs) > 20
    docs = LexIndex.load(prepared / "idx").docs
    for r in recs:
        assert set(r["pos"]).isdisjoint(r["neg"])
        assert len(r["neg"]) == 4 and len(r["neg_scores"]) == len(r["neg"]) == len(r["neg_kinds"])  # always filled
        pos_parents = {docs[p]["parent_id"] or p for p in r["pos"]}
        assert all((docs[n]["parent_id"] or n) not in pos_parents for n in r["neg"])  # no sibling provisions
        # compared with the best positive; random fill has no score
        assert all(s is None or s <= 0.95 * max(r["pos_scores"]) + 1e-6 for s in r["neg_scores"])
        hard = [s for s, k in zip(r["neg_scores"], r["neg_kinds"], strict=True) if k == "hard"]
        assert hard == sorted(hard, reverse=True)
        assert r["neg_kinds"] == sorted(r["neg_kinds"], key=["hard", "deeper", "random"].index)
    assert summary.dropped["is a positive"] > 0 and summary.dropped["sibling of a positive"] > 0
    assert summary.skipped_no_negative == 0
    per_gen = summary.to_dict()["hard_negatives_per_generator"]
    assert set(per_gen) == {"title", "ict"} and sum(sum(c.values()) for c in per_gen.values()) == summary.records
    meta = json.loads((prepared / "train.meta.json").read_text())
    assert meta["type"] == "training_examples" and meta["summary"]["pos_score"]["n"] > 0
    ict = [r for r in recs if r["query_id"].startswith("ict:")]
    assert any("pos_text" in r for r in ict)  # the cloze sentence was removed from the positive


def test_cited_provisions_are_not_negatives(prepared):
    out = prepared / "t2.jsonl"
    mine(prepared / "q", prepared / "idx", out, MineConfig(n_negatives=7, max_score_ratio=None, exclude_siblings=False))
    rec = {r["query_id"]: r for r in _records(out)}["ict:900001:a4:p1"]
    assert "900001:a2-2:p1" not in rec["neg"]  # 제4조 ① cites 제2조의2 ①


def test_selection_and_random_negatives(prepared):
    out = prepared / "t3.jsonl"
    mine(prepared / "q", prepared / "idx", out,
         MineConfig(n_negatives=4, random_ratio=0.5, selection="range", range_start=2, range_end=20, max_score_ratio=None))
    for r in _records(out):
        assert r["neg_kinds"].count("random") == 2 and r["neg_scores"][-2:] == [None, None]


def test_resume_after_a_crash(prepared):
    out = prepared / "t4.jsonl"
    full = mine(prepared / "q", prepared / "idx", prepared / "ref.jsonl", MineConfig(batch_size=8))
    lines = (prepared / "ref.jsonl").read_text(encoding="utf-8").splitlines()
    partial = out.with_name(out.name + ".partial")
    partial.write_text("\n".join(lines[:10]) + "\n" + '{"query_id": "cut', encoding="utf-8")
    resumed = mine(prepared / "q", prepared / "idx", out, MineConfig(batch_size=8))
    assert resumed.resumed == 10 and resumed.records == full.records
    assert not partial.exists()
    assert {r["query_id"] for r in _records(out)} == {r["query_id"] for r in _records(prepared / "ref.jsonl")}


def test_cli_mine(prepared):
    res = CliRunner().invoke(app, ["mine", "-q", str(prepared / "q"), "-i", str(prepared / "idx"),
                                   "-o", str(prepared / "cli.jsonl"), "--set", "n_negatives=2"])
    assert res.exit_code == 0, res.output
    assert "training records" in res.output and "dropped" in res.output
    assert "mining queries: " in res.output  # not a terminal: progress as lines (done/total, rate)
    assert all(len(r["neg"]) <= 2 for r in _records(prepared / "cli.jsonl"))


def _precedent_queries(prepared: Path, tmp_path: Path, issue: str, refs: str, n: int) -> Path:
    """A synth folder of ``n`` precedent queries (one 판시사항 item each) over the prepared chunks."""
    from lextune.synth import SynthConfig, synth

    rows = [{"판례일련번호": str(i), "사건번호": f"2020다{i}", "판시사항": f"[1] {issue.format(i=i)}", "참조조문": refs}
            for i in range(n)]
    f = tmp_path / "prec.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    synth(prepared / "chunks", tmp_path / "pq", SynthConfig(generators=["precedents"], precedents=[str(f)],
                                                            dev_fraction=0.0, near_duplicate=0.99))
    return tmp_path / "pq"


def test_precedent_queries_are_mined_with_every_positive(prepared, tmp_path):
    _precedent_queries(prepared, tmp_path, "금융회사가 이용자 보호의무 {i}를 지는지 여부(적극)", "[1]테스트금융법 제2조의2", 3)
    mine(tmp_path / "pq", prepared / "idx", tmp_path / "t.jsonl", MineConfig(n_negatives=3))
    recs = _records(tmp_path / "t.jsonl")
    assert len(recs) == 3
    for r in recs:
        assert r["query"].endswith("지는가?")
        assert set(r["pos"]) == {"900001:a2-2:p1", "900001:a2-2:p2"}  # an article-level citation: both 항
        assert r["neg"] and not {n.split(":p")[0] for n in r["neg"]} & {"900001:a2-2"}


def test_queries_whose_positive_is_not_first_keep_their_negatives(prepared, tmp_path):
    """Vague, precedent-like questions with several positives: with the old rule (0.95 x the weakest positive)
    most candidates were dropped and queries vanished; now the best positive is the reference, a query is never
    dropped for want of a hard negative, and the summary says how many each query got."""
    _precedent_queries(prepared, tmp_path, "금융거래에서 손해를 본 사람 {i}의 구제 방법", "[1]테스트금융법 제2조의2, 제4조", 4)
    summary = mine(tmp_path / "pq", prepared / "idx", tmp_path / "t1.jsonl", MineConfig(n_negatives=3, max_score_ratio=1.0))
    recs = _records(tmp_path / "t1.jsonl")
    assert len(recs) == 4 and summary.skipped_no_negative == 0
    for r in recs:
        assert len(r["neg"]) == 3 and len(r["pos"]) == 5  # 제2조의2 ①② and 제4조 ①②③
        assert all(s <= max(r["pos_scores"]) + 1e-6 for s in r["neg_scores"])
    # the weakest positive scores below some kept hard negative: the old reference would have dropped it
    assert any(s > min(r["pos_scores"]) for r in recs for s in r["neg_scores"])
    assert summary.to_dict()["hard_negatives_per_generator"] == {"precedents": {"3": 4}}
    # a small pool that the filter empties: the negatives come from deeper dense ranks, never nothing
    small = mine(tmp_path / "pq", prepared / "idx", tmp_path / "t2.jsonl",
                 MineConfig(n_negatives=3, max_score_ratio=0.95, bm25_depth=3, dense_depth=3, score_scale="raw"))
    recs = _records(tmp_path / "t2.jsonl")
    assert len(recs) == 4 and small.skipped_no_negative == 0 and small.filled["deeper"] > 0
    assert any("deeper" in r["neg_kinds"] for r in recs)
    for r in recs:
        assert all(s is None or s <= 0.95 * max(r["pos_scores"]) + 1e-6 for s in r["neg_scores"])
    # on raw e5 cosines 0.95 x the positive drops nearly everything; on the per-query scale it keeps hard ones
    raw = mine(tmp_path / "pq", prepared / "idx", tmp_path / "raw.jsonl", MineConfig(n_negatives=3, score_scale="raw"))
    pool = mine(tmp_path / "pq", prepared / "idx", tmp_path / "pool.jsonl", MineConfig(n_negatives=3))
    hard = {name: sum(k == "hard" for r in _records(tmp_path / f"{name}.jsonl") for k in r["neg_kinds"])
            for name in ("raw", "pool")}
    assert hard["pool"] > hard["raw"] and pool.records == raw.records == 4
    assert pool.dropped["scores near the positive (ratio)"] < raw.dropped["scores near the positive (ratio)"]
    nothing = mine(tmp_path / "pq", prepared / "idx", tmp_path / "none.jsonl",
                   MineConfig(n_negatives=3, max_score_ratio=0.01, fill="none", score_scale="raw"))
    assert nothing.skipped_no_negative == 4 and nothing.records == 0  # counted, as asked


def test_siblings_in_a_beir_corpus_come_from_titles_and_max_queries_stratifies(bundled_dir, tmp_path):
    from lextune.index import IndexBuildConfig, build_index, docs_from_beir
    from lextune.index.dense import DenseConfig
    from lextune.mine import article_keys

    corpus = {"K1": {"title": "민법 406조 (채권자취소권)", "text": "①채무자가 채권자를 해함을 알고 재산권을 목적으로 한 법률행위를 한 때"},
              "K2": {"title": "민법 406조 (채권자취소권)", "text": "②전항의 소는 채권자가 취소원인을 안 날로부터 1년 내에 제기하여야 한다."},
              "K3": {"title": "민법 407조 (채권자취소의 효력)", "text": "전조의 규정에 의한 취소와 원상회복은 모든 채권자의 이익을 위하여 효력이 있다."},
              "K4": {"title": "민법 750조 (불법행위의 내용)", "text": "고의 또는 과실로 인한 위법행위로 타인에게 손해를 가한 자는 배상할 책임이 있다."},
              "K5": {"title": "형법 329조 (절도)", "text": "타인의 재물을 절취한 자는 6년 이하의 징역 또는 1천만원 이하의 벌금에 처한다."},
              "K6": {"title": "상법 44조  채무인수를 광고한 양수인의 책임", "text": "영업양수인이 양도인의 영업으로 인한 채무를 인수할 것을 광고한 때에는 변제할 책임이 있다."}}
    keys = article_keys({i: {"title": d["title"], "parent_id": None} for i, d in corpus.items()})
    assert keys["K1"] == keys["K2"] != keys["K3"] and keys["K6"] != keys["K5"]
    build_index(docs_from_beir(corpus), tmp_path / "idx", IndexBuildConfig(dense=DenseConfig()))
    q = tmp_path / "q"
    (q / "qrels").mkdir(parents=True)
    queries = [("t1", "title", "채권자를 해치는 법률행위를 취소하려면", "K1"), ("t2", "title", "도둑질 처벌", "K5"),
               ("i1", "ict", "빚진 사람이 재산을 빼돌렸을 때 채권자가 할 수 있는 일", "K1"),
               ("i2", "ict", "다른 사람에게 손해를 입힌 사람의 책임", "K4"), ("i3", "ict", "영업 양수인의 채무 인수 광고", "K6")]
    (q / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t, "generator": g}, ensure_ascii=False) + "\n"
                                             for i, g, t, _ in queries), encoding="utf-8")
    (q / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{i}\t{p}\t1\n" for i, *_, p in queries))
    summary = mine(q, tmp_path / "idx", tmp_path / "t.jsonl", MineConfig(n_negatives=3, max_score_ratio=None))
    for r in _records(tmp_path / "t.jsonl"):
        if r["pos"] == ["K1"]:
            assert "K2" not in r["neg"]  # the other paragraph of 민법 406조, found through the title
    assert summary.dropped["sibling of a positive"] >= 2
    res = CliRunner().invoke(app, ["mine", "-q", str(q), "-i", str(tmp_path / "idx"), "-o", str(tmp_path / "s.jsonl"),
                                   "--max-queries", "4", "--set", "n_negatives=2"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "s.meta.json").read_text())["summary"]
    assert meta["queries"] == 4 and meta["sampled_out"] == 1
    assert "1 queries left out by --max-queries" in res.output and "hard negatives" in res.output
    from lextune.mine import stratified_sample

    groups = {i: g for i, g, *_ in queries}
    picked = stratified_sample(list(groups), groups, 4, seed=13)
    assert sorted(groups[q] for q in picked) == ["ict", "ict", "title", "title"]  # the generators in turn
    assert picked == stratified_sample(list(reversed(groups)), groups, 4, seed=13)  # stable


def test_bm25_scorer_mines_without_a_dense_index(prepared, tmp_path):
    """A large corpus on CPU: no dense index at all; BM25 pools, scores (the same scores its search gives) and fills."""
    from lextune.errors import ConfigError
    from lextune.index import IndexBuildConfig, LexIndex, build_index, docs_from_chunks
    from lextune.ingest import read_chunks
    from lextune.pipeline.config import RunConfig

    build_index(docs_from_chunks(read_chunks(prepared / "chunks")), tmp_path / "bm25only", IndexBuildConfig(dense=None),
                source={"chunks": str(prepared / "chunks")})
    index = LexIndex.load(tmp_path / "bm25only")
    assert index.dense() is None
    query = "금융회사 이용자 보호의무"
    top = index.bm25.search({"q": query}, 5)["q"]
    assert index.bm25.score_ids(query, list(top)) == pytest.approx(list(top.values()))
    assert index.bm25.score_ids("", list(top)) == [0.0] * len(top) and index.bm25.score_ids(query, []) == []
    _precedent_queries(prepared, tmp_path, "금융거래에서 손해를 본 사람 {i}의 구제 방법", "[1]테스트금융법 제2조의2, 제4조", 4)
    with pytest.raises(ConfigError, match="scorer 'dense' needs an index with a dense part"):
        mine(tmp_path / "pq", tmp_path / "bm25only", tmp_path / "d.jsonl", MineConfig())
    summary = mine(tmp_path / "pq", tmp_path / "bm25only", tmp_path / "b.jsonl",
                   MineConfig(n_negatives=3, scorer="bm25", bm25_depth=3, max_score_ratio=0.95))
    recs = _records(tmp_path / "b.jsonl")
    assert len(recs) == 4 and summary.skipped_no_negative == 0 and summary.seconds["dense"] == 0
    assert summary.filled["deeper"] > 0  # a 3-deep pool with the positives and siblings removed: BM25 ranks below it
    for r in recs:
        assert len(r["neg"]) == 3 and not set(r["neg"]) & set(r["pos"])
        hard = [n for n, k in zip(r["neg"], r["neg_kinds"], strict=True) if k != "random"]
        scores = [s for s, k in zip(r["neg_scores"], r["neg_kinds"], strict=True) if k != "random"]
        assert index.bm25.score_ids(r["query"], hard) == pytest.approx(scores)
        assert r["pos_scores"] == pytest.approx(index.bm25.score_ids(r["query"], r["pos"]))
    with pytest.raises(ValueError, match="mine.scorer to bm25"):
        RunConfig(inputs=["x"], dense_index=False)
    assert RunConfig(inputs=["x"], dense_index=False, mine={"scorer": "bm25"}).mine.scorer == "bm25"
