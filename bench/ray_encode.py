"""Encoding passages locally against a Ray Data job on the same machine, and what N workers would do.

Both runs embed the same real statute paragraphs (the shared corpus's laws, public text) with the bundled model
through `lextune.models.embed.embed_file` (the `lextune embed` path; no embedding cache involved): locally with
torch's default threads, and on a local Ray cluster of W actors x 1 CPU (started inside the timed run: its
start-up is overhead a user pays). Per-worker throughput is measured from the Ray run's steady part (its time
after the first part ended); the scaling sheet divides the whole body of law (481,977 paragraph chunks, bench
/retrieval_scale.py) by N such workers, start-up added, and assumes nothing else limits (an estimate, stated as
one). Prints a table and writes bench/results/ray_encode.json.

    .venv/bin/python bench/ray_encode.py [--n 480] [--workers 2] [--part-size 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _corpora import REPO

OUT = REPO / "bench" / "results" / "ray_encode.json"
WHOLE_LAW = 481_977


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=480)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--part-size", type=int, default=32)
    args = ap.parse_args()

    from lextune.ingest.lawgo import law_paragraphs
    from lextune.models.biencoder import BiEncoder
    from lextune.models.embed import embed_file
    from lextune.raycluster import RayConfig

    laws = REPO.parent / "shared" / "corpus" / "laws"
    texts = law_paragraphs(laws if laws.is_dir() else REPO / "src" / "lextune" / "data" / "laws")[: args.n]
    encoder = BiEncoder("bundled:multilingual-e5-small", device="cpu")
    encoder.encode_passages(texts[:8])  # warm
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_text("".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n"
                               for i, t in enumerate(texts)), encoding="utf-8")
        t0 = time.perf_counter()
        embed_file(encoder, src, Path(tmp) / "local", part_size=args.part_size, progress=False)
        local_s = time.perf_counter() - t0

        import lextune.raycluster as rc

        ends: list[float] = []
        real = rc.encode_parts_on_ray

        def timed(init_args, todo, parts_dir, side, batch_size, config, done):
            return real(init_args, todo, parts_dir, side, batch_size, config,
                        lambda p, n: (ends.append(time.perf_counter()), done(p, n)))

        rc.encode_parts_on_ray = timed
        t0 = time.perf_counter()
        embed_file(encoder, src, Path(tmp) / "ray", part_size=args.part_size, progress=False,
                   ray=RayConfig(num_workers=args.workers))
        ray_s = time.perf_counter() - t0
    parts = -(-len(texts) // args.part_size)
    steady_rate = (len(texts) - args.part_size) / (ends[-1] - ends[0]) if len(ends) > 1 else float("nan")
    per_worker = steady_rate / args.workers
    startup = ray_s - len(texts) / steady_rate
    sheet = {n: round((WHOLE_LAW / (per_worker * n) + startup) / 3600, 2) for n in (2, 8, 32, 128)}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": "2-core CPU VM, no GPU", "passages": len(texts),
              "parts": parts, "part_size": args.part_size, "workers": args.workers,
              "local_s": round(local_s, 1), "local_per_s": round(len(texts) / local_s, 1),
              "ray_s": round(ray_s, 1), "ray_per_s": round(len(texts) / ray_s, 1),
              "ray_steady_per_s": round(steady_rate, 1), "per_worker_per_s": round(per_worker, 1),
              "ray_overhead_s": round(startup, 1), "whole_law_hours_by_workers": sheet,
              "whole_law_hours_local": round(WHOLE_LAW / (len(texts) / local_s) / 3600, 2)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"{len(texts)} passages, parts of {args.part_size}")
    print(f"local (torch threads: all cores) {local_s:7.1f} s  {result['local_per_s']:6.1f} passages/s")
    print(f"Ray, {args.workers} actors x 1 CPU   {ray_s:7.1f} s  {result['ray_per_s']:6.1f} passages/s "
          f"(steady {steady_rate:.1f}/s, {per_worker:.1f}/s per worker; start-up and hand-over {startup:.1f} s)")
    print("whole law (481,977 chunks), hours: local " + str(result["whole_law_hours_local"]) + "; Ray workers "
          + ", ".join(f"{n}: {h}" for n, h in sheet.items()))


if __name__ == "__main__":
    main()
