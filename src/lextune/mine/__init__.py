"""Hybrid hard-negative mining with false-negative control.

Candidates are the union of BM25 top-N and dense top-N for each training query. They are scored on one
scale (dense cosine by default, BM25 where no dense index was built, or a cross-encoder), then negatives are chosen (top after skipping the
first ranks, or sampled from a rank range, mixed with random negatives). Likely false negatives are
dropped first: the positives themselves, optionally their sibling provisions (same article) and the
provisions linked to them by cross-references, and any candidate scoring above ``max_score_ratio`` of
the best positive's score (positive-aware, as in NV-Retriever) or within ``min_margin`` of it. Every drop is
counted by reason. Scores are compared on a per-query scale (``score_scale: pool``: 0 = the weakest pooled
candidate, 1 = the best positive), so a ratio means the same for any model. A query whose pool the filters
emptied is never dropped silently: its negatives come from deeper dense (else BM25) ranks (``fill_depth``),
then at random from the corpus, and the record says which (``neg_kinds``); the summary counts per generator
how many queries got how many hard negatives. Siblings are
the other paragraphs of a positive's article: from ingest's ``parent_id``, or for a passage without
structure from a title that names its article (``민법 406조 (채권자취소권)``). Work is appended per batch, so
a crashed run resumes.

The package's rooms: ``config`` (MineConfig, MineSummary), ``queries`` (training queries, sampling),
``candidates`` (gathering and scoring), ``filters`` (false-negative rules, a registry) and ``select``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lextune.artifacts import make_meta, write_json_atomic
from lextune.errors import ConfigError
from lextune.mine.candidates import Candidates
from lextune.mine.config import MineConfig, MineSummary
from lextune.mine.filters import FILTERS, Relations, article_keys, filter_pool, keep_below
from lextune.mine.queries import load_training_queries, stratified_sample
from lextune.mine.select import choose_hard, draw_random
from lextune.schema import TrainingExample

__all__ = ["FILTERS", "MineConfig", "MineSummary", "article_keys", "load_training_queries", "mine",
           "stratified_sample"]


@dataclass
class _Miner:
    """What mining one query needs: the candidates' source, the corpus's relations, the queries' positives."""

    config: MineConfig
    cands: Candidates
    relations: Relations
    positives: dict[str, list[str]]
    qmeta: dict[str, dict]
    generator_of: dict[str, str]
    all_ids: list[str]
    rng: random.Random
    summary: MineSummary

    def record(self, qid: str, text: str, found: set[str]) -> TrainingExample | None:
        """The query's training record, or None (counted) when it ends with no negative."""
        config, summary, pos = self.config, self.summary, self.positives[qid]
        summary.candidates += len(found - set(pos))
        summary.dropped["is a positive"] += len(found & set(pos))
        pool, banned = filter_pool(sorted(found - set(pos)), pos, self.qmeta.get(qid, {}), self.relations, config,
                                   summary.dropped)
        scores = self.cands.score(qid, text, pos + pool, len(pos))
        pos_scores = scores[: len(pos)]
        cand_scores = dict(zip(pool, scores[len(pos):], strict=True))
        ref = max(pos_scores) if pos_scores else None  # the best positive: what a false negative rivals
        floor = min(cand_scores.values(), default=None) if config.score_scale == "pool" else None
        kept = keep_below(pool, cand_scores, ref, floor, config, banned, summary.dropped)
        n_random = int(round(config.n_negatives * config.random_ratio))
        n_hard = config.n_negatives - n_random
        hard = choose_hard(kept, cand_scores, n_hard, config, self.rng)
        kinds = ["hard"] * len(hard)
        if len(hard) < n_hard and config.fill == "deeper" and self.cands.can_go_deeper():
            seen = found | banned | set(hard)
            deeper = [d for d in self.cands.deeper(qid, text) if d not in seen]
            if deeper:
                deeper_scores = dict(zip(deeper, self.cands.score(qid, text, deeper, 0), strict=True))
                cand_scores.update(deeper_scores)
                extra = keep_below(deeper, deeper_scores, ref, floor, config, banned, summary.dropped)
                extra = extra[: n_hard - len(hard)]
                if extra:
                    summary.filled["deeper"] += 1
                hard += extra
                kinds += ["deeper"] * len(extra)
        asked_random = n_random
        if config.fill != "none":
            n_random += n_hard - len(hard)  # never a query without negatives
        rand = draw_random(n_random, banned | set(hard), self.all_ids, self.rng)
        if len(rand) > asked_random:
            summary.filled["random"] += 1
        summary.hard_negatives.setdefault(self.generator_of[qid], Counter())[len(hard)] += 1
        if not hard + rand:
            summary.skipped_no_negative += 1
            return None
        neg_scores = [cand_scores.get(c) for c in hard] + [None] * len(rand)
        rec = {"query_id": qid, "query": text, "pos": pos, "neg": hard + rand,
               "pos_scores": [float(s) for s in pos_scores],
               "neg_scores": [None if s is None else float(s) for s in neg_scores],
               "neg_kinds": kinds + ["random"] * len(rand)}
        if self.qmeta[qid].get("positive_text"):
            rec["pos_text"] = self.qmeta[qid]["positive_text"]
        return TrainingExample(**rec)


