"""Encoding on a real local Ray cluster (2 workers on this machine, no mock): the same files, ids, order and
vectors as a local run, resumable by part."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_cluster(lextune_home):
    """One local Ray cluster of 2 CPUs for the module (the jobs find it open and use it as it is)."""
    from lextune.raycluster import RayConfig, ray_cluster

    with ray_cluster(RayConfig(num_workers=2)) as ray:
        assert ray.cluster_resources()["CPU"] == 2
        yield ray


@pytest.fixture(scope="module")
def corpus(law_texts, module_tmp) -> Path:
    path = module_tmp / "paragraphs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(law_texts[:64]):
            f.write(json.dumps({"id": f"p{i}", "text": t}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def local_run(corpus, encoder, module_tmp) -> dict:
    """The corpus embedded here, without Ray: what every Ray run must equal."""
    from lextune.models.embed import embed_file

    res = embed_file(encoder, corpus, module_tmp / "local", part_size=16, progress=False)
    assert res.rows == 64 and res.encoded_parts == 4
    return dict(np.load(module_tmp / "local" / "embeddings.npz"))


def test_embeddings_through_ray_equal_local_ones(corpus, local_run, tmp_path):
    from typer.testing import CliRunner

    from lextune.cli.main import app

    res = CliRunner().invoke(app, ["embed", "-i", str(corpus), "-o", str(tmp_path / "ray"), "--part-size", "16",
                                   "--ray", "local", "--ray-workers", "2", "-q"])
    assert res.exit_code == 0, res.output
    a, b = local_run, np.load(tmp_path / "ray" / "embeddings.npz")
    assert list(a["ids"]) == list(b["ids"]) == [f"p{i}" for i in range(64)]
    cos = np.sum(a["embeddings"] * b["embeddings"], axis=1)
    assert cos.min() >= 0.99999
    meta = json.loads((tmp_path / "ray" / "meta.json").read_text())
    assert meta["rows"] == 64 and meta["files"] == ["embeddings.npz"]


def test_a_ray_job_resumes_from_the_parts_on_disk(corpus, encoder, local_run, tmp_path, monkeypatch):
    """Parts a crashed job finished are read back; Ray encodes only the rest."""
    from lextune.models import embed as embed_mod
    from lextune.raycluster import RayConfig

    calls: list[list[int]] = []
    real = embed_mod.encode_part

    def crash_after_two(enc, texts, side, parts_dir, part, batch_size):
        if part >= 2:
            raise RuntimeError("killed")
        return real(enc, texts, side, parts_dir, part, batch_size)

    monkeypatch.setattr(embed_mod, "encode_part", crash_after_two)
    with pytest.raises(RuntimeError, match="killed"):
        embed_mod.embed_file(encoder, corpus, tmp_path / "out", part_size=16, progress=False)
    monkeypatch.setattr(embed_mod, "encode_part", real)

    import lextune.raycluster as rc

    seen = rc.encode_parts_on_ray

    def spy(init_args, todo, *args, **kwargs):
        calls.append([p for p, _ in todo])
        return seen(init_args, todo, *args, **kwargs)

    monkeypatch.setattr(rc, "encode_parts_on_ray", spy)
    res = embed_mod.embed_file(encoder, corpus, tmp_path / "out", part_size=16, progress=False,
                               ray=RayConfig(num_workers=2))
    assert calls == [[2, 3]] and res.resumed_parts == 2 and res.encoded_parts == 2
    a, b = np.load(tmp_path / "out" / "embeddings.npz"), local_run
    assert list(a["ids"]) == list(b["ids"]) and np.allclose(a["embeddings"], b["embeddings"], atol=1e-5)


def test_index_encoding_on_ray_fills_the_embedding_cache_with_the_local_vectors(law_texts, encoder):
    from lextune.index.dense import encode_passages_cached
    from lextune.raycluster import RayConfig

    texts = law_texts[200:248]
    local = encode_passages_cached(encoder, texts, cache=False)
    seen: list[int] = []
    on_ray = encode_passages_cached(encoder, texts, part_size=16, ray=RayConfig(num_workers=2),
                                    progress=lambda done, total: seen.append(done))
    assert np.sum(local * on_ray, axis=1).min() >= 0.99999
    assert seen[0] == 0 and seen[-1] == 48 and len(seen) == 4  # one report per part of 16, as each ends
    again = encode_passages_cached(encoder, texts, ray=RayConfig(num_workers=2))  # all cached: Ray is not asked
    assert np.array_equal(again, on_ray)


def test_the_ray_extra_is_named_when_missing(monkeypatch):
    import sys

    from lextune.errors import LextuneError
    from lextune.raycluster import RayConfig, ray_cluster

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(LextuneError, match=r'pip install "lextune\[ray\]"'), ray_cluster(RayConfig()):
        pass
