"""Court decisions as queries: each numbered 판시사항 (``precedents``) or 판결요지 (``holdings``) item is a
query for the provisions its 참조조문 group cites, resolved to chunks of the run's own corpus.

A decision's items (``[1] … <br/>[2] …`` or ``〔1〕 …``) align with the 참조조문 groups that carry their
label (``[1][2]`` belongs to both); an unlabelled group aligns with a single unlabelled item. Citations are
parsed and resolved by ingest's reference resolver (:func:`lextune.ingest.refs.parse_reference_groups`,
:class:`lextune.ingest.refs.RefIndex`); what cannot be resolved is dropped and counted by reason, and an
item with no resolved citation is no query.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lextune.errors import InputFormatError
from lextune.ingest.documents import strip_html
from lextune.ingest.refs import Citation, CitationGroup, RefIndex, parse_reference_groups
from lextune.jsonl import ReadReport, iter_jsonl
from lextune.schema import Chunk, SynthQuery

log = logging.getLogger(__name__)

FIELDS = {"precedents": "판시사항", "holdings": "판결요지"}
_TEXT_FIELDS = ("판시사항", "판결요지", "참조조문", "사건번호", "사건명", "법원명", "판결유형")
_LABEL_RUN = re.compile(r"(?:[\[〔]\s*\d{1,3}\s*[\]〕]\s*)+")
_NUM = re.compile(r"\d+")
_VERDICT = re.compile(r"\(\s*(?:원칙적|예외적|한정|일부)?\s*(?:적극|소극)\s*\)")
_EQUALS = re.compile(r"\(\s*=[^()]*\)")
_WHETHER = re.compile(r"(\S)지\s*여부\s*[.?]?$")
_CASE = re.compile(r"사례\s*[.]?$")
DROP_REASONS = ("law not in corpus", "article missing", "paragraph missing", "부칙", "unparsable")


@dataclass
class PrecedentStats:
    """What one generator read, resolved and dropped."""

    decisions: int = 0
    items: int = 0
    queries: int = 0
    citations: int = 0
    resolved: int = 0
    resolved_old: int = 0
    via_current_note: int = 0
    via_rename: int = 0
    pairs: int = 0
    dropped: Counter = field(default_factory=Counter)
    missing_laws: Counter = field(default_factory=Counter)
    items_unaligned: int = 0
    items_unresolved: int = 0
    bad_records: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"decisions": self.decisions, "items": self.items, "queries": self.queries,
                "citations": self.citations, "resolved": self.resolved, "resolved_old": self.resolved_old,
                "via_current_note": self.via_current_note, "via_rename": self.via_rename, "item_passage_pairs": self.pairs,
                "dropped": {r: self.dropped.get(r, 0) for r in DROP_REASONS},
                "missing_laws_top": dict(self.missing_laws.most_common(20)),
                "items_unaligned": self.items_unaligned, "items_without_resolved_citation": self.items_unresolved,
                "bad_records": self.bad_records, "bad_examples": self.bad_examples}


def split_items(text: str) -> list[tuple[list[int], str]]:
    """``[1] … <br/>[2] …`` -> [([1], '…'), ([2], '…')]; text without labels is one item with no label.
    A label run counts where it starts the text or a line, or continues the numbering after a space."""
    text = strip_html(text)
    cuts: list[tuple[int, int, list[int]]] = []
    last = 0
    for m in _LABEL_RUN.finditer(text):
        labels = [int(n) for n in _NUM.findall(m.group(0))]
        before = text[:m.start()].rstrip(" \t")
        continues = (labels[0] == last + 1 and text[m.start() - 1:m.start()].isspace()
                     and text[m.end() - 1:m.end()].isspace())
        if not before or before.endswith("\n") or continues:
            cuts.append((m.start(), m.end(), labels))
            last = max(labels)
    if not cuts:
        return [([], text.strip())] if text.strip() else []
    items = []
    for i, (_, end, labels) in enumerate(cuts):
        stop = cuts[i + 1][0] if i + 1 < len(cuts) else len(text)
        body = text[end:stop].strip()
        if body:
            items.append((labels, body))
    return items


def item_question(text: str) -> str:
    """An item cleaned into a query: verdict marks ``(적극)``/``(소극)`` and answers ``(=…)`` removed, labels and
    breaks gone, and a final ``…인지 여부``/``…는지 여부`` asked as a question (``…인가?``/``…는가?``)."""
    t = _LABEL_RUN.sub(" ", strip_html(text))
    t = _EQUALS.sub("", _VERDICT.sub("", t))
    t = re.sub(r"\s+", " ", t).strip()
    return _WHETHER.sub(r"\1가?", t)


def align(items: list[tuple[list[int], str]], groups: list[CitationGroup]) -> list[list[Citation]]:
    """The citations of each item: the groups that carry one of its labels; an unlabelled group goes with a
    single unlabelled item."""
    out: list[list[Citation]] = []
    for labels, _ in items:
        if labels:
            cites = [c for g in groups if set(g.labels) & set(labels) for c in g.citations]
        elif len(items) == 1:
            cites = [c for g in groups if not g.labels for c in g.citations]
        else:
            cites = []
        out.append(cites)
    return out


def resolve_citation(c: Citation, index: RefIndex) -> tuple[list[str], str | None, str]:
    """(chunk ids, drop reason, how) for one citation against the corpus; how is 'current note' (resolved
    through a 현행 note), 'rename' (through a former law name), or 'name'."""
    if c.addendum:
        return [], "부칙", ""
    tries = [(c.current, "current note")] if c.current is not None and c.current.law else []
    tries.append((c, ""))
    reason = "unparsable"
    for cite, via in tries:
        if cite.law is None:
            continue
        doc, how = index.lookup(cite.law)
        if doc is None and cite.old and cite.law.startswith("구"):
            doc, how = index.lookup(cite.law[1:])
        if doc is None:
            reason = "law not in corpus" if reason == "unparsable" else reason
            continue
        ids, why = index.provision(doc, cite.article, cite.paragraph, cite.item)
        if ids:
            return ids, None, via or ("rename" if how == "rename" else "name")
        reason = why or reason
    return [], reason, ""


def _check_record(obj: dict, where: str) -> None:
    for key in _TEXT_FIELDS:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise InputFormatError(f"expected text, got {type(value).__name__}", path=where, field=key)


def precedent_files(paths: list[str | Path]) -> list[Path]:
    """The files named, and the precedent files inside the folders named."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(x for x in p.rglob("*") if x.is_file() and x.name.lower().endswith(
                (".json", ".jsonl", ".json.gz", ".jsonl.gz"))))
        elif p.is_file():
            files.append(p)
        else:
            raise InputFormatError("no such file or folder", path=str(p))
    return files


