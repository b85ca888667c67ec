"""Training losses as registry entries: one per loss, with the shape of data it trains on.

A bi-encoder loss reads ``triplets`` (query, positive, mined negatives; in-batch negatives come free),
``margins`` (the same, labelled with the scorer's positive-minus-negative margins) or ``scores`` (labelled with
the scorer's scores); a reranker loss reads ``lists`` (query, [positive, negatives...], labels) or ``pairs``
(query, passage, label). Adding a loss is one :func:`register` call: the training configs accept any
registered name and the dataset builders follow its ``data``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lextune.errors import ConfigError

Kind = Literal["biencoder", "reranker"]
Data = Literal["triplets", "margins", "scores", "lists", "pairs"]


@dataclass(frozen=True)
class Loss:
    name: str
    kind: Kind
    data: Data
    build: Callable[[Any, Any], Any]  # (sentence-transformers model, training config) -> loss module
    doc: str = ""


LOSSES: dict[Kind, dict[str, Loss]] = {"biencoder": {}, "reranker": {}}


def register(loss: Loss) -> Loss:
    """Add a loss (or replace one of the same name and kind)."""
    LOSSES[loss.kind][loss.name] = loss
    return loss


def get_loss(kind: Kind, name: str) -> Loss:
    try:
        return LOSSES[kind][name]
    except KeyError:
        raise ConfigError(f"unknown {kind} loss {name!r}; registered: {', '.join(sorted(LOSSES[kind]))}") from None


def check_name(kind: Kind, name: str) -> str:
    """A config validator's check: ``name`` is a registered loss of ``kind``."""
    if name not in LOSSES[kind]:
        raise ValueError(f"unknown loss {name!r}; registered: {', '.join(sorted(LOSSES[kind]))}")
    return name


def _st_loss(name: str):
    from sentence_transformers.sentence_transformer import losses

    return getattr(losses, name)


def _ce_loss(name: str):
    from sentence_transformers.cross_encoder import losses

    return getattr(losses, name)


# InfoNCE with scale = 1 / temperature (a peer once shipped the inverse).
register(Loss("infonce", "biencoder", "triplets", lambda m, c: _st_loss("MultipleNegativesRankingLoss")(
    m, scale=1.0 / c.temperature, gather_across_devices=c.gather_across_devices),
    "InfoNCE over the positive, the mined negatives and the batch's other passages."))
register(Loss("cached_infonce", "biencoder", "triplets", lambda m, c: _st_loss("CachedMultipleNegativesRankingLoss")(
    m, scale=1.0 / c.temperature, mini_batch_size=c.mini_batch_size, gather_across_devices=c.gather_across_devices),
    "InfoNCE with gradient caching: large batches in mini-batches that fit in memory."))
register(Loss("margin_mse", "biencoder", "margins", lambda m, c: _st_loss("MarginMSELoss")(m),
              "Distils the scorer's positive-minus-negative margins (mine stores the scores)."))
register(Loss("kl", "biencoder", "scores", lambda m, c: _st_loss("DistillKLDivLoss")(m),
              "Distils the scorer's score distribution over the positive and negatives."))
register(Loss("listwise", "reranker", "lists", lambda m, c: _ce_loss("ListNetLoss")(m),
              "ListNet over the positive and its negatives."))
register(Loss("pairwise", "reranker", "lists", lambda m, c: _ce_loss("RankNetLoss")(m),
              "RankNet over the pairs of a list."))
register(Loss("pointwise", "reranker", "pairs", lambda m, c: _ce_loss("BinaryCrossEntropyLoss")(m),
              "Binary cross-entropy on each (query, passage) pair."))
