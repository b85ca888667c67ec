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
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lextune.artifacts import make_meta, write_json_atomic
from lextune.errors import ConfigError, InputFormatError
from lextune.index.rerank import RerankConfig
from lextune.jsonl import iter_jsonl
from lextune.runs import query_ignore, read_qrels


class MineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bm25_depth: int = Field(50, ge=0)
    dense_depth: int = Field(50, ge=0)
    scorer: Literal["dense", "bm25", "reranker"] = Field(
        "dense", description="What scores candidates for the false-negative filter and the order of negatives: the "
        "dense model's cosine, BM25 (no dense index needed: BM25 candidates, deeper fill from BM25), or a "
        "cross-encoder.")
    reranker: RerankConfig | None = None
    n_negatives: int = Field(7, ge=1)
    selection: Literal["top", "range"] = "top"
    skip_top: int = Field(0, ge=0, description="With 'top': ignore this many best candidates first.")
    range_start: int = Field(10, ge=0)
    range_end: int = Field(50, ge=1)
    random_ratio: float = Field(0.0, ge=0.0, le=1.0, description="Share of negatives drawn from the whole corpus.")
    exclude_siblings: bool = True
    exclude_cited: bool = True
    max_score_ratio: float | None = Field(0.95, description="Drop candidates above this share of the best positive's "
                                          "score (on score_scale; 1.0: only those that outscore it).")
    min_margin: float | None = Field(None, description="Drop candidates within this margin of the best positive "
                                     "(on score_scale).")
    score_scale: Literal["pool", "raw"] = Field(
        "pool", description="pool: a query's scores are rescaled to 0..1 between its weakest pooled candidate and its "
        "best positive before the ratio and margin tests, so 0.95 means 'within the top 5% of that gap' for any "
        "model (e5 cosines of positives and negatives differ by ~0.01); raw: the scorer's own scores.")
    fill: Literal["deeper", "random", "none"] = Field(
        "deeper", description="When the filters leave fewer hard negatives than asked: take them from deeper dense "
        "ranks (up to fill_depth, same filters), then at random from the corpus ('random': at random only; 'none': "
        "fewer negatives, and a query with none is skipped and counted).")
    fill_depth: int = Field(200, ge=1, description="Dense ranks searched when filling.")
    max_queries: int | None = Field(None, ge=1, description="Mine a sample of this many queries, taking the query "
                                    "generators in turn (stratified), in a stable order.")
    batch_size: int = Field(256, ge=1)
    seed: int = 13

    @model_validator(mode="after")
    def _range_order(self) -> MineConfig:
        if self.range_start >= self.range_end:
            raise ValueError(f"range_start ({self.range_start}) must be below range_end ({self.range_end})")
        return self


