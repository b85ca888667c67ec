"""Run a transformer's frozen bottom layers once per distinct text within a process.

Why: the CPU recipe trains only the top layers of the bi-encoder (``train_layers``), so the base, tuned and
targeted models of one ``lextune run`` share their embeddings and bottom layers bit for bit. On two cores the
demo encoded its passages three times and ran the shared bottom 8 of 12 layers for every training step,
although most passages repeat across steps and stages. While a :func:`prefix_cache` is active, a BERT-like
model attached with :func:`attach` looks up the output of its frozen bottom layers by (weights fingerprint,
token ids) and runs only the layers above on a hit. Vectors and gradients are those of the plain forward
(the bottom runs without dropout; frozen layers are always in eval mode, see ``train.biencoder``).

Keys hold the unpadded token ids, so a text truncated to another length is another entry. The store is in
memory and stops taking entries at ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

log = logging.getLogger(__name__)

_ACTIVE: PrefixCache | None = None
_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class PrefixCache:
    """Outputs of the bottom ``layers - trained_top`` transformer layers, keyed by weights and token ids."""

    def __init__(self, trained_top: int, max_bytes: int = 2 << 30) -> None:
        self.trained_top = trained_top
        self.max_bytes = max_bytes
        self.store: dict[tuple[str, bytes], object] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key):
        return self.store.get(key)

    def put(self, key, value) -> None:
        # Full means full: the stages read the corpus in the same order again, and an LRU would evict each
        # entry just before its next use; keeping the first ``max_bytes`` keeps that part useful.
        size = value.numel() * value.element_size()
        if self.bytes + size <= self.max_bytes:
            self.store[key] = value
            self.bytes += size

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self.store), "bytes": self.bytes}


@contextmanager
def prefix_cache(trained_top: int, max_bytes: int = 2 << 30) -> Iterator[PrefixCache]:
    """Make models attached in this block share the outputs of all but their top ``trained_top`` layers."""
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, PrefixCache(trained_top, max_bytes)
    try:
        yield _ACTIVE
    finally:
        cache, _ACTIVE = _ACTIVE, previous
        log.info("prefix cache: %s", cache.stats())


def recipe_cache(train_layers: int | None, lora: object, gb: float):
    """The cache for a training recipe that freezes all but its top ``train_layers`` layers: none (a null
    context) when every layer trains, with LoRA (the adapter changes every layer), or with ``gb`` 0."""
    if not train_layers or lora or gb <= 0:
        return nullcontext()
    return prefix_cache(int(train_layers), max_bytes=int(gb * (1 << 30)))


def active() -> PrefixCache | None:
    """The cache of the enclosing :func:`prefix_cache` block, if any."""
    return _ACTIVE


def _bert_like(hf) -> bool:
    layers = getattr(getattr(hf, "encoder", None), "layer", None)
    return layers is not None and hasattr(hf, "embeddings") and not hasattr(hf, "peft_config")


def _fingerprint(hf, bottom: list) -> str:
    """sha1 of the weights of ``bottom`` (embeddings and lower layers); recomputed only after a weight changed."""
    params = [p for m in bottom for p in m.parameters()]
    n_bottom = len(bottom) - 1
    versions = (n_bottom, tuple(p._version for p in params), tuple(p.data_ptr() for p in params))
    known = _FINGERPRINTS.get(hf)
    if known and known[0] == versions:
        return known[1]
    h = hashlib.sha1(f"{type(hf).__name__}:{n_bottom}".encode())
    for p in params:
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().cpu().contiguous().view(-1).numpy().view("uint8").data)
    _FINGERPRINTS[hf] = (versions, h.hexdigest())
    return h.hexdigest()


def _bottom_states(hf, bottom_layers: list, ids, mask, kw: dict):
    """Hidden states after the embeddings and ``bottom_layers`` for ``ids``, computed in eval mode without
    gradients (what the cache stores; the modules' training modes are restored)."""
    import torch

    bottom = [hf.embeddings, *bottom_layers]
    modes = [m.training for m in bottom]
    try:
        for m in bottom:
            m.eval()
        with torch.no_grad():
            h = hf.embeddings(input_ids=ids)
            for layer in bottom_layers:
                h = layer(h, mask, None, **kw)
    finally:
        for m, mode in zip(bottom, modes, strict=True):
            m.train(mode)
    return h


@contextmanager
def attach(hf) -> Iterator[None]:
    """While a cache is active, run ``hf``'s shared bottom layers through it (a no-op otherwise, or for a
    model that is not BERT-like, has too few layers, or trains a bottom layer)."""
    cache = _ACTIVE
    if cache is None or not _bert_like(hf):
        yield
        return
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

    encoder = hf.encoder
    layers = list(encoder.layer)
    n_bottom = len(layers) - cache.trained_top
    if n_bottom <= 0 or "forward" in vars(encoder) or "forward" in vars(hf):
        yield
        return
    bottom = [hf.embeddings, *layers[:n_bottom]]
    fp = _fingerprint(hf, bottom)
    bottom_params = [p for m in bottom for p in m.parameters()]
    seen: dict = {}

    model_forward = hf.forward

    def remember(*args, **kwargs):
        # sentence-transformers calls ``forward`` itself (no module hooks run), so wrap the method
        seen["ids"] = kwargs.get("input_ids", args[0] if args else None)
        seen["mask"] = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        seen["types"] = kwargs.get("token_type_ids")
        try:
            return model_forward(*args, **kwargs)
        finally:
            seen.clear()

    original = encoder.forward

    def forward(hidden_states, attention_mask=None, *args, **kwargs):
        ids, mask2d = seen.get("ids"), seen.get("mask")
        usable = (ids is not None and not args and kwargs.get("encoder_hidden_states") is None
                  and tuple(ids.shape) == tuple(hidden_states.shape[:2])
                  and (seen.get("types") is None or not bool(seen["types"].any()))
                  and not (torch.is_grad_enabled() and any(p.requires_grad for p in bottom_params)))
        if mask2d is None:
            mask2d = torch.ones_like(ids) if ids is not None else None
        lengths = mask2d.sum(1).tolist() if usable else []
        # right padding only: a left-padded row has other positions than the same text alone
        if not usable or any(not bool(mask2d[b, :n].all()) for b, n in enumerate(lengths)):
            return original(hidden_states, attention_mask, *args, **kwargs)
        keys = [(fp, ids[b, :n].cpu().numpy().tobytes()) for b, n in enumerate(lengths)]
        found = [cache.get(k) for k in keys]
        miss = [b for b, v in enumerate(found) if v is None]
        cache.hits += len(keys) - len(miss)
        cache.misses += len(miss)
        kw = {k: v for k, v in kwargs.items() if k not in ("use_cache", "encoder_hidden_states")}
        if miss:
            sub_mask = attention_mask
            if attention_mask is not None and attention_mask.shape[0] == len(keys):
                sub_mask = attention_mask[miss]
            h = _bottom_states(hf, layers[:n_bottom], ids[miss], sub_mask, kw)
            for j, b in enumerate(miss):
                found[b] = h[j, : lengths[b]].detach().clone()
                cache.put(keys[b], found[b])
        out = hidden_states.new_zeros(hidden_states.shape)
        for b, value in enumerate(found):
            out[b, : lengths[b]] = value
        for layer in layers[n_bottom:]:
            out = layer(out, attention_mask, None, **kw)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=out)

    hf.forward = remember
    encoder.forward = forward
    try:
        yield
    finally:
        del hf.forward
        del encoder.forward
