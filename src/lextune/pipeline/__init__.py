"""``lextune run``: the whole workflow from one YAML file, stage by stage, cached and resumable."""

from lextune.pipeline.config import EvalDataset, EvalStageConfig, RunConfig, TargetedConfig
from lextune.pipeline.stages import STAGES

__all__ = ["STAGES", "EvalDataset", "EvalStageConfig", "RunConfig", "TargetedConfig", "run_pipeline"]


def run_pipeline(*args, **kwargs):
    from lextune.pipeline.run import run_pipeline as _run

    return _run(*args, **kwargs)
