"""``synth``: chunks in, synthetic queries out as a BEIR dataset split by source document.

Output folder: ``corpus.jsonl`` (the chunks), ``queries.jsonl`` (with generator, version and source),
``qrels/train.tsv`` and ``qrels/dev.tsv`` (no law on both sides), ``meta.json`` and ``config.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lextune.artifacts import atomic_dir, file_sha256, make_meta, summary_dict, write_json_atomic
from lextune.config import save_config
from lextune.errors import ConfigError
from lextune.schema import SynthQuery
from lextune.synth.filters import FilterStats, filter_queries
from lextune.synth.generators import GENERATORS, WHOLE_CORPUS
from lextune.synth.llm import LLMConfig

Generator = Literal["llm", "title", "ict", "question", "refs", "precedents", "holdings"]


class SynthConfig(BaseModel):
    """Which generators, how many chunks, which filters, how to split."""

    model_config = ConfigDict(extra="forbid")

    generators: list[Generator] = Field(default_factory=lambda: ["title", "ict", "refs"])
    llm: LLMConfig | None = None
    precedents: list[str] = Field(default_factory=list, description=(
        "Court decisions (law.go.kr precedent JSON/JSONL, gzip too, or folders) for the precedents and holdings "
        "generators: their 판시사항/판결요지 items become queries for the provisions they cite."))
    max_chunks: int | None = Field(None, description="Sample this many chunks (all when None).")
    seed: int = 13
    ict_remove_prob: float = 0.9
    min_chars: int = 8
    max_chars: int = 300
    near_duplicate: float = 0.8
    max_copy_ratio: float = 0.95
    round_trip: bool = False
    round_trip_k: int = 20
    dev_fraction: float = Field(0.1, ge=0.0, lt=1.0)


@dataclass
class SynthSummary:
    chunks: int = 0
    generated: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    filters: FilterStats = field(default_factory=FilterStats)
    train_queries: int = 0
    dev_queries: int = 0
    train_docs: int = 0
    dev_docs: int = 0
    llm: dict | None = None
    precedents: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = summary_dict(self)
        d["filters"] = asdict(self.filters)
        return d


def split_documents(doc_ids: list[str], dev_fraction: float, seed: int) -> set[str]:
    """Documents (laws) that go to dev: a stable hash order, at least one when there are two or more."""
    docs = sorted(set(doc_ids), key=lambda d: hashlib.sha1(f"{seed}:{d}".encode()).hexdigest())
    if dev_fraction <= 0 or len(docs) < 2:
        return set()
    n = max(1, round(len(docs) * dev_fraction))
    return set(docs[:n])


def _round_trip(chunks, k: int):
    from lextune.index.bm25 import BM25Index

    index = BM25Index().build([c.id for c in chunks], [c.contents for c in chunks])

    def check(queries: list[SynthQuery]) -> list[bool]:
        run = index.search({q.id: q.text for q in queries}, k)
        return [any(p in run.get(q.id, {}) for p in q.positives) for q in queries]

    return check


def _generate(config: SynthConfig, all_chunks: list, pool: list, edges: list, rng: random.Random,
              summary: SynthSummary, out_dir: Path,
              progress: Callable[[str, int, int], None] | None) -> tuple[list[SynthQuery], object | None]:
    """Every configured generator's queries (counted per generator), and the LLM generator if one ran."""
    queries: list[SynthQuery] = []
    llm_gen = None
    for name in config.generators:
        if name == "llm":
            if config.llm is None:
                raise ConfigError("generator 'llm' needs an llm section (base_url, model, api_key_env)")
            from lextune.synth.llm import LLMQueryGenerator, check_config

            check_config(config.llm)
            out_cache = out_dir.parent / f".{out_dir.name}.llm-cache.jsonl"
            llm_gen = LLMQueryGenerator(config.llm, cache_path=out_cache)
            made = llm_gen.generate(pool, progress=(lambda d, t: progress("llm", d, t)) if progress else None)
        else:
            # An article's title or a cited provision has positives outside a sampled pool too.
            whole = name in WHOLE_CORPUS
            made = list(GENERATORS[name](all_chunks if whole else pool, rng, edges=edges,
                                         remove_prob=config.ict_remove_prob, precedents=config.precedents,
                                         report=summary.precedents))
            if whole:
                wanted = {c.id for c in pool}
                made = [q for q in made if any(p in wanted for p in q.positives)]
        summary.generated[name] += len(made)
        queries.extend(made)
    return queries, llm_gen


