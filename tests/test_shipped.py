"""Models shipped as fp16 deltas over the bundled base: export, rebuild, resolve, fingerprint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def fake_tuned(bundled_dir, module_tmp) -> Path:
    """The base with its top layer moved (what train_layers: 1 would change) and its lextune files dropped."""
    import torch
    from safetensors.torch import load_file, save_file

    out = module_tmp / "tuned"
    shutil.copytree(bundled_dir, out, ignore=shutil.ignore_patterns("meta.json", "lextune_model.json", "README.md"))
    state = load_file(str(bundled_dir / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    for key in [k for k in state if k.startswith("encoder.layer.11.")]:
        state[key] = state[key] + 0.02 * torch.randn(state[key].shape, generator=gen)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def test_export_keeps_only_changed_tensors_and_rebuilds_a_loadable_model(fake_tuned, module_tmp, monkeypatch):
    from lextune.errors import ConfigError, ModelNotFoundError
    from lextune.models import shipped
    from lextune.models.biencoder import BiEncoder

    out = module_tmp / "data" / "demo-delta"
    manifest = shipped.export_delta(fake_tuned, out, name="demo-delta", card="# demo\n", training={"steps": 1})
    assert manifest["tensors"] and all(k.startswith("encoder.layer.11.") for k in manifest["tensors"])
    assert len(manifest["tensors"]) == 16  # a BERT layer: q, k, v, attention out, 2 layer norms, ffn in/out
    assert (out / "delta.safetensors").stat().st_size < 2 * manifest["parameters"] + 100_000  # fp16
    monkeypatch.setattr(shipped, "shipped_dir", lambda name: module_tmp / "data" / name)
    folder = shipped.shipped_model_dir("demo-delta")
    assert folder == shipped.shipped_model_dir("demo-delta")  # built once, then reused
    assert (folder / "README.md").read_text() == "# demo\n"
    assert json.loads((folder / "meta.json").read_text())["config"]["training"] == {"steps": 1}
    texts = ["손해배상 청구권의 소멸시효는?", "금융회사는 이용자에게 설명하여야 한다."]
    rebuilt, tuned, base = BiEncoder(str(folder)), BiEncoder(str(fake_tuned)), BiEncoder("bundled:multilingual-e5-small")
    a, b, c = (m.encode_passages(texts) for m in (rebuilt, tuned, base))
    assert np.min(np.sum(a * b, axis=1)) > 0.9999  # fp16 rounding of the shipped tensors only
    assert np.max(np.sum(a * c, axis=1)) < 0.999  # and it is not the base
    assert rebuilt.fingerprint() != base.fingerprint()
    # a tampered delta, a model that is not a fine-tune of the base, and the base itself are refused
    with pytest.raises(ConfigError, match="has no model.safetensors"):
        shipped.export_delta(fake_tuned.parent / "missing", out, name="x")
    with pytest.raises(ConfigError, match="nothing to ship"):
        shipped.export_delta(shipped.bundled_model_dir(), module_tmp / "same", name="same")
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps({**manifest, "delta_sha256": "0" * 64}))
    with pytest.raises(ModelNotFoundError, match="does not match its manifest"):
        shipped.shipped_model_dir("demo-delta")
    with pytest.raises(ModelNotFoundError, match="not shipped in this installation"):
        shipped.shipped_model_dir("absent")