@dataclass
class MineSummary:
    queries: int = 0
    records: int = 0
    resumed: int = 0
    skipped_no_negative: int = 0
    sampled_out: int = 0
    candidates: int = 0
    # generator -> number of hard negatives -> queries; and how many queries needed deeper or random fill
    hard_negatives: dict[str, Counter] = field(default_factory=dict)
    filled: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    pos_scores: list[float] = field(default_factory=list)
    neg_scores: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"bm25": 0.0, "dense": 0.0, "rerank": 0.0, "total": 0.0})

    def to_dict(self) -> dict:
        def dist(xs: list[float]) -> dict:
            if not xs:
                return {}
            a = np.asarray(xs)
            return {"n": len(a), "mean": float(a.mean()), "p10": float(np.percentile(a, 10)),
                    "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90))}
        return {"queries": self.queries, "records": self.records, "resumed": self.resumed,
                "skipped_no_negative": self.skipped_no_negative, "sampled_out": self.sampled_out,
                "candidates": self.candidates,
                "hard_negatives_per_generator": {g: {str(k): v for k, v in sorted(c.items())}
                                                 for g, c in sorted(self.hard_negatives.items())},
                "filled": dict(self.filled),
                "dropped": dict(self.dropped), "pos_score": dist(self.pos_scores), "neg_score": dist(self.neg_scores),
                "seconds": self.seconds}


def load_training_queries(folder: str | Path, split: str = "train") -> tuple[dict[str, str], dict[str, list[str]], dict[str, dict]]:
    """Queries, their positives and metadata from a synth output folder (BEIR layout)."""
    folder = Path(folder)
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    texts: dict[str, str] = {}
    meta: dict[str, dict] = {}
    for lineno, obj in iter_jsonl(folder / "queries.jsonl"):
        qid = str(obj.get("_id", obj.get("id")))
        if "text" not in obj:
            raise InputFormatError("missing field", path=str(folder / "queries.jsonl"), line=lineno, field="text")
        texts[qid] = obj["text"]
        ignore = query_ignore(obj, path=str(folder / "queries.jsonl"), line=lineno)
        meta[qid] = {**(obj.get("metadata") or {}), **({"ignore": ignore} if ignore else {}),
                     "generator": str(obj.get("generator") or "unknown")}
    positives = {q: [d for d, r in docs.items() if r > 0] for q, docs in qrels.items() if q in texts}
    return {q: texts[q] for q in positives}, positives, meta


def stratified_sample(qids: list[str], groups: dict[str, str], n: int, seed: int) -> list[str]:
    """``n`` query ids taking the groups (generators) in turn, each group in a stable hash order."""
    import hashlib

    by_group: dict[str, list[str]] = {}
    for q in sorted(qids, key=lambda q: hashlib.sha1(f"{seed}:{q}".encode()).hexdigest()):
        by_group.setdefault(groups.get(q, "unknown"), []).append(q)
    out: list[str] = []
    lists = [by_group[g] for g in sorted(by_group)]
    i = 0
    while len(out) < min(n, len(qids)):
        for lst in lists:
            if i < len(lst) and len(out) < n:
                out.append(lst[i])
        i += 1
    return out


def article_keys(docs: dict[str, dict]) -> dict[str, str]:
    """Document id -> the article it belongs to: ingest's ``parent_id``; for a passage without structure, the
    article its title names (``민법 406조 (채권자취소권)``, so the other paragraphs of a cited article are
    siblings in a BEIR corpus too); else the document itself."""
    from lextune.ingest.refs import heading_article

    keys: dict[str, str] = {}
    for d, v in docs.items():
        if v.get("parent_id"):
            keys[d] = v["parent_id"]
            continue
        found = heading_article(v.get("title"))
        keys[d] = f"{found[1]}:{found[2]}" if found else d
    return keys


def _neighbours(refs_path: Path | None) -> dict[str, set[str]]:
    links: dict[str, set[str]] = {}
    if refs_path and refs_path.is_file():
        for line in refs_path.read_text(encoding="utf-8").splitlines():
            if line:
                e = json.loads(line)
                links.setdefault(e["source"], set()).add(e["target"])
                links.setdefault(e["target"], set()).add(e["source"])
    return links


def mine(queries_dir: str | Path, index_dir: str | Path, out_path: str | Path, config: MineConfig | None = None,
         refs: str | Path | None = None, split: str = "train",
         progress: Callable[[int, int], None] | None = None) -> MineSummary:
    """Write ``{query, pos, neg, pos_scores, neg_scores}`` records for every training query."""
    from lextune.index import LexIndex
    from lextune.index.rerank import Reranker

    config = config or MineConfig()
    start = time.perf_counter()
    rng = random.Random(config.seed)
    index = LexIndex.load(index_dir)
    queries, positives, qmeta = load_training_queries(queries_dir, split)
    if not queries:
        raise ConfigError(f"{queries_dir}: no {split} queries with positives")
    dense = index.dense()
    if config.scorer == "dense" and dense is None:
        raise ConfigError("scorer 'dense' needs an index with a dense part (or use scorer: bm25 or reranker)")
    if config.scorer == "bm25" and index.bm25 is None:
        raise ConfigError("scorer 'bm25' needs an index with a BM25 part")
    reranker = Reranker(config.reranker) if config.scorer == "reranker" and config.reranker else None
    if config.scorer == "reranker" and reranker is None:
        raise ConfigError("scorer 'reranker' needs a reranker section (model)")
    parent = article_keys(index.docs)
    siblings: dict[str, set[str]] = {}
    for d, p in parent.items():
        siblings.setdefault(p, set()).add(d)
    links = _neighbours(Path(refs) if refs else Path(index.meta.get("inputs", {}).get("chunks", "")) / "refs.jsonl")
    all_ids = list(index.docs)
    dense_pos = {d: i for i, d in enumerate(dense.ids)} if dense is not None else {}

    def score(qid: str, text: str, ids: list[str], n_pos: int) -> list[float]:
        """The scorer's scores of ``ids`` for one query (the first ``n_pos`` are its positives)."""
        if not ids:
            return []
        if reranker is not None:
            texts = [qmeta[qid].get("positive_text") if i < n_pos and qmeta[qid].get("positive_text")
                     else index.docs[d]["contents"] for i, d in enumerate(ids)]
            return list(reranker.score([(text, x) for x in texts]))
        if config.scorer == "bm25":
            return index.bm25.score_ids(text, ids)
        vecs = np.stack([dense.index.reconstruct(dense_pos[d]) for d in ids])
        return (vecs @ qvec_of[qid]).tolist()

    def keep_below(ids: list[str], scores: dict[str, float], ref: float | None, banned: set[str],
                   floor: float | None = None) -> list[str]:
        """``ids`` by score, without those too close to the best positive (counted, and banned as negatives).
        With a ``floor`` (score_scale pool) scores and ``ref`` are first rescaled so that floor -> 0, ref -> 1."""
        if ref is not None and floor is not None:
            span = ref - floor
            if span <= 0:  # every candidate outscores the positive: nothing is comparable, keep raw scores
                floor = None
            else:
                scores = {c: (scores[c] - floor) / span for c in ids}
                ref = 1.0
        kept = []
        for c in sorted(ids, key=lambda x: -scores[x]):
            s = scores[c]
            if ref is not None and config.max_score_ratio is not None and ref > 0 and s > config.max_score_ratio * ref:
                summary.dropped["scores near the positive (ratio)"] += 1
                banned.add(c)
                continue
            if ref is not None and config.min_margin is not None and s > ref - config.min_margin:
                summary.dropped["scores near the positive (margin)"] += 1
                banned.add(c)
                continue
            kept.append(c)
        return kept

    qvec_of: dict = {}
    timer = "rerank" if reranker is not None else config.scorer  # where scoring time is counted
    asked_random = int(round(config.n_negatives * config.random_ratio))
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    done: set[str] = set()
    summary = MineSummary(queries=len(queries))
    generator_of = {q: qmeta.get(q, {}).get("generator", "unknown") for q in queries}
    if config.max_queries is not None and len(queries) > config.max_queries:
        keep = stratified_sample(list(queries), generator_of, config.max_queries, config.seed)
        summary.sampled_out = len(queries) - len(keep)
        queries = {q: queries[q] for q in keep}
        summary.queries = len(queries)
    if partial.is_file():
        good: list[str] = []
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["query_id"])
                good.append(line)
            except (json.JSONDecodeError, KeyError):
                continue  # a record a crash cut short: mined again
        partial.write_text("".join(f"{line}\n" for line in good), encoding="utf-8")
        summary.resumed = len(done)
    todo = [q for q in queries if q not in done]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "a", encoding="utf-8") as sink:
        for b in range(0, len(todo), config.batch_size):
            batch = {q: queries[q] for q in todo[b : b + config.batch_size]}
            cands: dict[str, set[str]] = {q: set() for q in batch}
            t = time.perf_counter()
            if index.bm25 is not None and config.bm25_depth:
                for q, docs in index.bm25.search(batch, config.bm25_depth).items():
                    cands[q].update(docs)
            summary.seconds["bm25"] += time.perf_counter() - t
            if dense is not None:
                t = time.perf_counter()
                qids = list(batch)
                qvecs = dense.encoder.encode_queries([batch[q] for q in qids])
                if config.dense_depth:
                    for q, docs in dense.search_vectors(qids, qvecs, config.dense_depth).items():
                        cands[q].update(docs)
                qvec_of = dict(zip(qids, qvecs, strict=True))  # this batch's (score() reads it)
                summary.seconds["dense"] += time.perf_counter() - t
            for qid, text in batch.items():
                pos = positives[qid]
                pool = sorted(cands[qid] - set(pos))
                banned = set(pos)  # never a negative, not even a random one
                summary.candidates += len(pool)
                summary.dropped["is a positive"] += len(cands[qid] & set(pos))
                if ignored := set(qmeta.get(qid, {}).get("ignore") or ()):  # the query's own source passage
                    summary.dropped["the query's source"] += sum(1 for c in pool if c in ignored)
                    pool = [c for c in pool if c not in ignored]
                    banned |= ignored
                if config.exclude_siblings:
                    sib = set().union(*(siblings.get(parent.get(p, p), set()) for p in pos)) - set(pos)
                    summary.dropped["sibling of a positive"] += sum(1 for c in pool if c in sib)
                    pool = [c for c in pool if c not in sib]
                    banned |= sib
                if config.exclude_cited:
                    near = set().union(*(links.get(p, set()) | links.get(parent.get(p, p), set()) for p in pos))
                    near |= {d for n in near for d in siblings.get(n, set())}
                    summary.dropped["linked by a reference"] += sum(1 for c in pool if c in near)
                    pool = [c for c in pool if c not in near]
                    banned |= near
                scored_ids = pos + pool
                t = time.perf_counter()
                scores = score(qid, text, scored_ids, len(pos))
                summary.seconds[timer] += time.perf_counter() - t
                pos_scores = scores[: len(pos)]
                cand_scores = dict(zip(pool, scores[len(pos):], strict=True))
                ref = max(pos_scores) if pos_scores else None  # the best positive: what a false negative rivals
                floor = (min(cand_scores.values(), default=None) if config.score_scale == "pool" else None)
                kept = keep_below(pool, cand_scores, ref, banned, floor)
                n_random = asked_random
                n_hard = config.n_negatives - n_random
                if config.selection == "top":
                    hard = kept[config.skip_top : config.skip_top + n_hard]
                else:
                    window = kept[config.range_start : config.range_end] or kept
                    hard = rng.sample(window, min(n_hard, len(window)))
                    hard.sort(key=lambda x: -cand_scores[x])
                kinds = ["hard"] * len(hard)
                if len(hard) < n_hard and config.fill == "deeper" and (dense is not None or index.bm25 is not None):
                    seen = set(cands[qid]) | banned | set(hard)
                    t = time.perf_counter()
                    ranked = (dense.search_vectors([qid], qvec_of[qid][None, :], config.fill_depth)[qid]
                              if dense is not None else index.bm25.search({qid: text}, config.fill_depth)[qid])
                    summary.seconds["dense" if dense is not None else "bm25"] += time.perf_counter() - t
                    deeper = [d for d in ranked if d not in seen]
                    if deeper:
                        t = time.perf_counter()
                        deeper_scores = dict(zip(deeper, score(qid, text, deeper, 0), strict=True))
                        summary.seconds[timer] += time.perf_counter() - t
                        cand_scores.update(deeper_scores)
                        extra = keep_below(deeper, deeper_scores, ref, banned, floor)[: n_hard - len(hard)]
                        if extra:
                            summary.filled["deeper"] += 1
                        hard += extra
                        kinds += ["deeper"] * len(extra)
                if config.fill != "none":
                    n_random += n_hard - len(hard)  # never a query without negatives
                exclude = banned | set(hard)
                rand: list[str] = []
                while len(rand) < n_random and len(exclude) < len(all_ids):
                    c = rng.choice(all_ids)
                    if c not in exclude:
                        rand.append(c)
                        exclude.add(c)
                if len(rand) > asked_random:
                    summary.filled["random"] += 1
                negs = hard + rand
                summary.hard_negatives.setdefault(generator_of[qid], Counter())[len(hard)] += 1
                if not negs:
                    summary.skipped_no_negative += 1
                    continue
                neg_scores = [cand_scores.get(c) for c in hard] + [None] * len(rand)
                rec = {"query_id": qid, "query": text, "pos": pos, "neg": negs,
                       "pos_scores": [float(s) for s in pos_scores],
                       "neg_scores": [None if s is None else float(s) for s in neg_scores],
                       "neg_kinds": kinds + ["random"] * len(rand)}
                if qmeta[qid].get("positive_text"):
                    rec["pos_text"] = qmeta[qid]["positive_text"]
                sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
                summary.records += 1
                summary.pos_scores.extend(rec["pos_scores"])
                summary.neg_scores.extend(s for s in rec["neg_scores"] if s is not None)
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
