"""Artifact folders: atomic writes, ``meta.json`` and content hashes.

Every stage writes its output folder through :func:`atomic_dir`, so a crash leaves either the old
folder or a whole new one, never a half-written folder that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lextune.errors import OutputError

META_FILE = "meta.json"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_sha1(text: str) -> str:
    """Short, stable hash of a string (cache keys)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` (mode 0644)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is an existing folder: name a file for this output")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc} (in {path.parent})") from exc
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def summary_dict(obj: Any) -> dict[str, Any]:
    """A stage summary dataclass as plain JSON-ready data (Counters become dicts)."""
    from collections import Counter

    return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in vars(obj).items()}


def make_meta(kind: str, config: dict[str, Any] | None = None,
              inputs: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The standard ``meta.json`` body: type, lextune version, config, input hashes."""
    from lextune import __version__

    meta: dict[str, Any] = {
        "type": kind,
        "lextune_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config or {},
        "inputs": inputs or {},
    }
    meta.update(extra)
    return meta


def read_meta(folder: str | Path) -> dict[str, Any] | None:
    """``meta.json`` of an artifact folder, or None when there is none."""
    p = Path(folder) / META_FILE
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


@contextlib.contextmanager
def atomic_dir(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success rename it into place.

    If ``target`` exists and ``overwrite`` is False, the new folder is discarded (someone else won the
    race and produced the same artifact). On an exception the temporary folder is removed.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} is an existing file, not a folder: name a new or existing folder for the "
                          "output (lextune does not replace a file with a folder)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise OutputError(f"cannot write the output folder {target}: {exc.strerror or exc} "
                          f"(in {target.parent})") from exc
    os.chmod(tmp, 0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
