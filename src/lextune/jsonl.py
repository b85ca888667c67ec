"""Reading and writing JSONL with errors that name the file, the line and the field."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from lextune.artifacts import atomic_file
from lextune.errors import InputFormatError

M = TypeVar("M", bound=BaseModel)


@dataclass
class ReadReport:
    """What a tolerant read skipped, and why."""

    read: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def skip(self, error: InputFormatError) -> None:
        self.skipped += 1
        key = str(error).split(": ", 1)[-1].split(" (")[0][:80]
        self.reasons[key] = self.reasons.get(key, 0) + 1
        if len(self.examples) < 5:
            self.examples.append(str(error))


def iter_jsonl(path: str | Path, *, skip_bad: bool = False,
               report: ReadReport | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; bad lines raise or are counted."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError("no such file", path=str(path))
    report = report if report is not None else ReadReport()
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb"))
        lines = stack.enter_context(gzip.open(raw)) if path.suffix == ".gz" else raw
        for lineno, line in enumerate(lines, start=1):
            try:
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputFormatError(f"invalid UTF-8 at byte {exc.start}", path=str(path), line=lineno) from exc
                if not text.strip():
                    continue
                try:
                    # Without its line break: an error at the end of the line is at its last column, not
                    # "column 1" of the next line.
                    obj = json.loads(text.rstrip("\r\n"))
                except json.JSONDecodeError as exc:
                    raise InputFormatError(f"not valid JSON ({exc.msg}, column {exc.colno})",
                                           path=str(path), line=lineno) from exc
                if not isinstance(obj, dict):
                    raise InputFormatError(f"expected a JSON object, got {type(obj).__name__}",
                                           path=str(path), line=lineno)
            except InputFormatError as err:
                if not skip_bad:
                    raise
                report.skip(err)
                continue
            report.read += 1
            yield lineno, obj


def iter_records(path: str | Path, model: type[M], *, skip_bad: bool = False,
                 report: ReadReport | None = None) -> Iterator[tuple[int, M]]:
    """``(line_number, record)`` for each line, validated as ``model``; a line that does not fit raises (or is
    counted) with the file, the line and the first offending field named."""
    from pydantic import ValidationError

    report = report if report is not None else ReadReport()
    for lineno, obj in iter_jsonl(path, skip_bad=skip_bad, report=report):
        try:
            yield lineno, model.model_validate(obj)
        except ValidationError as exc:
            first = exc.errors()[0]
            err = InputFormatError(first["msg"], path=str(path), line=lineno,
                                   field=".".join(str(x) for x in first["loc"]) or None)
            if not skip_bad:
                raise err from None
            report.read -= 1
            report.skip(err)


def require_str(obj: dict[str, Any], key: str, *, path: str, line: int, allow_number: bool = False) -> str:
    """``obj[key]`` as a string, or an InputFormatError naming file, line and field."""
    if key not in obj:
        raise InputFormatError("missing field", path=path, line=line, field=key)
    value = obj[key]
    if isinstance(value, str):
        return value
    if allow_number and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InputFormatError(f"expected a string, got {type(value).__name__}", path=path, line=line, field=key)


def write_jsonl_atomic(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records to ``path`` through a temporary file and a rename; returns the count."""
    n = 0
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n