def _resume(partial: Path) -> set[str]:
    """Query ids already mined into ``partial``; a record a crash cut short is removed (mined again)."""
    done: set[str] = set()
    if not partial.is_file():
        return done
    good: list[str] = []
    for line in partial.read_text(encoding="utf-8").splitlines():
        try:
            done.add(json.loads(line)["query_id"])
            good.append(line)
        except (json.JSONDecodeError, KeyError):
            continue
    partial.write_text("".join(f"{line}\n" for line in good), encoding="utf-8")
    return done


def mine(queries_dir: str | Path, index_dir: str | Path, out_path: str | Path, config: MineConfig | None = None,
         refs: str | Path | None = None, split: str = "train",
         progress: Callable[[int, int], None] | None = None) -> MineSummary:
    """Write ``{query, pos, neg, pos_scores, neg_scores}`` records for every training query."""
    from lextune.index import LexIndex

    config = config or MineConfig()
    start = time.perf_counter()
    index = LexIndex.load(index_dir)
    queries, positives, qmeta = load_training_queries(queries_dir, split)
    if not queries:
        raise ConfigError(f"{queries_dir}: no {split} queries with positives")
    summary = MineSummary(queries=len(queries))
    cands = Candidates(index, config, qmeta, summary.seconds)
    refs_path = Path(refs) if refs else Path(index.meta.get("inputs", {}).get("chunks", "")) / "refs.jsonl"
    generator_of = {q: qmeta.get(q, {}).get("generator", "unknown") for q in queries}
    miner = _Miner(config, cands, Relations.build(index.docs, refs_path), positives, qmeta, generator_of,
                   list(index.docs), random.Random(config.seed), summary)
    if config.max_queries is not None and len(queries) > config.max_queries:
        keep = stratified_sample(list(queries), generator_of, config.max_queries, config.seed)
        summary.sampled_out = len(queries) - len(keep)
        queries = {q: queries[q] for q in keep}
        summary.queries = len(queries)
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    done = _resume(partial)
    summary.resumed = len(done)
    todo = [q for q in queries if q not in done]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(0, len(todo))  # the start: rates count from here
    with open(partial, "a", encoding="utf-8") as sink:
        for b in range(0, len(todo), config.batch_size):
            batch = {q: queries[q] for q in todo[b : b + config.batch_size]}
            found = cands.gather(batch)
            for qid, text in batch.items():
                if (rec := miner.record(qid, text, found[qid])) is None:
                    continue
                sink.write(rec.model_dump_json(exclude_unset=True) + "\n")
                summary.records += 1
                summary.pos_scores.extend(rec.pos_scores)
                summary.neg_scores.extend(s for s in rec.neg_scores if s is not None)
            sink.flush()
            if progress:
                progress(min(len(todo), b + config.batch_size), len(todo))
    summary.records += summary.resumed
    partial.replace(out_path)
    summary.seconds["total"] = time.perf_counter() - start
    write_json_atomic(out_path.with_name(out_path.stem + ".meta.json"),
                      make_meta("training_examples", config=config.model_dump(mode="json"),
                                inputs={"queries": str(queries_dir), "index": str(index_dir)}, summary=summary.to_dict()))
    return summary
