"""Parity of lextune's metrics with trec_eval (pytrec_eval), ranx and hand-computed values, over the
cases that drift broke or that are easy to get wrong: empty result lists, graded labels, ties, k larger
than the list, all-zero judgements, and queries the run has but the qrels do not."""

from __future__ import annotations

import math
import random

import pytest

from lextune.errors import ConfigError
from lextune.eval.evaluate import EvalConfig, evaluate
from lextune.eval.metrics import evaluate_run, parse_metric, per_query_metrics
from lextune.runs import canonical_ranking

KS = [1, 3, 5, 10, 20]
FAMILIES = ["hit_rate", "mrr", "map", "ndcg", "recall", "precision"]
METRICS = [f"{f}@{k}" for f in FAMILIES for k in KS]


def _random_case(seed: int, n_queries: int = 120):
    """Qrels with graded labels (0-3), runs of 0-25 documents with many tied scores, some queries the
    run leaves empty or lacks, some it answers that nobody judged, and some judged all-zero."""
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(40)] + ["a", "zz", "d1_long_identifier_" * 3]
    qrels, run = {}, {}
    for i in range(n_queries):
        q = f"q{i}"
        judged = rng.sample(docs, rng.randint(1, 6))
        qrels[q] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if i % 17 == 0:
            qrels[q] = {d: 0 for d in judged}  # nothing to find
        if i % 11 == 0:
            continue  # judged, absent from the run
        n = 0 if i % 13 == 0 else rng.randint(1, 25)
        run[q] = {d: float(rng.choice([1, 2, 2, 3, 5])) / 2 for d in rng.sample(docs, n)}
    for i in range(10):
        run[f"unjudged{i}"] = {"d1": 1.0}
    return qrels, run


