"""The bundled demo: the whole workflow offline on the statutes shipped with lextune.

ingest the bundled statutes -> offline synthetic queries (titles, inverse cloze, citing paragraphs) ->
BM25 + dense index with the bundled multilingual-e5-small -> hard negatives -> a short fine-tune of the
bi-encoder and of a reranker -> base versus tuned on the held-out synthetic queries (a law the training
never saw) and on 60 hand-written questions (``data/questions``) -> the targeted pass on the failures -> report.html. About 13-14 minutes on 2 CPU cores (docs/benchmarks.md, "Demo").
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lextune.pipeline.config import EvalDataset, EvalStageConfig, RunConfig, TargetedConfig, ValidationSet


def bundled_laws() -> list[Path]:
    """The statutes shipped with lextune (law.go.kr JSON, public works)."""
    root = resources.files("lextune") / "data" / "laws"
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".json"))


def bundled_questions(kind: str = "demo") -> Path:
    """The hand-written questions over the bundled statutes, as a BEIR folder: ``demo`` (60+, split ``test``,
    what the demo reports) or ``validation`` (20+, split ``dev``, for choosing a system; never reported by the
    demo). See ``data/questions/README.md``."""
    name = {"demo": "questions", "validation": "questions-validation"}[kind]
    return Path(str(resources.files("lextune") / "data" / name))


QUESTION_SPLITS = {"demo": "test", "validation": "dev"}


def question_gold_overlap(kind: str = "demo") -> dict[str, float]:
    """Per bundled question (``kind`` as in :func:`bundled_questions`): the share of its content morphemes (the
    BM25 tokenizer's) found in its gold paragraphs' titles and texts; how lexical the question is."""
    from lextune.index.tokenize import TokenizerConfig, make_tokenizer
    from lextune.runs import load_beir

    tok = make_tokenizer(TokenizerConfig())
    ds = load_beir(bundled_questions(kind), split=QUESTION_SPLITS[kind])
    shares = {}
    for qid, text in ds.queries.items():
        words = set(tok([text])[0])
        gold = {w for c in ds.qrels[qid] for w in tok([ds.corpus[c]["title"] + "\n" + ds.corpus[c]["text"]])[0]}
        shares[qid] = len(words & gold) / len(words)
    return shares


def demo_config(out_dir: str | Path = "lextune-demo", *, quick: bool = False) -> RunConfig:
    """The demo's RunConfig (``quick``: a few steps only, for tests)."""
    steps = {"max_steps": 6} if quick else {"max_steps": -1}  # the targeted pass: one epoch of its records
    return RunConfig(
        run_dir=str(out_dir),
        inputs=[str(p) for p in bundled_laws()],
        # Inverse cloze keeps the sentence in half the passages (not 1 in 10): the held-out queries are
        # near-verbatim sentences, and training only on passages without them cost dense nDCG@10 there.
        synth={"generators": ["title", "ict", "refs"], "dev_fraction": 0.2, "ict_remove_prob": 0.5},
        mine={"n_negatives": 3},
        # 16 queries x (1 positive + 3 mined negatives): more hard negatives per step than 32 x (1 + 1) at
        # about the same cost; 24 steps (half an epoch) score like 47 on the held-out law in half the time
        # (docs/benchmarks.md, "Demo"; bench/train_variant.py).
        train_biencoder={"batch_size": 16, "max_seq_length": 128, "n_negatives": 3, "train_layers": 4,
                         "learning_rate": 5e-5, "epochs": 1.0, "max_steps": 6 if quick else 24},
        train_reranker={"loss": "listwise", "n_negatives": 3, "batch_size": 8, "max_length": 128,
                        "train_layers": 4, "learning_rate": 2e-4, "max_steps": 6 if quick else 16},
        # The held-out sample takes title, inverse-cloze and citing-paragraph queries in turn (stratify); the
        # hand-written questions are what a user asks (everyday words, a situation), judged by hand.
        eval=EvalStageConfig(datasets=[EvalDataset(name="synthetic-dev", max_queries=60 if quick else 150),
                                       EvalDataset(name="hand-written-questions", path=str(bundled_questions()),
                                                   split="test", corpus="run")],
                             k_rerank=10, rerank_weight="auto", weight_queries=40, report=not quick),
        # The 20 validation questions (never reported) judge what the run recommends; the 60 report it.
        validation=ValidationSet(path=str(bundled_questions("validation")), split=QUESTION_SPLITS["validation"]),
        targeted=TargetedConfig(queries_per_gold=1, replay_ratio=1.0,
                                train={"learning_rate": 2e-5, "epochs": 1.0, **steps}),
    )