def _write_beir(folder: Path, all_chunks: list, kept: list[SynthQuery], dev_docs: set[str],
                splits: dict[str, list[SynthQuery]]) -> None:
    """corpus.jsonl, queries.jsonl (with generator, split, metadata) and qrels/<split>.tsv into ``folder``."""
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for c in all_chunks:
            f.write(json.dumps({"_id": c.id, "title": c.title, "text": c.text}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in kept:
            f.write(json.dumps({"_id": q.id, "text": q.text, "generator": q.generator, "version": q.version,
                                "source_doc": q.source_doc, "positives": q.positives,
                                "split": "dev" if q.source_doc in dev_docs else "train",
                                "metadata": q.metadata, **({"ignore": q.ignore} if q.ignore else {})},
                               ensure_ascii=False) + "\n")
    (folder / "qrels").mkdir()
    for split, rows in splits.items():
        with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for q in rows:
                for p in q.positives:
                    f.write(f"{q.id}\t{p}\t1\n")


def synth(chunks_dir: str | Path, out_dir: str | Path, config: SynthConfig | None = None,
          progress: Callable[[str, int, int], None] | None = None) -> SynthSummary:
    """Generate, filter and split synthetic queries for the chunks of an ingest folder."""
    from lextune.ingest import read_chunks

    config = config or SynthConfig()
    start = time.perf_counter()
    chunks_path = Path(chunks_dir) / "chunks.jsonl" if Path(chunks_dir).is_dir() else Path(chunks_dir)
    all_chunks = read_chunks(chunks_path)
    rng = random.Random(config.seed)
    pool = [c for c in all_chunks if c.kind not in ("addendum", "appendix")]
    if config.max_chunks and len(pool) > config.max_chunks:
        pool = rng.sample(pool, config.max_chunks)
        pool.sort(key=lambda c: c.id)
    summary = SynthSummary(chunks=len(pool))
    edges = []
    refs_path = chunks_path.parent / "refs.jsonl"
    if "refs" in config.generators and refs_path.is_file():
        from lextune.schema import RefEdge

        edges = [RefEdge.model_validate_json(line) for line in refs_path.read_text(encoding="utf-8").splitlines() if line]
    wants_precedents = {"precedents", "holdings"} & set(config.generators)
    if wants_precedents and not config.precedents:
        raise ConfigError(f"generator {sorted(wants_precedents)[0]!r} needs court decisions: "
                          "--precedents FILE (or synth.precedents: [...] in YAML)")
    queries, llm_gen = _generate(config, all_chunks, pool, edges, rng, summary, Path(out_dir), progress)
    passages = {c.id: c.contents for c in all_chunks}
    checker = _round_trip(all_chunks, config.round_trip_k) if config.round_trip else None
    kept, stats = filter_queries(queries, passages, min_chars=config.min_chars, max_chars=config.max_chars,
                                 near_duplicate=config.near_duplicate, max_copy_ratio=config.max_copy_ratio,
                                 round_trip=checker)
    summary.filters = stats
    for q in kept:
        summary.kept[q.generator] += 1
    dev_docs = split_documents([q.source_doc for q in kept], config.dev_fraction, config.seed)
    train = [q for q in kept if q.source_doc not in dev_docs]
    dev = [q for q in kept if q.source_doc in dev_docs]
    summary.train_queries, summary.dev_queries = len(train), len(dev)
    summary.train_docs = len({q.source_doc for q in train})
    summary.dev_docs = len(dev_docs)
    if llm_gen is not None:
        summary.llm = {**asdict(llm_gen.stats), "cost": llm_gen.stats.cost(config.llm)}  # type: ignore[arg-type]
        llm_gen.close()
    with atomic_dir(out_dir, overwrite=True) as tmp:
        _write_beir(tmp, all_chunks, kept, dev_docs, {"train": train, "dev": dev})
        save_config(config, tmp / "config.yaml")
        summary.seconds = time.perf_counter() - start
        inputs = {str(chunks_path): file_sha256(chunks_path)}
        if wants_precedents:
            from lextune.synth.precedents import precedent_files

            inputs.update({str(f): file_sha256(f) for f in precedent_files(config.precedents)})
        write_json_atomic(tmp / "meta.json", make_meta("queries", config=config.model_dump(mode="json"),
                                                       inputs=inputs,
                                                       summary=summary.to_dict()))
    return summary
