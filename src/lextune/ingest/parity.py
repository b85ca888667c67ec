"""Agreement of two readers of the same statutes: law.go.kr JSON versus legalize-kr Markdown."""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from lextune.ingest.lawgo import load_json, parse_law_json
from lextune.ingest.markdown_law import parse_law_markdown
from lextune.ingest.structure import ChunkOptions, law_chunks

_ID_RE = re.compile(r"법령ID:\s*'?(\d+)'?")


def _norm(text: str) -> str:
    """Whitespace and list-marker normalisation used for the comparison."""
    return re.sub(r"\s+", "", text)


@dataclass
class LawParity:
    law: str
    doc_id: str
    json_date: str | None
    md_date: str | None
    units: int
    same: int

    @property
    def same_version(self) -> bool:
        return self.json_date == self.md_date


@dataclass
class ParityResult:
    laws: list[LawParity] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def share(self, *, same_version_only: bool) -> float:
        rows = [r for r in self.laws if r.same_version or not same_version_only]
        units = sum(r.units for r in rows)
        return sum(r.same for r in rows) / units if units else 0.0


def markdown_by_law_id(source: str | Path) -> dict[str, str]:
    """Markdown texts by 법령ID, from a legalize-kr folder or its .tar.gz."""
    source = Path(source)
    out: dict[str, str] = {}
    if source.is_dir():
        items = ((str(p), p.read_text(encoding="utf-8")) for p in sorted(source.rglob("*.md")))
    else:
        def from_tar():
            with tarfile.open(source) as tar:
                for m in tar:
                    if m.isfile() and m.name.endswith(".md"):
                        yield m.name, tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
        items = from_tar()
    for _name, text in items:
        m = _ID_RE.search(text[:1000])
        if m:
            out.setdefault(m.group(1), text)
    return out


def json_markdown_parity(json_dir: str | Path, markdown_source: str | Path, unit: str = "paragraph") -> ParityResult:
    """Compare the article/paragraph units of each JSON statute with its Markdown twin (matched by 법령ID)."""
    md = markdown_by_law_id(markdown_source)
    opts = ChunkOptions(unit=unit, prepend_title=False)  # type: ignore[arg-type]
    result = ParityResult()
    for path in sorted(Path(json_dir).glob("*.json")):
        j = parse_law_json(load_json(path), str(path))
        if j.doc_id not in md:
            result.missing.append(j.name)
            continue
        m = parse_law_markdown(md[j.doc_id], j.doc_id)
        a = {c.id: _norm(c.text) for c in law_chunks(j, opts)}
        b = {c.id: _norm(c.text) for c in law_chunks(m, opts)}
        keys = set(a) | set(b)
        result.laws.append(LawParity(j.name, j.doc_id, j.effective_date, m.effective_date, len(keys),
                                     sum(a.get(k) == b.get(k) for k in keys)))
    return result
