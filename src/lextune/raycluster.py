"""Encoding beyond one machine: a Ray Data job over the parts of a corpus.

The corpus is cut into the same parts as a local run (sorted by length, ``part_size`` rows each); each part is
one row of a Ray dataset, mapped by a pool of actors that load the encoder once and write each part's vectors
as the part file a local run would write. The driver then assembles the parts in order, so the output is
the local output (same ids, same order, same files) and a crashed job resumes from the parts on disk. The
cluster is a local one started for the job (``address: null``), or an existing one (``auto``,
``ray://host:10001``); the part folder must be reachable by every worker (one machine, or a shared disk).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lextune.extras import optional_import


class RayConfig(BaseModel):
    """Where and how wide a Ray job runs (``ray:`` in a config, ``--ray`` on the command line)."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="None: a local cluster started for the job and stopped after "
                                "it; 'auto': the cluster this machine belongs to; 'ray://host:10001': a remote one.")
    num_workers: int = Field(2, ge=1, description="Encoder actors (each loads the model once).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs each actor reserves (and torch threads it uses).")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs each actor reserves (> 0: it encodes on CUDA).")


def _ray():
    return optional_import("ray", "ray", "jobs on a Ray cluster")


@contextlib.contextmanager
def ray_cluster(config: RayConfig) -> Iterator[Any]:
    """Ray, connected: to ``config.address``, or to a local cluster of ``num_workers x cpus_per_worker`` CPUs
    started here and shut down on exit. A Ray session the caller opened is used as it is."""
    ray = _ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING, "configure_logging": False}
        if config.address is None:
            kwargs["num_cpus"] = max(1, math.ceil(config.num_workers * config.cpus_per_worker))
            if config.gpus_per_worker:
                kwargs["num_gpus"] = math.ceil(config.num_workers * config.gpus_per_worker)
        ray.init(address=config.address, **kwargs)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


class PartEncoder:
    """A Ray actor: the encoder loaded once; each input row (a part number and its texts) is encoded and written
    to its part file by :func:`lextune.models.embed.encode_part`."""

    def __init__(self, init_args: dict, side: str, parts_dir: str, batch_size: int, threads: int,
                 device: str) -> None:
        import torch

        from lextune.models.biencoder import BiEncoder

        torch.set_num_threads(max(1, threads))
        self.encoder = BiEncoder(device=device, **init_args)
        self.side, self.parts_dir, self.batch_size = side, Path(parts_dir), batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from lextune.models.embed import encode_part

        rows = []
        for part, texts in zip(batch["part"], batch["texts"], strict=True):
            encode_part(self.encoder, [str(t) for t in texts], self.side, self.parts_dir, int(part), self.batch_size)
            rows.append(len(texts))
        return {"part": np.asarray(batch["part"]), "rows": np.asarray(rows)}


def encode_parts_on_ray(init_args: dict, todo: list[tuple[int, list[str]]], parts_dir: Path, side: str,
                        batch_size: int, config: RayConfig, done: Callable[[int, int], None]) -> None:
    """Encode the parts ``todo`` (part number, texts) on Ray into ``parts_dir``; ``done(part, rows)`` as each
    part's file is written (in the order they end)."""
    if not todo:
        return
    env = {}
    if config.address is None:  # workers on this machine: the driver's model cache, not a second copy
        from lextune.models.bundled import lextune_home

        env = {"env_vars": {"LEXTUNE_HOME": str(lextune_home())}}
    with ray_cluster(config) as ray:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller reports progress (part by part, through ``done``)
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ds = ray.data.from_items([{"part": p, "texts": texts} for p, texts in todo])
        ds = ds.map_batches(
            PartEncoder, batch_size=1, concurrency=min(config.num_workers, len(todo)),
            num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker or None, runtime_env=env or None,
            fn_constructor_kwargs={"init_args": init_args, "side": side, "parts_dir": str(parts_dir),
                                   "batch_size": batch_size,
                                   "threads": max(1, int(config.cpus_per_worker)),
                                   "device": "cuda" if config.gpus_per_worker else "cpu"})
        for row in ds.iter_rows():
            done(int(row["part"]), int(row["rows"]))
