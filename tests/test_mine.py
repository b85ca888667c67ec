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
    summary = mine(prepared / "q", prepared / "idx", out, MineConfig(n_negatives=4))
    recs = _records(out)
    assert summary.records == len(recs) > 20
    docs = LexIndex.load(prepared / "idx").docs
    for r in recs:
        assert set(r["pos"]).isdisjoint(r["neg"])
        assert len(r["neg"]) <= 4 and len(r["neg_scores"]) == len(r["neg"])
        pos_parents = {docs[p]["parent_id"] or p for p in r["pos"]}
        assert all((docs[n]["parent_id"] or n) not in pos_parents for n in r["neg"])  # no sibling provisions
        assert all(s <= 0.95 * min(r["pos_scores"]) + 1e-6 for s in r["neg_scores"])
        assert r["neg_scores"] == sorted(r["neg_scores"], reverse=True)
    assert summary.dropped["is a positive"] > 0 and summary.dropped["sibling of a positive"] > 0
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
    assert all(len(r["neg"]) <= 2 for r in _records(prepared / "cli.jsonl"))


def test_precedent_queries_are_mined_with_every_positive(prepared, tmp_path):
    from lextune.synth import SynthConfig, synth

    rows = [{"판례일련번호": str(i), "사건번호": f"2020다{i}", "판시사항": f"[1] 금융회사가 이용자 보호의무 {i}를 지는지 여부(적극)",
             "참조조문": "[1]테스트금융법 제2조의2"} for i in range(3)]
    f = tmp_path / "prec.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    synth(prepared / "chunks", tmp_path / "pq", SynthConfig(generators=["precedents"], precedents=[str(f)],
                                                            dev_fraction=0.0, near_duplicate=0.99))
    mine(tmp_path / "pq", prepared / "idx", tmp_path / "t.jsonl", MineConfig(n_negatives=3))
    recs = _records(tmp_path / "t.jsonl")
    assert len(recs) == 3
    for r in recs:
        assert r["query"].endswith("지는가?")
        assert set(r["pos"]) == {"900001:a2-2:p1", "900001:a2-2:p2"}  # an article-level citation: both 항
        assert r["neg"] and not {n.split(":p")[0] for n in r["neg"]} & {"900001:a2-2"}
