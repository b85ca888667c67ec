"""Evaluation: metrics against hand-computed values, input checks, failure notebook, report, CLI."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from lextune.errors import InputFormatError
from lextune.eval.evaluate import EvalConfig, evaluate
from lextune.eval.failures import failure_cases, write_failures
from lextune.runs import load_beir, read_qrels, read_trec_run, write_trec_run
from liveserver import chromium

TINY = Path(__file__).parent / "fixtures" / "beir_tiny"
QRELS = {"q1": {"d1": 2, "d2": 1}, "q3": {"d9": 1}}
RUN = {"q1": {"d2": 0.9, "d1": 0.8, "d4": 0.7}}  # q3 has no results at all


def test_metrics_by_hand_with_graded_labels_and_a_missing_query():
    cfg = EvalConfig(k_values=[1, 3], families=["ndcg", "hit_rate", "mrr", "map", "recall", "precision"],
                     primary="ndcg@3")
    res = evaluate(QRELS, {"s": RUN}, cfg)
    o = res.overall["s"]
    dcg = 1 / math.log2(2) + 2 / math.log2(3)  # d2 (rel 1) first, d1 (rel 2) second
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert o["ndcg@3"] == pytest.approx((dcg / idcg) / 2)  # q3 counts as 0, not dropped
    assert o["hit_rate@1"] == pytest.approx(0.5)
    assert o["mrr@3"] == pytest.approx(0.5)
    assert o["map@3"] == pytest.approx((1 / 1 + 2 / 2) / 2 / 2)
    assert o["recall@1"] == pytest.approx(0.5 / 2)
    assert o["precision@3"] == pytest.approx((2 / 3) / 2)
    assert res.per_query["s"]["ndcg@3"]["q3"] == 0.0
    assert res.inputs.run_empty_queries == {"s": 1}


def test_ties_are_deterministic_whatever_the_input_order():
    qrels = {"q": {"b": 1}}
    a = evaluate(qrels, {"s": {"q": {"a": 1.0, "b": 1.0, "c": 0.5}}}, EvalConfig(k_values=[1], families=["hit_rate"], primary="hit_rate@1"))
    b = evaluate(qrels, {"s": {"q": {"b": 1.0, "a": 1.0, "c": 0.5}}}, EvalConfig(k_values=[1], families=["hit_rate"], primary="hit_rate@1"))
    assert a.overall == b.overall == {"s": {"hit_rate@1": 0.0}}  # ties broken by doc id: "a" before "b"


def test_comparison_significance_and_win_tie_loss():
    qrels = {f"q{i}": {"g": 1} for i in range(30)}
    good = {q: {"g": 1.0, "x": 0.5} for q in qrels}
    bad = {q: ({"x": 1.0, "g": 0.5} if i % 3 else {"g": 1.0}) for i, q in enumerate(qrels)}
    res = evaluate(qrels, {"bad": bad, "good": good})
    assert res.win_tie_loss["good"] == {"win": 20, "tie": 10, "loss": 0}
    assert "bad" in res.significance["good"]["ndcg@10"] and res.significance["bad"]["ndcg@10"] == []


def test_bad_input_is_counted_not_hidden(tmp_path):
    ds = load_beir(TINY)
    run_file = tmp_path / "r.trec"
    run_file.write_text("q1 Q0 L1-2-2-0 1 2.0 t\nq1 Q0 L1-2-2-0 2 1.5 t\nq1 Q0 L1-1-1-0 3 1.0 t\nqX Q0 L1-1-1-0 1 1 t\n")
    stats: dict[str, int] = {}
    run = read_trec_run(run_file, stats)
    assert stats["duplicates"] == 1 and run["q1"]["L1-2-2-0"] == 2.0
    res = evaluate(ds.qrels, {"r": run, "empty": {}}, query_ids=set(ds.queries), corpus_ids=set(ds.corpus),
                   duplicates={"r": stats["duplicates"]})
    inp = res.inputs
    assert inp.qrels_unknown_queries == 1  # q9
    assert inp.qrels_unknown_docs == 1  # L9-9-9-9
    assert inp.run_unknown_queries["r"] == 1  # qX
    assert inp.run_empty_queries == {"r": 2, "empty": 3}
    assert res.overall["empty"]["ndcg@10"] == 0.0
    assert len(res.queries) == 3
    text = " ".join(inp.warnings())
    assert "1 duplicate documents" in text and "no results" in text
    with pytest.raises(InputFormatError, match="no judged query"):
        evaluate({"zz": {"a": 1}}, {"r": run}, query_ids={"q1"})
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1\n")
    with pytest.raises(InputFormatError, match="bad.trec:1"):
        read_trec_run(bad)


def test_failure_categories():
    docs = {"A:a1:p1": {"parent_id": "A:a1", "doc_id": "A", "title": "A 제1조 ①"},
            "A:a1:p2": {"parent_id": "A:a1", "doc_id": "A", "title": "A 제1조 ②"},
            "A:a2": {"doc_id": "A", "title": "A 제2조"}, "B:a1": {"doc_id": "B", "title": "B 제1조"}}
    qrels = {"ok": {"A:a1:p1": 1}, "sib": {"A:a1:p1": 1}, "law": {"A:a1:p1": 1}, "rank": {"A:a1:p1": 1},
             "miss": {"A:a1:p1": 1}}
    run = {"ok": {"A:a1:p1": 1.0}, "sib": {"A:a1:p2": 1.0, "A:a1:p1": 0.5},
           "law": {"A:a2": 1.0, "A:a1:p1": 0.5}, "rank": {"B:a1": 1.0, "A:a1:p1": 0.5}, "miss": {"B:a1": 1.0}}
    cases = {c.query_id: c for c in failure_cases(qrels, run, {q: q for q in qrels}, docs)}
    assert set(cases) == {"sib", "law", "rank", "miss"}
    assert [cases[q].category for q in ("sib", "law", "rank", "miss")] == ["sibling_article", "sibling_law", "ranking", "recall"]
    assert cases["sib"].first_gold_rank == 2 and cases["miss"].first_gold_rank is None
    assert cases["sib"].golds[0].title == "A 제1조 ①" and cases["sib"].top[1].gold


def test_failure_notebook_files(tmp_path):
    docs = {"d1": {"title": "제1조"}, "d2": {"title": "제2조"}}
    cases = failure_cases({"q": {"d1": 1}}, {"q": {"d2": 1.0, "d1": 0.1}}, {"q": "질문"}, docs)
    jsonl, md = write_failures(cases, tmp_path)
    rec = json.loads(jsonl.read_text().splitlines()[0])
    assert rec["query"] == "질문" and rec["golds"][0]["rank"] == 2 and rec["top"][0]["id"] == "d2"
    assert "오답 노트" in md.read_text() and "✅ 제1조" in md.read_text()


def test_cli_eval_with_run_files_writes_everything(tmp_path):
    a = {"q1": {"L1-2-2-0": 2.0, "L1-2-1-0": 1.0}, "q2": {"L2-5-1-0": 1.0}, "q3": {"L1-1-1-0": 1.0}}
    b = {"q1": {"L1-1-1-0": 2.0}, "q2": {"L2-6-1-0": 1.0}, "q3": {"L2-6-1-0": 1.0}}
    write_trec_run(a, tmp_path / "a.trec")
    write_trec_run(b, tmp_path / "b.trec")
    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["eval", "-d", str(TINY), "--run", f"base={tmp_path / 'b.trec'}",
                                   "--run", str(tmp_path / "a.trec"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["type"] == "evaluation" and len(meta["inputs"]["dataset_sha256"]) == 64
    assert set(meta["systems"]) == {"base", "a"} and meta["lextune_version"]
    assert meta["results"]["overall"]["a"]["hit_rate@1"] == pytest.approx(2 / 3)
    assert meta["results"]["win_tie_loss"]["a"]["win"] == 2
    assert (out / "failures-a.md").is_file() and (out / "runs" / "base.trec").is_file()
    assert len((out / "per_query.jsonl").read_text().splitlines()) == 3
    html = (out / "report.html").read_text()
    assert html.count('class="chart"') == 3 and "data:image/png;base64," in html


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path, bundled_dir):
    """Open the report like a person would: charts drawn, page not blank, no console errors."""
    from lextune.eval.run import System, run_evaluation
    from lextune.models.biencoder import BiEncoder

    ds = load_beir(TINY)
    systems = [System("x", {"q1": {"L1-2-2-0": 1.0}, "q2": {"L1-1-1-0": 1.0}}, {})]
    run_evaluation(ds, systems, tmp_path / "ev", map_encoder=BiEncoder(bundled_dir, device="cpu"))
    report = tmp_path / "ev" / "report.html"
    assert report.read_text().count('class="chart"') == 4  # with the embedding map
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400"]
    proc = subprocess.run([chromium(), *flags, "--enable-logging=stderr", "--v=0",
                           f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    console_errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert console_errors == []
    # count the images that actually decoded, via the DOM
    dom = subprocess.run([chromium(), *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.stdout.count('class="chart"') == 4
    from PIL import Image

    img = Image.open(shot).convert("L")
    colors = img.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # not a blank page: text and charts


def test_synthetic_queries_are_marked_on_the_map(tmp_path, monkeypatch):
    import lextune.eval.run as run_mod

    ds = load_beir(TINY)
    ds.query_info = {"q1": {"generator": "ict"}}
    seen = {}

    def fake_map(qv, failed, pv, synthetic=None):
        seen["synthetic"] = synthetic
        return "data:image/png;base64,"

    class Enc:
        def encode_queries(self, texts):
            import numpy as np

            return np.ones((len(texts), 4), dtype="float32")

        encode_passages = encode_queries

    run_mod._map(ds, {q: ds.qrels[q] for q in ("q1", "q2")}, [], Enc(), fake_map)
    assert seen["synthetic"] == [True, False]


def test_a_querys_ignored_documents_do_not_count(tmp_path):
    """queries.jsonl "ignore": the query's own source passage is dropped from every ranking (as BEIR drops
    a document with the query's id), so it is neither a miss at rank 1 nor a failure case."""
    from lextune.eval.run import System, run_evaluation

    folder = tmp_path / "ds"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": d}) + "\n"
                                                 for d in ("src", "gold", "other")))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "질문", "generator": "refs", "ignore": ["src"]})
                                          + "\n" + json.dumps({"_id": "r", "text": "다른 질문"}) + "\n")
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq\tgold\t1\nr\tsrc\t1\n")
    ds = load_beir(folder)
    assert ds.ignored() == {"q": {"src"}} and ds.generators() == {"q": "refs"}
    run = {"q": {"src": 3.0, "gold": 2.0, "other": 1.0}, "r": {"src": 3.0, "gold": 2.0}}
    result = run_evaluation(ds, [System("s", run, {})], tmp_path / "out", report=False)
    assert result.per_query["s"]["hit_rate@1"] == {"q": 1.0, "r": 1.0}  # for r, "src" is the answer and counts
    trec = [line.split() for line in (tmp_path / "out" / "runs" / "s.trec").read_text().splitlines()]
    assert ["q", "src"] not in [[t[0], t[2]] for t in trec] and ["r", "src"] in [[t[0], t[2]] for t in trec]