def read_precedent_records(paths: list[str | Path], report: ReadReport | None = None) -> Iterator[tuple[str, dict]]:
    """(where, decision) from law.go.kr precedent JSON (one object, a list, or a ``PrecService`` wrapper),
    JSONL, either gzipped, or a folder of them. A malformed line is reported with file and line and skipped."""
    report = report if report is not None else ReadReport()
    for path in precedent_files(paths):
        name = path.name.lower()
        if name.endswith((".jsonl", ".jsonl.gz")):
            for lineno, obj in iter_jsonl(path, skip_bad=True, report=report):
                yield f"{path}:{lineno}", obj
        elif name.endswith((".json", ".json.gz")):
            try:
                raw = path.read_bytes()
                data = json.loads(gzip.decompress(raw) if name.endswith(".gz") else raw)
            except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError and bad gzip are ValueErrors
                report.skip(InputFormatError(f"not readable as JSON ({exc})", path=str(path)))
                continue
            records = data if isinstance(data, list) else [data]
            for i, obj in enumerate(records):
                obj = obj.get("PrecService", obj) if isinstance(obj, dict) else obj
                if not isinstance(obj, dict):
                    report.skip(InputFormatError(f"expected a JSON object, got {type(obj).__name__}",
                                                 path=f"{path}[{i}]"))
                    continue
                report.read += 1
                yield (f"{path}[{i}]" if isinstance(data, list) else str(path)), obj
        else:
            raise InputFormatError("expected a precedent .json, .jsonl or .jsonl.gz file", path=str(path))


def _date(value: Any) -> str | None:
    s = str(value or "").strip()
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if re.fullmatch(r"\d{8}", s) else (s or None)


def precedent_item_queries(chunks: list[Chunk], kind: str, files: list[str | Path],
                           stats: PrecedentStats | None = None) -> Iterator[SynthQuery]:
    """One query per aligned 판시사항 (kind ``precedents``) or 판결요지 (``holdings``) item with at least one
    citation that resolves into ``chunks``; positives are every chunk the item's citations resolve to."""
    if kind not in FIELDS:
        raise ValueError(f"kind must be one of {sorted(FIELDS)}")
    stats = stats if stats is not None else PrecedentStats()
    index = RefIndex(chunks)
    report = ReadReport()
    for where, obj in read_precedent_records(files, report):
        try:
            _check_record(obj, where)
        except InputFormatError as err:
            report.skip(err)
            continue
        text = obj.get(FIELDS[kind]) or ""
        refs = obj.get("참조조문") or ""
        if not text.strip() or not refs.strip():
            continue
        pid = str(obj.get("판례일련번호") or obj.get("사건번호") or "").strip()
        if not pid:
            report.skip(InputFormatError("no 판례일련번호 or 사건번호", path=where, field="판례일련번호"))
            continue
        stats.decisions += 1
        items = split_items(text)
        groups = parse_reference_groups(refs)
        doc_id = f"prec{pid}"
        own = [cid for cid in (f"{doc_id}:issues", f"{doc_id}:holding") if cid in index.ids]
        for n, ((labels, body), cites) in enumerate(zip(items, align(items, groups), strict=True), start=1):
            stats.items += 1
            if not cites:
                stats.items_unaligned += 1
                continue
            positives: list[str] = []
            old = renamed = False
            for c in cites:
                stats.citations += 1
                ids, reason, how = resolve_citation(c, index)
                if reason:
                    stats.dropped[reason] += 1
                    if reason == "law not in corpus":
                        stats.missing_laws[c.law] += 1
                    continue
                stats.resolved += 1
                stats.resolved_old += c.old
                stats.via_current_note += how == "current note"
                stats.via_rename += how == "rename"
                renamed = renamed or how == "rename"
                old = old or c.old
                positives.extend(i for i in ids if i not in positives)
            if not positives:
                stats.items_unresolved += 1
                continue
            stats.queries += 1
            stats.pairs += len(positives)
            cleaned = item_question(body)
            label = "-".join(map(str, labels)) if labels else str(n)
            meta = {"case_no": obj.get("사건번호"), "court": obj.get("법원명"), "date": _date(obj.get("선고일자")),
                    "case_name": (obj.get("사건명") or "").strip() or None, "kind": kind, "item": label,
                    "old_version": old, "former_law_name": renamed, "case_specific": bool(_CASE.search(cleaned)),
                    "citations": [c.text for c in cites]}
            yield SynthQuery(f"{kind}:{pid}:{label}", cleaned, positives, kind, "1", doc_id, meta, own)
    stats.bad_records = report.skipped
    stats.bad_examples = report.examples
    for example in report.examples:
        log.warning("skipped: %s", example)
    if report.skipped > len(report.examples):
        log.warning("skipped %d precedent records in all", report.skipped)
