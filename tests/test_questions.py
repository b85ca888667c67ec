"""The hand-written questions shipped with the package: gold ids exist in the ingest of the bundled laws,
the two sets are apart, the questions are no lexical copies of their gold paragraphs, the demo reports them."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from lextune.demo import bundled_laws, bundled_questions, demo_config
from lextune.ingest import ingest_chunks
from lextune.runs import load_beir

SETS = {"demo": ("test", 60), "validation": ("dev", 20)}


@pytest.fixture(scope="module")
def chunks():
    return {c.id: c for c in ingest_chunks(bundled_laws())[0]}


@pytest.mark.parametrize("kind", list(SETS))
def test_gold_ids_are_chunks_of_the_bundled_laws(kind, chunks):
    split, at_least = SETS[kind]
    ds = load_beir(bundled_questions(kind), split=split)
    assert len(ds.queries) >= at_least and set(ds.qrels) == set(ds.queries)
    for qid, gold in ds.qrels.items():
        assert set(gold) <= set(chunks), qid
        assert set(gold.values()) <= {1, 2} and 2 in gold.values(), qid  # graded; something answers it
    # the shipped corpus.jsonl is exactly the ingest of the bundled laws (ids, titles, texts)
    assert {i: (d["title"], d["text"]) for i, d in ds.corpus.items()} == {
        i: (c.title, c.text) for i, c in chunks.items()}


def test_the_sets_are_apart_and_cover_the_five_laws(chunks):
    demo = load_beir(bundled_questions("demo"), split="test")
    val = load_beir(bundled_questions("validation"), split="dev")
    assert not set(demo.queries.values()) & set(val.queries.values())
    assert not set(demo.queries) & set(val.queries)
    for ds in (demo, val):
        laws = {chunks[c].law_name for gold in ds.qrels.values() for c in gold}
        assert len(laws) == 5
        articles = [{(chunks[c].doc_id, chunks[c].article) for c in gold} for gold in ds.qrels.values()]
        assert sum(len(a) > 1 for a in articles) >= len(ds.queries) / 3  # a third need two articles


def test_questions_are_not_lexical_copies_of_their_gold():
    from lextune.demo import question_gold_overlap

    for kind in SETS:
        shares = list(question_gold_overlap(kind).values())
        assert len(shares) == len(load_beir(bundled_questions(kind), split=SETS[kind][0]).queries)
        assert statistics.median(shares) < 0.5, kind
        assert max(shares) < 0.8, kind  # no question whose key words all sit in its gold


def test_the_demo_reports_the_hand_written_questions_and_never_the_validation_set(tmp_path):
    cfg = demo_config(tmp_path / "d")
    paths = {d.name: d.path for d in cfg.eval.datasets}
    assert Path(paths["hand-written-questions"]) == bundled_questions("demo")
    # the validation questions judge what the run recommends (validation:) and are never a reported dataset
    assert str(bundled_questions("validation")) not in json.dumps(cfg.eval.model_dump(mode="json"))
    assert Path(cfg.validation.path) == bundled_questions("validation") and cfg.validation.split == "dev"