def _trec_eval(qrels, run, metric: str) -> dict[str, float]:
    """The metric by pytrec_eval (trec_eval's C code). trec_eval breaks ties by document id in reverse
    and has no cut-off for reciprocal rank: the run is given as lextune
    ranks it (strictly decreasing scores) and cut at k, so only the metric definitions are compared."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    family, k = parse_metric(metric)
    measure = {"hit_rate": "success", "mrr": "recip_rank", "map": "map_cut", "ndcg": "ndcg_cut",
               "recall": "recall", "precision": "P"}[family]
    ranked = {q: list(canonical_ranking(docs))[:k] for q, docs in run.items() if docs}
    scores = {q: {d: float(len(ds) - i) for i, d in enumerate(ds)} for q, ds in ranked.items()}
    name = measure if measure == "recip_rank" else f"{measure}.{k}"
    key = measure if measure == "recip_rank" else f"{measure}_{k}"
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {name})
    return {q: v[key] for q, v in evaluator.evaluate(scores).items()}


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_equals_trec_eval_per_query(metric):
    qrels, run = _random_case(seed=7)
    ours = per_query_metrics(qrels, run, [metric])[metric]
    theirs = _trec_eval(qrels, run, metric)
    judged = {q for q, d in qrels.items() if any(r >= 1 for r in d.values())}
    assert set(ours) == judged  # all-zero and unjudged queries are not evaluated
    answered = {q for q in judged if run.get(q)}
    for q in answered:
        assert ours[q] == pytest.approx(theirs[q], abs=1e-12), q
    for q in judged - answered:  # trec_eval skips them; lextune scores them 0
        assert ours[q] == 0.0


def test_every_metric_equals_ranx_on_runs_without_empty_queries():
    """ranx (the library the earlier numbers came from) agrees wherever it has a document to match."""
    ranx = pytest.importorskip("ranx")
    qrels, run = _random_case(seed=11)
    qrels = {q: d for q, d in qrels.items() if any(r >= 1 for r in d.values()) and run.get(q)}
    # ranx sorts ties without a stable order: give it lextune's ranking as strictly decreasing scores.
    ranked = {q: {d: float(len(run[q]) - i) for i, d in enumerate(canonical_ranking(run[q]))} for q in qrels}
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(ranked), METRICS, return_mean=True)
    ours = evaluate_run(qrels, run, METRICS)
    for m in METRICS:
        assert ours[m] == pytest.approx(float(theirs[m]), abs=1e-9), m


def test_by_hand_k_beyond_the_list_ties_and_an_empty_query():
    qrels = {"q1": {"b": 2, "c": 1, "x": 0}, "q2": {"z": 1}, "q3": {"y": 0}}
    # Scores tie for a/b/c: the ranking is by id, a (unjudged), b (2), c (1).
    run = {"q1": {"c": 1.0, "b": 1.0, "a": 1.0, "x": 0.5}, "q2": {}, "q9": {"z": 1.0}}
    m = evaluate_run(qrels, run, ["precision@10", "recall@10", "ndcg@2", "mrr@1", "mrr@10", "map@10",
                                  "hit_rate@1", "ndcg"], per_query=True)
    assert set(m["ndcg@2"]) == {"q1", "q2"}  # q3 has nothing to find, q9 is not judged
    assert m["precision@10"]["q1"] == pytest.approx(2 / 10)  # k, not the list's length
    assert m["recall@10"]["q1"] == 1.0
    assert m["ndcg@2"]["q1"] == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert m["mrr@1"]["q1"] == 0.0 and m["mrr@10"]["q1"] == pytest.approx(1 / 2)
    assert m["map@10"]["q1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["hit_rate@1"]["q1"] == 0.0
    assert m["ndcg"]["q1"] == pytest.approx((2 / math.log2(3) + 1 / math.log2(4)) / (2 + 1 / math.log2(3)))
    assert all(v["q2"] == 0.0 for v in m.values())  # judged, no results: 0, not dropped
    means = evaluate_run(qrels, run, ["precision@10"])
    assert means["precision@10"] == pytest.approx((2 / 10 + 0) / 2)


def test_the_order_a_run_was_built_in_does_not_matter():
    qrels, run = _random_case(seed=3, n_queries=40)
    shuffled = {q: dict(sorted(d.items(), key=lambda kv: random.Random(q).random())) for q, d in run.items()}
    assert evaluate_run(qrels, run, METRICS) == evaluate_run(qrels, shuffled, METRICS)


def test_evaluate_run_equals_evaluate():
    qrels, run = _random_case(seed=5)
    cfg = EvalConfig(k_values=KS, primary="ndcg@10")
    res = evaluate(qrels, {"s": run}, cfg)
    assert evaluate_run(qrels, run, cfg.metric_names()) == pytest.approx(res.overall["s"])
    assert evaluate_run(qrels, run, cfg.metric_names(), per_query=True) == res.per_query["s"]


def test_paired_t_test_equals_scipys():
    scipy_stats = pytest.importorskip("scipy.stats")
    qrels, run_a = _random_case(seed=1)
    _, run_b = _random_case(seed=2)
    res = evaluate(qrels, {"a": run_a, "b": run_b}, EvalConfig(k_values=[10], families=["ndcg"]))
    qids = res.queries
    xa = [res.per_query["a"]["ndcg@10"][q] for q in qids]
    xb = [res.per_query["b"]["ndcg@10"][q] for q in qids]
    p = scipy_stats.ttest_rel(xa, xb).pvalue
    assert res.p_value("a", "b", "ndcg@10") == pytest.approx(p) == pytest.approx(res.p_value("b", "a", "ndcg@10"))
    identical = evaluate(qrels, {"a": run_a, "same": run_a}, EvalConfig(k_values=[10], families=["ndcg"]))
    assert math.isnan(identical.p_value("a", "same", "ndcg@10"))  # undefined, never "significant"
    assert identical.significance["a"]["ndcg@10"] == []


@pytest.mark.parametrize("name", ["ndcg@0", "ndcg@-1", "f1@10", "NDCG@10", "ndcg@ten", ""])
def test_unknown_metrics_are_refused(name):
    with pytest.raises(ConfigError):
        parse_metric(name)
