"""Rankings and judgements on disk: TREC run files, BEIR datasets (corpus, queries, qrels).

A run is ``{query_id: {doc_id: score}}``; qrels are ``{query_id: {doc_id: relevance}}`` - the dict shapes
that ranx and pytrec_eval take.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from lextune.artifacts import atomic_file
from lextune.errors import InputFormatError
from lextune.jsonl import iter_jsonl, require_str

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


def canonical_ranking(docs: dict[str, float]) -> dict[str, float]:
    """Documents by descending score, ties broken by document id: evaluation does not depend on the
    order a run happened to be built in."""
    return dict(sorted(docs.items(), key=lambda kv: (-kv[1], kv[0])))


def write_trec_run(run: Run, path: str | Path, tag: str = "lextune") -> None:
    """``qid Q0 docid rank score tag`` lines, ranks from 1 by descending score."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
            for rank, (doc, score) in enumerate(ranked, start=1):
                f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")


def _text_lines(path: str | Path):
    """``(line number, line)`` of a UTF-8 text file; a missing, unreadable or non-UTF-8 file is an
    InputFormatError naming the path (and the line that is not UTF-8)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below; only opening becomes a message here
    except OSError as exc:
        raise InputFormatError(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from exc
    lineno = 0
    with f:
        for chunk in f:  # streamed; splitlines() also ends a line at a lone "\r", as text mode did
            for line in chunk.splitlines():
                lineno += 1
                try:
                    yield lineno, line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputFormatError(f"not UTF-8 text (byte {exc.start + 1})", path=str(path),
                                           line=lineno) from exc


def read_trec_run(path: str | Path, stats: dict[str, int] | None = None) -> Run:
    """Read a TREC run file; a malformed line names the file and line. A document listed twice for a
    query keeps its first score; ``stats["duplicates"]`` counts such lines."""
    run: Run = {}
    if stats is not None:
        stats.setdefault("duplicates", 0)
    for lineno, line in _text_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 6:
            raise InputFormatError("expected 'qid Q0 docid rank score tag'", path=str(path), line=lineno)
        try:
            score = float(parts[4])
        except ValueError as exc:
            raise InputFormatError(f"score {parts[4]!r} is not a number", path=str(path), line=lineno) from exc
        if not math.isfinite(score):
            raise InputFormatError(f"score {parts[4]!r} is not a finite number", path=str(path), line=lineno)
        docs = run.setdefault(parts[0], {})
        if parts[2] in docs:
            if stats is not None:
                stats["duplicates"] += 1
            continue
        docs[parts[2]] = score
    return run


def read_qrels(path: str | Path) -> Qrels:
    """BEIR qrels TSV (``query-id corpus-id score`` with a header) or TREC qrels (``qid 0 docid rel``).
    Relevance is a non-negative integer (graded labels: 0, 1, 2, ...); anything else (``0.7``, ``-1``,
    ``inf``) is refused with its file and line instead of being truncated."""
    qrels: Qrels = {}
    for lineno, line in _text_lines(path):
        row = next(csv.reader([line], delimiter="\t"), [])
        if len(row) == 1:
            row = row[0].split()
        if not row or (lineno == 1 and row[0] in {"query-id", "query_id", "qid"}):
            continue
        if len(row) == 4:
            qid, _, doc, rel = row
        elif len(row) == 3:
            qid, doc, rel = row
        else:
            raise InputFormatError("expected 'query-id corpus-id score'", path=str(path), line=lineno)
        if not re.fullmatch(r"\+?[0-9]+(\.0*)?", rel.strip()):  # 2 and 2.0; not 0.7, -1, inf
            raise InputFormatError(f"relevance {rel!r} is not a non-negative integer (graded labels are 0, 1, 2, ...)",
                                   path=str(path), line=lineno, field="score")
        qrels.setdefault(qid, {})[doc] = int(rel.strip().split(".")[0])
    return qrels


@dataclass
class BeirDataset:
    """A BEIR folder: corpus.jsonl (_id, title, text), queries.jsonl (_id, text), qrels/<split>.tsv."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: Qrels
    path: Path
    query_info: dict[str, dict] | None = None  # extra fields of queries.jsonl (e.g. lextune's "generator")

    def ignored(self) -> dict[str, set[str]]:
        """Per query, the documents its ranking does not count (queries.jsonl field ``ignore``): a synthetic
        query's own source passage, which contains the query's text but is not the answer. BEIR does the
        same for a document that has the query's id."""
        return {q: set(v["ignore"]) for q, v in (self.query_info or {}).items() if v.get("ignore")}

    def generators(self) -> dict[str, str]:
        """Query id -> lextune's synthetic generator (queries.jsonl field ``generator``), where given."""
        return {q: str(v["generator"]) for q, v in (self.query_info or {}).items() if v.get("generator")}


def query_ignore(obj: dict, *, path: str, line: int) -> list[str]:
    """A queries.jsonl record's ``ignore`` field (document ids; [] when absent), checked."""
    ignore = obj.get("ignore")
    if ignore is None:
        return []
    if not (isinstance(ignore, list) and all(isinstance(d, str) for d in ignore)):
        raise InputFormatError("must be a list of document ids", path=path, line=line, field="ignore")
    return ignore


def drop_ignored(run: Run, ignore: dict[str, set[str]]) -> Run:
    """``run`` without each query's ignored documents (see :meth:`BeirDataset.ignored`)."""
    if not ignore:
        return run
    return {q: {d: s for d, s in docs.items() if d not in ignore[q]} if q in ignore else docs for q, docs in run.items()}


def load_beir(folder: str | Path, *, queries_file: str = "queries.jsonl", split: str = "dev") -> BeirDataset:
    folder = Path(folder)
    corpus: dict[str, dict[str, str]] = {}
    for lineno, obj in iter_jsonl(folder / "corpus.jsonl"):
        cid = require_str(obj, "_id", path=str(folder / "corpus.jsonl"), line=lineno, allow_number=True)
        corpus[cid] = {"title": obj.get("title") or "", "text": obj.get("text") or ""}
    queries: dict[str, str] = {}
    info: dict[str, dict] = {}
    qpath = folder / queries_file
    for lineno, obj in iter_jsonl(qpath):
        qid = require_str(obj, "_id", path=str(qpath), line=lineno, allow_number=True)
        queries[qid] = require_str(obj, "text", path=str(qpath), line=lineno)
        extra = {k: v for k, v in obj.items() if k not in {"_id", "text"}}
        query_ignore(obj, path=str(qpath), line=lineno)
        if extra:
            info[qid] = extra
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrels = read_qrels(qrels_path) if qrels_path.is_file() else {}
    return BeirDataset(corpus, queries, qrels, folder, info)
