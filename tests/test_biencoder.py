"""BiEncoder API, templates, lengths, model specs and adapters, on the real bundled model."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from lextune.errors import ConfigError, ModelNotFoundError
from lextune.models.templates import TEMPLATES, Template, get_template, template_from_prompts

PASSAGES = [
    "제750조(불법행위의 내용) 고의 또는 과실로 인한 위법행위로 타인에게 손해를 가한 자는 그 손해를 배상할 책임이 있다.",
    "제766조(손해배상청구권의 소멸시효) ① 불법행위로 인한 손해배상의 청구권은 피해자나 그 법정대리인이 그 손해 및 가해자를 안 날로부터 3년간 이를 행사하지 아니하면 시효로 인하여 소멸한다.",
    "제618조(임대차의 의의) 임대차는 당사자 일방이 상대방에게 목적물을 사용, 수익하게 할 것을 약정하고 상대방이 이에 대하여 차임을 지급할 것을 약정함으로써 그 효력이 생긴다.",
]


def test_api_shapes_and_information(encoder):
    q = encoder.encode_queries(["불법행위 손해배상 청구권의 시효는?"])
    p = encoder.encode_passages(PASSAGES)
    assert q.dtype == np.float32 and q.shape == (1, 384) and p.shape == (3, 384)
    assert np.allclose(np.linalg.norm(p, axis=1), 1, atol=1e-5)
    assert int(np.argmax(q @ p.T)) == 1  # the prescription article wins
    assert encoder.get_embedding_dimension() == 384
    assert encoder.get_max_seq_length() == 512
    assert encoder.get_training_config() is None
    assert encoder.template.name == "e5"  # read from the model's own metadata
    assert encoder.encode_passages([]).shape == (0, 384)
    assert encoder.encode_queries("한 문장").shape == (384,)


def test_template_is_applied_like_sentence_transformers_prompts(encoder):
    st = encoder.model
    ours = encoder.encode_queries(PASSAGES[:2])
    theirs = st.encode(PASSAGES[:2], prompt="query: ", normalize_embeddings=True)
    assert np.allclose(ours, theirs, atol=1e-5)


def test_template_registry():
    assert get_template("e5") == TEMPLATES["e5"]
    assert get_template(("q: ", "p: ")) == Template("q: ", "p: ")
    assert get_template({"query": "Q ", "passage": "P "}).passage == "P "
    assert template_from_prompts({"query": "query: ", "document": "passage: "}).name == "e5"
    assert template_from_prompts(None).name == "none"
    with pytest.raises(ConfigError, match="unknown template"):
        get_template("nope")


def test_custom_template_and_no_normalisation(bundled_dir):
    from lextune.models.biencoder import BiEncoder

    enc = BiEncoder(str(bundled_dir), template="none", normalize=False, device="cpu")
    v = enc.encode_passages(PASSAGES[:1])
    assert enc.template.name == "none"
    assert abs(float(np.linalg.norm(v)) - 1) > 1e-3


def test_truncation_is_counted_and_windows_pool(bundled_dir, caplog):
    from lextune.models.biencoder import BiEncoder

    long_text = " ".join(PASSAGES * 6)
    enc = BiEncoder(str(bundled_dir), passage_max_seq_length=64, query_max_seq_length=16, device="cpu")
    with caplog.at_level("WARNING"):
        short = enc.encode_passages([long_text, PASSAGES[0][:20]])
    assert enc.truncated["passage"] == 1
    assert "truncated" in caplog.text
    win = BiEncoder(str(bundled_dir), passage_max_seq_length=64, long_passages="window", device="cpu")
    pooled = win.encode_passages([long_text, PASSAGES[0][:20]])
    assert win.truncated["passage"] == 0
    assert np.allclose(pooled[1], short[1], atol=1e-5)  # short texts are unaffected
    assert float(pooled[0] @ short[0]) < 0.9999  # the long one now sees all its windows
    assert abs(float(np.linalg.norm(pooled[0])) - 1) < 1e-5
    # token counts for usage: what the model read, capped at the side's limit
    vecs, counts = enc.encode_with_token_counts([long_text, PASSAGES[0][:20]], "passage")
    assert np.allclose(vecs, short, atol=1e-6)
    want = len(enc.model.tokenizer("passage: " + PASSAGES[0][:20])["input_ids"])
    assert counts == [64, want] and want < 64
    assert enc.encode_with_token_counts([long_text], "query")[1] == [16]


def test_resolver_errors_are_clear(tmp_path, monkeypatch):
    from lextune.models.resolve import resolve_model

    with pytest.raises(ModelNotFoundError, match="unknown bundled model"):
        resolve_model("bundled:nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        resolve_model(tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="bundled:multilingual-e5-small"):  # names the local alternatives
        resolve_model("intfloat/some-model-that-is-not-cached")


def test_peft_adapter_folder_loads_with_its_base(bundled_dir, tmp_path):
    import torch
    from peft import LoraConfig
    from sentence_transformers import SentenceTransformer

    from lextune.models.biencoder import BiEncoder

    st = SentenceTransformer(str(bundled_dir), device="cpu")
    st.add_adapter(LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in st[0].auto_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    adapter_dir = tmp_path / "adapter"
    st[0].auto_model.save_pretrained(str(adapter_dir))
    expected = st.encode(PASSAGES, prompt="passage: ", normalize_embeddings=True)

    enc = BiEncoder(adapter_dir, device="cpu")
    assert enc.resolved.kind == "adapter"
    got = enc.encode_passages(PASSAGES)
    assert np.allclose(got, expected, atol=1e-5)
    cfg = enc.get_training_config()
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8 and cfg["target_modules"] == ["query", "value"]
    base = BiEncoder(bundled_dir, device="cpu").encode_passages(PASSAGES)
    assert not np.allclose(got, base, atol=1e-3)  # the adapter really changed the model
    if importlib.util.find_spec("onnxruntime"):
        assert BiEncoder(adapter_dir, device="cpu", backend="auto").backend == "torch"  # adapters: torch
        with pytest.raises(ConfigError, match="merge it first"):
            BiEncoder(adapter_dir, device="cpu", backend="onnx")


def test_onnx_backend_gives_the_torch_vectors(encoder, onnx_encoder, bundled_dir, lextune_home):
    """ONNX Runtime at fp32 encodes like torch (same fingerprint, so it queries torch-built indexes);
    int8 stays close; the export is cached per model; auto picks ONNX on a CPU."""
    from lextune.models.biencoder import BiEncoder

    queries = ["임차인의 보증금 반환", "전자금융사고 손해배상 책임은 누가 지나요?", "야간 방문 추심"]
    np.testing.assert_allclose(onnx_encoder.encode_queries(queries), encoder.encode_queries(queries), atol=2e-5)
    np.testing.assert_allclose(onnx_encoder.encode_passages(PASSAGES), encoder.encode_passages(PASSAGES), atol=2e-5)
    assert onnx_encoder.fingerprint() == encoder.fingerprint() and onnx_encoder.backend == "onnx"
    assert (lextune_home / "cache" / "onnx" / encoder.fingerprint() / "model.onnx").is_file()
    assert not list((lextune_home / "cache" / "onnx" / encoder.fingerprint()).glob(".tmp-*"))  # nothing half-written

    raw_torch = BiEncoder(str(bundled_dir), normalize=False, device="cpu").encode_passages(PASSAGES)
    raw_onnx = BiEncoder(str(bundled_dir), normalize=False, device="cpu", backend="onnx").encode_passages(PASSAGES)
    np.testing.assert_allclose(raw_onnx, raw_torch, atol=1e-4)

    int8 = BiEncoder("bundled:multilingual-e5-small", device="cpu", backend="onnx-int8")
    cos = (int8.encode_queries(queries) * encoder.encode_queries(queries)).sum(1)
    assert cos.min() > 0.98 and cos.max() < 0.99999  # close, but really quantised
    # a query's int8 vector does not depend on what it is batched with (one text per run)
    np.testing.assert_array_equal(int8.encode_queries(queries[1:2])[0], int8.encode_queries(queries)[1])
    import onnx

    graph = onnx.load(str(int8._onnx.path), load_external_data=False).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMulInteger") == 60 and ops.count("MatMul") >= 12  # 12 FFN down-projections kept fp32
    assert BiEncoder("bundled:multilingual-e5-small", device="cpu", backend="auto").backend == "onnx"
    with pytest.raises(ConfigError, match="backend must be one of"):
        BiEncoder("bundled:multilingual-e5-small", device="cpu", backend="tensorrt")


def test_fingerprint_follows_the_weights_not_the_provenance(encoder, bundled_dir, tmp_path):
    """The same model converted on another machine (another meta.json "created") keeps its fingerprint, so
    indexes and embedding caches built there still match; other weights change it."""
    from lextune.models.biencoder import BiEncoder

    copy = tmp_path / "copy"
    shutil.copytree(bundled_dir, copy)
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "created": "2030-01-01T00:00:00Z"}))
    assert BiEncoder(str(copy)).fingerprint() == encoder.fingerprint()
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of the last tensor
    weights.write_bytes(bytes(data))
    assert BiEncoder(str(copy)).fingerprint() != encoder.fingerprint()


def test_prefix_cache_runs_the_shared_frozen_bottom_once_with_the_same_vectors(bundled_dir):
    import torch

    from lextune.models.biencoder import BiEncoder
    from lextune.models.prefix_cache import prefix_cache

    enc = BiEncoder(str(bundled_dir), device="cpu")
    texts = PASSAGES + ["임대차 보증금", "query-like short text"]
    layers = enc.model[0].auto_model.encoder.layer

    def nudge(layer) -> None:
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.02 * torch.randn_like(p))

    base = enc.encode_passages(texts)
    with prefix_cache(trained_top=4) as cache:
        filled = enc.encode_passages(texts)
        assert (cache.hits, cache.misses) == (0, len(texts))
        nudge(layers[-1])  # a "tuned" model: only a top layer changed, so the bottom's outputs are reused
        tuned = enc.encode_passages(texts[::-1])[::-1]
        assert (cache.hits, cache.misses) == (len(texts), len(texts))
    assert "forward" not in vars(enc.model[0].auto_model)  # detached after each encode
    np.testing.assert_allclose(filled, base, atol=1e-6)
    np.testing.assert_allclose(tuned, enc.encode_passages(texts), atol=1e-6)  # = the uncached tuned vectors
    assert float(np.abs(tuned - base).max()) > 1e-3
    with prefix_cache(trained_top=4) as cache:
        enc.encode_passages(texts)
        nudge(layers[0])  # a change below the top 4 layers makes another model: nothing is reused
        changed = enc.encode_passages(texts)
        assert (cache.hits, cache.misses) == (0, 2 * len(texts))
    np.testing.assert_allclose(changed, enc.encode_passages(texts), atol=1e-6)
    with prefix_cache(trained_top=4, max_bytes=1) as cache:  # full: computes, keeps nothing, same vectors
        np.testing.assert_allclose(enc.encode_passages(texts), changed, atol=1e-6)
        assert cache.stats()["entries"] == 0 and cache.misses == len(texts)
