"""`lextune run`: stages cached by hashes, --from/--until, the manifest, base vs tuned comparison, the
targeted pass; the demo's config; config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest
import yaml

from lextune.errors import ConfigError

LAWS = Path(__file__).resolve().parents[1] / "src" / "lextune" / "data" / "laws"


def tiny_config(run_dir: Path) -> dict:
    steps = {"max_steps": 2}
    return {
        "run_dir": str(run_dir),
        "inputs": [str(LAWS / "000549.json"), str(LAWS / "010910.json")],
        "synth": {"generators": ["title", "ict", "refs"], "dev_fraction": 0.5},
        "mine": {"n_negatives": 2},
        "train_biencoder": {"batch_size": 8, "max_seq_length": 48, "train_layers": 1, **steps},
        "train_reranker": {"n_negatives": 2, "batch_size": 2, "max_length": 64, "train_layers": 1, **steps},
        "eval": {"k_rerank": 5, "report": False, "rerank_weight": "auto", "weight_queries": 20,
                 "datasets": [{"name": "synthetic-dev", "max_queries": 30}]},
        "targeted": {"queries_per_gold": 1, "train": {"learning_rate": 1e-5, **steps}},
    }


@pytest.fixture(scope="module")
def tiny_run(module_tmp, bundled_dir):
    from lextune.pipeline import RunConfig, run_pipeline

    root = module_tmp
    cfg = RunConfig.model_validate(tiny_config(root / "run"))
    messages = []
    result = run_pipeline(cfg, progress=lambda stage, msg: messages.append((stage, msg)))
    return cfg, result, messages


def test_every_stage_runs_and_the_manifest_lists_them(tiny_run):
    cfg, result, messages = tiny_run
    assert [r["status"] for r in result.stages.values()] == ["ran"] * 8
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["type"] == "run" and set(manifest["stages"]) == set(result.stages)
    assert "train_biencoder/model/meta.json" in manifest["artifacts"]["train_biencoder"]
    systems = result.comparison["datasets"]["synthetic-dev/queries"]["systems"]
    reranked = [s for s in systems if s.endswith("+rerank")]
    assert list(systems) == ["bm25", "dense-base", "hybrid-base", "dense-tuned", "hybrid-tuned", *reranked, "recommended"]
    assert len(reranked) == 1 and reranked[0].startswith(("hybrid-base", "hybrid-tuned"))
    assert all(0 <= m["ndcg@10"] <= 1 for m in systems.values())
    md_lines = (result.run_dir / "eval" / "comparison.md").read_text().splitlines()
    assert sum(line.startswith("| hybrid-tuned |") for line in md_lines) == 3  # overall, by generator, candidates
    # the recommendation: judged on held-out synthetic queries (RRF kept), never a system that is not
    # significantly above BM25 there, written as a pipeline that loads and scores like its table row
    rec = result.comparison["recommendation"]
    assert rec["source"] == "synthetic" and rec["robust_fusion"] and 0 < rec["queries"] <= 20
    cands = rec["candidates"]
    # the structure steps, each alone and together, on BM25 and the best first stage: a candidate only when
    # significantly better than that first stage on the validation queries
    steps = rec["structure_steps"]
    best = max(("hybrid-base", "hybrid-tuned"), key=lambda n: steps[f"{n}+route"]["first_stage_ndcg@10"]
               if f"{n}+route" in steps else -1)
    assert set(steps) == {f"{n}+{s}" for n in ("bm25", best) for s in ("route", "expand", "pool", "structure")}
    for e in steps.values():
        assert e["kept"] == (e["ndcg@10"] > e["first_stage_ndcg@10"] and e["p_value"] is not None
                             and e["p_value"] < 0.05)
    kept = {n for n, e in steps.items() if e["kept"]}
    assert set(cands) == {"bm25", "hybrid-base", "hybrid-tuned", *kept, *reranked}
    assert "Structure steps" in (result.run_dir / "eval" / "comparison.md").read_text()
    better = [n for n, c in cands.items() if n != "bm25" and c["ndcg@10"] > cands["bm25"]["ndcg@10"]
              and c["p_vs_bm25"] is not None and c["p_vs_bm25"] < 0.05]
    assert rec["recommended"] == (max(better, key=lambda n: cands[n]["ndcg@10"]) if better else "bm25")
    from lextune.index import PipelineConfig

    written = PipelineConfig.model_validate(yaml.safe_load((result.run_dir / "recommended.yaml").read_text()))
    assert written == PipelineConfig.model_validate(rec["pipelines"][rec["recommended"]])
    if rec["recommended"] in systems:
        assert systems["recommended"] == systems[rec["recommended"]]
    manifest_rec = manifest["comparison"]["recommendation"]
    assert manifest_rec["recommended"] == rec["recommended"] and "p_vs_bm25" in manifest_rec["candidates"]["bm25"]
    groups = result.comparison["datasets"]["synthetic-dev/queries"]["by_generator"]
    assert set(groups) <= {"title", "ict", "refs"} and sum(g["queries"] for g in groups.values()) == 30
    assert "by query generator" in (result.run_dir / "eval" / "comparison.md").read_text()
    assert (result.run_dir / "eval" / "synthetic-dev" / "queries" / "metrics.json").is_file()
    assert any(stage == "eval" and "dense-tuned" in msg for stage, msg in messages)
    rw = result.comparison["rerank_weight"]  # chosen on validation queries the eval does not score
    assert 0 < rw["queries"] <= 20 and str(rw["weight"]) in rw["ndcg@10"] and "blend weight" in (
        result.run_dir / "eval" / "comparison.md").read_text()
    # a weight above 0 survives only a significant validation gain; at 0 the row is the first stage
    assert rw["weight"] == (rw["best_weight"] if rw["p_value"] is not None and rw["p_value"] < 0.05 else 0.0)
    if rw["weight"] == 0:
        assert systems[reranked[0]] == systems[rw["first_stage"]]
    t = result.stages["targeted"]["summary"]
    assert t["new_records"] > 0 and set(t["by_category"]) == {"recall", "sibling_article", "sibling_law", "ranking"}
    assert t["check_queries"] > 0 and t["select_queries"] > 0
    assert (result.run_dir / "targeted" / "model" / "meta.json").is_file()
    assert (result.run_dir / "targeted" / "data" / "failures-select.jsonl").is_file()
    assert (result.run_dir / "pipeline.yaml").is_file()


def test_where_bm25_wins_by_construction_the_run_recommends_bm25_alone_and_serves_it(tiny_run, tmp_path):
    """Labelled questions that are their gold paragraphs verbatim: BM25 ranks every gold first, so nothing can
    beat it. The run recommends BM25 alone; `lextune eval` on recommended.yaml reproduces the run's number and
    `lextune serve --run` answers that pipeline's ranking."""
    import shutil

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from lextune.cli.main import app
    from lextune.ingest import read_chunks
    from lextune.pipeline import RunConfig, run_pipeline
    from lextune.runs import read_trec_run
    from lextune.serve import ServeConfig, create_app
    from lextune.serve.config import run_settings

    cfg, result, _ = tiny_run
    run_dir = shutil.copytree(result.run_dir, tmp_path / "run")  # the module's run stays as it was
    chunks = read_chunks(run_dir / "ingest")
    counts: dict[str, int] = {}
    for c in chunks:
        counts[c.text] = counts.get(c.text, 0) + 1
    picked = [c for c in chunks if len(c.text) > 80 and counts[c.text] == 1][:12]
    data = tmp_path / "labelled"
    (data / "qrels").mkdir(parents=True)
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": f"v{i}", "text": c.text}, ensure_ascii=False)
                                                + "\n" for i, c in enumerate(picked)), encoding="utf-8")
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": c.id, "title": c.title, "text": c.text},
                                                          ensure_ascii=False) + "\n" for c in chunks), encoding="utf-8")
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"v{i}\t{c.id}\t1\n" for i, c in enumerate(picked)), encoding="utf-8")
    settings = cfg.model_dump(mode="json")
    settings["eval"]["rerank_weight"] = 0.5  # a fixed weight above 0: every first stage is also tried reranked
    labelled = RunConfig.model_validate({**settings, "run_dir": str(run_dir), "validation": {"path": str(data)}})
    again = run_pipeline(labelled, until="eval")
    assert [r["status"] for r in again.stages.values()][:7] == ["cached"] * 6 + ["ran"]  # only eval reruns
    rec = again.comparison["recommendation"]
    assert rec["source"] == "labelled" and not rec["robust_fusion"] and rec["queries"] == len(picked) == 12
    assert rec["candidates"]["bm25"]["ndcg@10"] == pytest.approx(1.0)
    firsts = {"bm25", "dense-base", "dense-tuned", "hybrid-base", "hybrid-tuned", "wsum0.5-tuned", "wsum0.3-base"}
    assert firsts | {f"{n}+rerank" for n in firsts} <= set(rec["candidates"])
    assert rec["pipelines"]["wsum0.5-tuned+rerank"]["rerank"]["weight"] == 0.5
    assert rec["recommended"] == "bm25"
    assert yaml.safe_load((again.run_dir / "recommended.yaml").read_text())["retrievers"] == ["bm25"]
    res = CliRunner().invoke(app, ["eval", "-d", str(data), "-i", str(again.run_dir / "index"), "-s",
                                   f"rec={again.run_dir / 'recommended.yaml'}", "-o", str(tmp_path / "ev"), "--no-report"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["results"]["overall"]["rec"]["ndcg@10"] == pytest.approx(rec["candidates"]["bm25"]["ndcg@10"])
    measured = read_trec_run(tmp_path / "ev" / "runs" / "rec.trec")
    settings = run_settings(again.run_dir)
    assert settings["pipeline"].retrievers[0].name == "bm25" and settings["model"] is None
    with TestClient(create_app(ServeConfig(api_key_env=None, **settings))) as client:
        hits = client.post("/v1/search", json={"query": picked[0].text, "k": 5}).json()["results"]
    expected = sorted(measured["v0"].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [h["id"] for h in hits] == [d for d, _ in expected] and hits[0]["id"] == picked[0].id


def test_unchanged_stages_are_reused_and_from_reruns(tiny_run):
    from lextune.pipeline import RunConfig, run_pipeline

    cfg, result, _ = tiny_run
    again = run_pipeline(cfg)
    assert [r["status"] for r in again.stages.values()] == ["cached"] * 8
    assert again.comparison == result.comparison
    partial = run_pipeline(cfg, from_stage="targeted")
    assert [r["status"] for r in partial.stages.values()] == ["cached"] * 7 + ["ran"]
    # a changed synth config reruns synth and what depends on it, not ingest or the index
    changed = RunConfig.model_validate({**tiny_config(Path(cfg.run_dir)), "synth": {"generators": ["ict"],
                                                                                  "dev_fraction": 0.5}})
    upto = run_pipeline(changed, until="mine")
    assert {s: r["status"] for s, r in upto.stages.items()} == {
        "ingest": "cached", "synth": "ran", "index": "cached", "mine": "ran", "train_biencoder": "not run (--until)",
        "train_reranker": "not run (--until)", "eval": "not run (--until)", "targeted": "not run (--until)"}


def test_a_new_stage_is_one_registry_entry(tmp_path):
    """A stage added through its registry entry alone runs in order after its upstream, is cached by its key,
    reruns when what it reads changes, and is listed in the manifest."""
    from lextune.pipeline import RunConfig, run_pipeline
    from lextune.pipeline.stages import STAGES, stage

    calls = []

    @stage("count_chunks", upstream=["ingest"], config=lambda c: {"unit": c.ingest.unit}, after="ingest")
    def count_chunks(ctx):
        n = sum(1 for _ in (ctx.dir("ingest") / "chunks.jsonl").open(encoding="utf-8"))
        ctx.dir("count_chunks").mkdir(parents=True, exist_ok=True)
        (ctx.dir("count_chunks") / "n.txt").write_text(str(n))
        calls.append(n)
        return {"chunks": n}

    try:
        assert list(STAGES)[:3] == ["ingest", "count_chunks", "synth"]
        cfg = RunConfig.model_validate(tiny_config(tmp_path / "run"))
        first = run_pipeline(cfg, until="count_chunks")
        assert first.stages["count_chunks"]["status"] == "ran" and first.stages["synth"]["status"] == "not run (--until)"
        again = run_pipeline(cfg, until="count_chunks")
        assert again.stages["count_chunks"]["status"] == "cached" and len(calls) == 1
        article = RunConfig.model_validate({**tiny_config(tmp_path / "run"), "ingest": {"unit": "article"}})
        third = run_pipeline(article, until="count_chunks")
        assert third.stages["count_chunks"]["status"] == "ran" and calls[1] < calls[0]  # fewer, whole articles
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["artifacts"]["count_chunks"] == ["count_chunks/n.txt"]
    finally:
        del STAGES["count_chunks"]


def test_stratified_sample_takes_generators_in_turn_and_is_stable():
    from lextune.pipeline.compare import stable_sample

    qids = [f"ict:{i}" for i in range(20)] + [f"title:{i}" for i in range(3)] + [f"refs:{i}" for i in range(5)]
    groups = {q: q.split(":")[0] for q in qids}
    sample = stable_sample(qids, 12, groups)
    count = {g: sum(1 for q in sample if groups[q] == g) for g in ("ict", "title", "refs")}
    assert count == {"ict": 5, "title": 3, "refs": 4}  # title runs out after 3; the others share the rest
    assert sample == stable_sample(list(reversed(qids)), 12, groups)
    assert stable_sample(qids, 12) == stable_sample(qids, None)[:12]  # unstratified: the hash order
    assert sorted(stable_sample(qids, None, groups)) == sorted(qids)


def test_by_generator_means_per_query_scores():
    from types import SimpleNamespace

    from lextune.pipeline.compare import by_generator

    result = SimpleNamespace(queries=["a", "b", "c"], systems=["s"],
                             per_query={"s": {"ndcg@10": {"a": 1.0, "b": 0.0, "c": 0.5}}})
    assert by_generator(result, {"a": "ict", "b": "ict", "c": "refs"}) == {
        "ict": {"queries": 2, "systems": {"s": {"ndcg@10": 0.5}}}, "refs": {"queries": 1, "systems": {"s": {"ndcg@10": 0.5}}}}
    assert by_generator(result, {}) == {}


def test_blend_by_hand():
    from lextune.index.pipeline import blend

    first = {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}}
    reranked = {"q": {"c": 9.0, "a": 5.0, "b": 1.0, "d": -1e6}}
    out = blend(first, reranked, 0.5, k=3)["q"]
    # a: 0.5/2 + 0.5/1 = 0.75; c: 0.5/1 + 0.5/3 = 0.667; b: 0.5/3 + 0.5/2 = 0.417; d below the head
    assert out["a"] == pytest.approx(0.75) and out["c"] == pytest.approx(2 / 3) and out["b"] == pytest.approx(5 / 12)
    assert sorted(out, key=lambda d: -out[d]) == ["a", "c", "b", "d"]
    # weight 0 gives the first stage back, its ties broken by id as evaluation breaks them
    tied = {"q": {"x": 1.0, "b": 1.0, "a": 1.0, "y": 0.5}}
    out0 = blend(tied, {"q": {"x": 3.0, "b": 2.0, "a": 1.0, "y": 0.0}}, 0.0, k=3)["q"]
    assert sorted(out0, key=lambda d: -out0[d]) == ["a", "b", "x", "y"]


def test_rerank_weight_is_chosen_on_validation_by_hand():
    from lextune.pipeline.compare import choose_rerank_weight

    qrels = {"q": {"g": 1}}
    first = {"q": {"a": 3.0, "b": 2.0, "g": 1.0}}
    # g tops the blend when w/1 + (1-w)/3 beats a's w/3 + (1-w)/1, i.e. w > 0.5: the smallest such grid weight
    weight, curve = choose_rerank_weight(qrels, first, {"q": {"g": 9.0, "b": 5.0, "a": 1.0}}, k=3)
    assert weight == 0.6 and curve[0.6] == pytest.approx(1.0) and curve[0.5] < 1.0
    weight, curve = choose_rerank_weight(qrels, first, {"q": {"a": 9.0, "b": 5.0, "g": 1.0}}, k=3)
    assert weight == 0.0  # a reranker that only hurts is switched off


def test_blend_gain_p_by_hand():
    from lextune.pipeline.compare import blend_gain_p

    qrels = {f"q{i}": {"g": 1} for i in range(10)}
    first = {q: {"a": 3.0, "b": 2.0, "g": 1.0} for q in qrels}  # gold third everywhere: nDCG@10 0.5
    lifts = {q: {"g": 9.0, "a": 5.0, "b": 1.0} for q in qrels}  # weight 1: gold first everywhere
    assert blend_gain_p(qrels, first, lifts, 1.0, k=3) < 1e-6  # +0.5 on every query
    # q0 gains 0.5 (third -> first), q1 loses 0.5 (first -> third), the rest tie: no evidence of a gain
    mixed = {q: dict(first[q]) for q in qrels}
    mixed["q0"] = {"g": 9.0, "a": 5.0, "b": 1.0}
    mixed["q1"] = {"a": 9.0, "b": 5.0, "g": 1.0}
    first["q1"] = {"g": 3.0, "a": 2.0, "b": 1.0}
    assert blend_gain_p(qrels, first, mixed, 1.0, k=3) > 0.5
    # varied gains on most queries: significant at 0.05 (t = mean / (sd / sqrt n))
    varied = {q: ({"g": 9.0, "a": 5.0, "b": 1.0} if i % 3 else {"a": 9.0, "g": 5.0, "b": 1.0})
              for i, q in enumerate(qrels)}
    assert blend_gain_p(qrels, first, varied, 1.0, k=3) < 0.05


def test_config_errors_name_the_problem(tmp_path):
    from lextune.pipeline import RunConfig, run_pipeline

    with pytest.raises(pydantic.ValidationError, match="set by the run"):
        RunConfig.model_validate({**tiny_config(tmp_path), "train_biencoder": {"train_file": "x"}})
    with pytest.raises(pydantic.ValidationError, match="targeted"):
        RunConfig.model_validate({**tiny_config(tmp_path), "train_biencoder": None})
    with pytest.raises(pydantic.ValidationError, match="rerank_weight"):
        RunConfig.model_validate({**tiny_config(tmp_path), "eval": {"rerank_weight": 1.5}})
    with pytest.raises(ConfigError, match="unknown stage"):
        run_pipeline(RunConfig.model_validate(tiny_config(tmp_path)), until="training")
    with pytest.raises(ConfigError, match="does not exist"):
        run_pipeline(RunConfig.model_validate({**tiny_config(tmp_path), "inputs": [str(tmp_path / "missing.json")]}))


def test_a_reranker_started_from_the_biencoder_is_retrained_when_the_biencoder_changes(tmp_path):
    from lextune.pipeline import RunConfig
    from lextune.pipeline.run import RunContext, stage_key

    def reranker_key(init: str, biencoder_key: str) -> str:
        ctx = RunContext(RunConfig.model_validate({**tiny_config(tmp_path), "reranker_init": init}), tmp_path)
        ctx.keys.update({"mine": "m", "train_biencoder": biencoder_key})
        return stage_key(ctx, "train_reranker")

    assert reranker_key("base", "b1") == reranker_key("base", "b2")  # only the mined data matter
    assert reranker_key("biencoder", "b1") != reranker_key("biencoder", "b2")
    assert reranker_key("biencoder", "b1") != reranker_key("base", "b1")
    with pytest.raises(pydantic.ValidationError, match="reranker_init: biencoder needs"):
        RunConfig.model_validate({**tiny_config(tmp_path), "reranker_init": "biencoder", "train_biencoder": None,
                                  "targeted": None})


def test_cli_run_until_and_demo_config(tmp_path):
    from typer.testing import CliRunner

    from lextune.cli.main import app
    from lextune.demo import bundled_laws, demo_config

    cfg_file = tmp_path / "pipeline.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_config(tmp_path / "r")), encoding="utf-8")
    res = CliRunner().invoke(app, ["run", str(cfg_file), "--until", "synth"])
    assert res.exit_code == 0, res.output
    assert "synth" in res.output and (tmp_path / "r" / "synth" / "qrels" / "dev.tsv").is_file()
    assert not (tmp_path / "r" / "index").exists()
    bad = CliRunner().invoke(app, ["run", str(cfg_file), "--set", "mine.n_negatives=0"])
    assert bad.exit_code == 2 and "n_negatives" in bad.output
    demo = demo_config(tmp_path / "d")
    assert [Path(p) for p in demo.inputs] == bundled_laws() and demo.targeted is not None
    shown = CliRunner().invoke(app, ["demo", "--show-config", "--out", str(tmp_path / "d")])
    assert shown.exit_code == 0 and "train_biencoder" in shown.output


def test_targeted_records_use_outrankers_not_siblings_and_never_a_validation_query():
    from lextune.eval.failures import FailureCase, Gold, Hit
    from lextune.ingest import ingest_chunks
    from lextune.pipeline import TargetedConfig
    from lextune.pipeline.targeted import targeted_records

    chunks, _ = ingest_chunks([LAWS / "000549.json"])
    by_id = {c.id: c for c in chunks}
    docs = {c.id: {"parent_id": c.parent_id} for c in chunks}
    gold = next(c for c in chunks if c.parent_id and sum(1 for x in chunks if x.parent_id == c.parent_id) > 1)
    sibling = next(c for c in chunks if c.parent_id == gold.parent_id and c.id != gold.id)
    others = [c for c in chunks if c.parent_id != gold.parent_id][:3]
    case = FailureCase("v1", "검증 질문", "sibling_article", 5, golds=[Gold(gold.id, gold.title, 5)],
                       top=[Hit(sibling.id, "", 0.9, False)] + [Hit(o.id, "", 0.8 - i / 10, False) for i, o in enumerate(others)]
                       + [Hit(gold.id, "", 0.1, True)])
    banned = {"검증 질문"}
    records = targeted_records([case], by_id, docs, TargetedConfig(queries_per_gold=2, n_negatives=2), banned)
    assert 1 <= len(records) <= 2
    for r in records:  # train.jsonl's typed records; the failure's id and category ride along
        assert r.pos == [gold.id] and sibling.id not in r.neg
        assert r.neg[:3] == [o.id for o in others] and r.query not in banned
        assert r.source_failure == "v1" and r.category == "sibling_article"
    assert len({r.query for r in records}) == len(records)


def test_a_run_without_a_dense_index_mines_with_bm25_and_still_compares_dense(tmp_path, bundled_dir):
    """dense_index: false (a large corpus on CPU): BM25-only index and mining; eval encodes what it needs."""
    from lextune.pipeline import RunConfig, run_pipeline

    cfg = tiny_config(tmp_path / "run")
    cfg.update(dense_index=False, mine={"n_negatives": 2, "scorer": "bm25"}, train_reranker=None, targeted=None,
               eval={"report": False, "rerank_weight": 0, "datasets": [{"name": "synthetic-dev", "max_queries": 10}]})
    result = run_pipeline(RunConfig.model_validate(cfg))
    run = tmp_path / "run"
    assert (run / "index" / "bm25").is_dir() and not (run / "index" / "dense").exists()
    mined = result.stages["mine"]["summary"]
    assert mined["records"] > 0 and mined["seconds"]["dense"] == 0 and mined["skipped_no_negative"] == 0
    systems = next(iter(result.comparison["datasets"].values()))["systems"]
    assert {"bm25", "dense-base", "hybrid-base", "dense-tuned", "hybrid-tuned"} <= set(systems)


def test_validation_prefers_labelled_then_precedent_then_synthetic_queries(tmp_path):
    """The source order of what judges the recommendation, and that scored queries never judge it."""
    from types import SimpleNamespace

    from lextune.pipeline import RunConfig
    from lextune.pipeline.recommend import validation_set

    synth = tmp_path / "synth"
    (synth / "qrels").mkdir(parents=True)
    (synth / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"t{i}"}) + "\n"
                                                for i in range(4)), encoding="utf-8")

    def write(gens: dict[str, str]) -> None:
        (synth / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": q, "generator": g}) + "\n"
                                                     for q, g in gens.items()), encoding="utf-8")
        (synth / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
            f"{q}\td0\t1\n" for q in gens), encoding="utf-8")

    def ctx(**over):
        cfg = RunConfig.model_validate({"inputs": ["x"], **over})
        return SimpleNamespace(config=cfg, dir=lambda stage: tmp_path / stage)

    write({"p1": "precedents", "p2": "precedents", "t1": "title", "i1": "ict"})
    val = validation_set(ctx(), taken={"p2"})
    assert val.source == "precedent" and set(val.queries) == {"p1"} and val.robust
    write({"t1": "title", "i1": "ict", "r1": "refs"})
    val = validation_set(ctx(eval={"weight_queries": 2}), taken=set())
    assert val.source == "synthetic" and len(val.queries) == 2 and val.robust
    labelled = tmp_path / "labelled"
    (labelled / "qrels").mkdir(parents=True)
    (labelled / "corpus.jsonl").write_text((synth / "corpus.jsonl").read_text(), encoding="utf-8")
    (labelled / "queries.jsonl").write_text(json.dumps({"_id": "u1", "text": "내 질문"}) + "\n", encoding="utf-8")
    (labelled / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nu1\td2\t2\n", encoding="utf-8")
    val = validation_set(ctx(validation={"path": str(labelled)}), taken=set())
    assert val.source == "labelled" and val.queries == {"u1": "내 질문"} and not val.robust
    assert val.qrels == {"u1": {"d2": 2}}
