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


def test_the_legal_model_ships_and_resolves_offline(bundled_dir):
    """bundled:lextune-legal-ko-small: the package's delta rebuilt on the converted base, a different model with
    the base's tokenizer and prompts, that a run can start from."""
    from lextune.models.biencoder import BiEncoder
    from lextune.models.resolve import resolve_model
    from lextune.models.shipped import LEGAL_NAME, shipped_dir
    from lextune.pipeline.config import RunConfig

    manifest = json.loads((shipped_dir(LEGAL_NAME) / "manifest.json").read_text())
    assert (shipped_dir(LEGAL_NAME) / "delta.safetensors").stat().st_size < 20_000_000
    assert "lextune-legal-ko-small" in (shipped_dir(LEGAL_NAME) / "README.md").read_text()
    assert manifest["base"] == "bundled:multilingual-e5-small" and manifest["tensors"]
    resolved = resolve_model(f"bundled:{LEGAL_NAME}")
    assert resolved.kind == "bundled" and Path(resolved.path).name.startswith(LEGAL_NAME)
    legal, base = BiEncoder(f"bundled:{LEGAL_NAME}"), BiEncoder("bundled:multilingual-e5-small")
    assert legal.fingerprint() != base.fingerprint()
    query = ["채권자를 해함을 알면서 한 법률행위를 취소할 수 있는지 여부"]
    passages = ["민법 제406조(채권자취소권) ① 채무자가 채권자를 해함을 알고 재산권을 목적으로 한 법률행위를 한 때에는 "
                "채권자는 그 취소 및 원상회복을 법원에 청구할 수 있다.",
                "형법 제329조(절도) 타인의 재물을 절취한 자는 6년 이하의 징역 또는 1천만원 이하의 벌금에 처한다."]
    q, p = legal.encode_queries(query), legal.encode_passages(passages)
    assert q.shape == (1, 384) and float(q[0] @ p[0]) > float(q[0] @ p[1])
    assert float(np.min(np.sum(p * base.encode_passages(passages), axis=1))) < 0.9999  # not the base
    assert RunConfig(inputs=["x"], base_model=f"bundled:{LEGAL_NAME}").base_model == f"bundled:{LEGAL_NAME}"
    from typer.testing import CliRunner

    from lextune.cli.main import app

    res = CliRunner().invoke(app, ["models", "import-bundled", "--name", LEGAL_NAME])
    assert res.exit_code == 0 and resolved.path in res.output.replace("\n", ""), res.output
    res = CliRunner().invoke(app, ["models", "import-bundled", "--name", "nope"])
    assert res.exit_code != 0 and "unknown bundled model 'nope'" in res.output
