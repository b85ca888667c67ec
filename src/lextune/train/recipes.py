"""Training recipes: defaults picked by the device a run trains on.

A training config's ``recipe`` is ``auto`` (the default: ``gpu`` where CUDA is visible or ``device`` names
it, else ``cpu``), ``cpu``, ``gpu`` or ``none`` (the plain field defaults). A recipe only fills the fields
that the config, its YAML or ``--set`` leave out, so anything written down wins; the config saved beside
the model holds the resolved values and the concrete recipe name.

- ``cpu``: the recipe measured on a 2-core CPU (docs/benchmarks.md, "Fine-tuning on the development
  corpus"): 128 tokens, one mined negative plus in-batch ones, word embeddings frozen and only the top 4
  layers trained, lr 5e-5; the reranker listwise over 1 + 3 at 160 tokens, top 4 layers, lr 2e-4 (its
  classification head starts random).
- ``gpu``: the full-size runs of the seeds (BGE-M3 style: temperature 0.02, 1 positive + 7 negatives,
  every layer trained, bf16 where the GPU has it); the bi-encoder uses the cached (GradCache) loss so that
  a batch of 64 x 9 texts at 256 tokens fits any GPU memory; the reranker 1 + 7 at 512 tokens, lr 6e-5.
  Not measured here: no GPU was lent to this project's sessions that wrote it.
"""

from __future__ import annotations

from typing import Any, Literal

RecipeName = Literal["auto", "cpu", "gpu", "none"]

BIENCODER_RECIPES: dict[str, dict[str, Any]] = {
    "cpu": {"batch_size": 32, "max_seq_length": 128, "n_negatives": 1, "train_layers": 4, "learning_rate": 5e-5},
    "gpu": {"loss": "cached_infonce", "batch_size": 64, "mini_batch_size": 32, "n_negatives": 7,
            "max_seq_length": 256, "learning_rate": 2e-5, "bf16": "if-supported"},
}
RERANKER_RECIPES: dict[str, dict[str, Any]] = {
    "cpu": {"loss": "listwise", "n_negatives": 3, "batch_size": 8, "max_length": 160, "train_layers": 4,
            "learning_rate": 2e-4},
    "gpu": {"loss": "listwise", "n_negatives": 7, "batch_size": 16, "max_length": 512, "learning_rate": 6e-5,
            "bf16": "if-supported"},
}
# Fields a recipe leaves alone when the config trains an adapter: LoRA already limits what trains.
_NOT_WITH_LORA = {"train_layers"}


def device_recipe(device: str | None) -> str:
    """``gpu`` for a CUDA device (named, or visible when ``device`` is unset), else ``cpu``."""
    if device:
        return "gpu" if str(device).startswith("cuda") else "cpu"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def fill_recipe(data: Any, recipes: dict[str, dict[str, Any]]) -> Any:
    """The raw config values with the recipe's values added for every field they leave out (a pydantic
    ``mode="before"`` step: it sees exactly what the user wrote)."""
    if not isinstance(data, dict):
        return data
    name = data.get("recipe", "auto")
    if name == "auto":
        name = device_recipe(data.get("device"))
    if name == "none" or name not in recipes:  # an unknown name is left for the Literal to reject
        return data
    filled = dict(data, recipe=name)
    for key, value in recipes[name].items():
        if key in data or (key in _NOT_WITH_LORA and data.get("lora") is not None):
            continue
        filled[key] = _bf16_supported() if value == "if-supported" else value
    return filled
