"""Choosing a query's negatives from its filtered candidates: the top ones (after ``skip_top``) or a sample of
a rank range, then random documents of the corpus for ``random_ratio`` and for whatever the filters left short."""

from __future__ import annotations

import random

from lextune.mine.config import MineConfig


def choose_hard(kept: list[str], scores: dict[str, float], n_hard: int, config: MineConfig,
                rng: random.Random) -> list[str]:
    """``n_hard`` negatives from ``kept`` (best first), by the config's selection rule."""
    if config.selection == "top":
        return kept[config.skip_top : config.skip_top + n_hard]
    window = kept[config.range_start : config.range_end] or kept
    hard = rng.sample(window, min(n_hard, len(window)))
    hard.sort(key=lambda x: -scores[x])
    return hard


def draw_random(n: int, exclude: set[str], all_ids: list[str], rng: random.Random) -> list[str]:
    """``n`` distinct documents of the corpus outside ``exclude`` (fewer when the corpus runs out)."""
    exclude = set(exclude)
    out: list[str] = []
    while len(out) < n and len(exclude) < len(all_ids):
        c = rng.choice(all_ids)
        if c not in exclude:
            out.append(c)
            exclude.add(c)
    return out