def test_ignore_must_be_a_list_of_ids(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d", "text": "x"}) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "x"}) + "\n"
                                            + json.dumps({"_id": "q2", "text": "y", "ignore": "d"}) + "\n")
    with pytest.raises(InputFormatError, match=r"queries.jsonl:2 \(field 'ignore'\)"):
        load_beir(tmp_path)


@pytest.mark.parametrize("score", ["0.7", "-1", "inf", "nan", "1e3", "x"])
def test_qrels_relevance_must_be_a_non_negative_integer(tmp_path, score):
    path = tmp_path / "dev.tsv"
    path.write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t{score}\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"dev.tsv:3 \(field 'score'\).*non-negative integer"):
        read_qrels(path)


def test_graded_qrels_are_read_as_given(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td3\t1.0\nq3 0 d4 3\n", encoding="utf-8")
    assert read_qrels(path) == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}, "q3": {"d4": 3}}


def test_runs_and_qrels_that_cannot_be_read_are_named_not_raised(tmp_path):
    latin = tmp_path / "r.trec"
    latin.write_bytes(b"q1 Q0 d1 1 2.0 t\nq1 Q0 caf\xe9 2 1.0 t\n")
    with pytest.raises(InputFormatError, match=r"r.trec:2: not UTF-8"):
        read_trec_run(latin)
    with pytest.raises(InputFormatError, match=r"missing.trec: cannot read"):
        read_trec_run(tmp_path / "missing.trec")
    inf = tmp_path / "inf.trec"
    inf.write_text("q1 Q0 d1 1 inf t\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"inf.trec:1: score 'inf' is not a finite"):
        read_trec_run(inf)
    qrels = tmp_path / "q.tsv"
    qrels.write_bytes(b"q1\td\xff\t1\n")
    with pytest.raises(InputFormatError, match=r"q.tsv:1: not UTF-8"):
        read_qrels(qrels)


def test_cli_eval_reports_a_missing_run_file_and_bad_qrels_without_a_traceback(tmp_path):
    res = CliRunner().invoke(app, ["eval", "-d", str(TINY), "--run", str(tmp_path / "nope.trec"), "-o",
                                   str(tmp_path / "ev")])
    assert res.exit_code != 0 and "nope.trec: cannot read" in res.output
    assert isinstance(res.exception, SystemExit)  # a message, not a FileNotFoundError traceback
    data = tmp_path / "beir"
    shutil.copytree(TINY, data)
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tL1-2-2-0\tinf\n", encoding="utf-8")
    write_trec_run({"q1": {"L1-2-2-0": 1.0}}, tmp_path / "a.trec")
    res = CliRunner().invoke(app, ["eval", "-d", str(data), "--run", str(tmp_path / "a.trec"), "-o", str(tmp_path / "ev")])
    assert res.exit_code != 0 and "dev.tsv:2" in res.output and "non-negative integer" in res.output
