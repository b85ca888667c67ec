"""One resolver for every place that takes a model spec.

A spec is ``bundled:multilingual-e5-small`` (or a shipped fine-tune of it, ``bundled:lextune-legal-ko-small``), a local Hugging Face or sentence-transformers folder, a
PEFT adapter folder (its base is resolved in turn), or a Hugging Face hub id.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from lextune.errors import ModelNotFoundError
from lextune.models.bundled import BUNDLED_NAME, bundled_model_dir
from lextune.models.shipped import LEGAL_NAME, shipped_model_dir

# ``bundled:<name>``: the converted base, and fine-tunes of it shipped as deltas (models/shipped.py).
BUNDLED = {BUNDLED_NAME: bundled_model_dir, LEGAL_NAME: lambda force=False: shipped_model_dir(LEGAL_NAME, force=force)}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a spec's weights are. ``path`` is a local folder or a hub id; ``adapter`` a PEFT folder."""

    spec: str
    kind: str  # "bundled" | "sentence-transformers" | "hf" | "adapter" | "hub"
    path: str
    adapter: str | None = None
    base: ResolvedModel | None = None

    @property
    def load_path(self) -> str:
        """The folder (or hub id) that holds the base weights."""
        return self.base.load_path if self.base else self.path


def _alternatives() -> str:
    return (
        f"use `bundled:{BUNDLED_NAME}` or `bundled:{LEGAL_NAME}` (offline, ship with lextune), a local model folder, "
        "or a PEFT adapter folder"
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_cached(repo_id: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not in the local cache"
        return None


def bundled_dir(name: str, *, force: bool = False) -> Path:
    """The cache folder of ``bundled:<name>``, converted or rebuilt on first use (or when ``force``)."""
    if name not in BUNDLED:
        raise ModelNotFoundError(f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLED)}")
    return BUNDLED[name](force=force)


def resolve_model(spec: str | os.PathLike) -> ResolvedModel:
    """Resolve ``spec`` to local weights, converting the bundled model on first use."""
    spec = str(spec)
    if spec.startswith("bundled:"):
        return ResolvedModel(spec, "bundled", str(bundled_dir(spec.split(":", 1)[1])))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"{path} is a file; a model is a folder ({_alternatives()})")
        if (path / "adapter_config.json").is_file():
            cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
            base_spec = cfg.get("base_model_name_or_path")
            if not base_spec:
                raise ModelNotFoundError(f"{path}/adapter_config.json names no base_model_name_or_path")
            lextune_cfg = path / "lextune_model.json"
            if lextune_cfg.is_file():  # adapters trained by lextune remember the spec of their base
                base_spec = json.loads(lextune_cfg.read_text(encoding="utf-8")).get("base_spec", base_spec)
            base = resolve_model(base_spec)
            return ResolvedModel(spec, "adapter", str(path), adapter=str(path), base=base)
        if (path / "modules.json").is_file():
            return ResolvedModel(spec, "sentence-transformers", str(path))
        if (path / "config.json").is_file():
            return ResolvedModel(spec, "hf", str(path))
        raise ModelNotFoundError(
            f"{path} is not a model folder (no modules.json, config.json or adapter_config.json)"
        )
    if spec.count("/") > 1 or spec.startswith((".", "~")):
        raise ModelNotFoundError(f"no model folder at {spec}; {_alternatives()}")
    cached = _hub_cached(spec)
    if cached:
        return ResolvedModel(spec, "hub", cached)
    if not _hub_reachable():
        raise ModelNotFoundError(
            f"{spec!r} is not a local folder and the Hugging Face hub cannot be reached (offline); {_alternatives()}"
        )
    return ResolvedModel(spec, "hub", spec)
