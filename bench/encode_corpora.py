"""Encode the development corpora into lextune's embedding cache (long; run in the background).

    nohup .venv/bin/python bench/encode_corpora.py koblex-dev koblex-fulllaw-dev &

bench/retrieval.py then finds every passage vector in the cache.
"""

from __future__ import annotations

import sys
import time

from _corpora import DATASETS, passage_text


def main() -> None:
    from lextune.index.dense import encode_passages_cached
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import load_beir

    enc = BiEncoder("bundled:multilingual-e5-small")
    for name in sys.argv[1:] or list(DATASETS):
        ds = load_beir(DATASETS[name])
        texts = [passage_text(d) for d in ds.corpus.values()]
        t = time.perf_counter()

        def report(done: int, total: int, name=name, t=t) -> None:
            print(f"{name}: {done}/{total} ({time.perf_counter() - t:.0f} s)", flush=True)

        encode_passages_cached(enc, texts, progress=report)
        print(f"{name}: done in {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
