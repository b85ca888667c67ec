"""Training progress where a user looks: tqdm's bar on a terminal; in a log file (stderr not a terminal), or
where a caller takes the lines (``lextune run``), one line per interval: steps done, rate, time left, loss."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lextune.progress import every


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def training_progress(enabled: bool, report: Callable[[str], None] | None = None,
                      seconds: float = 60) -> tuple[bool, list]:
    """``(disable_tqdm, callbacks)`` for a Hugging Face trainer: tqdm on a terminal, else a callback that
    reports through ``report`` (default: stderr) at most once per ``seconds`` and at the last step."""
    if not enabled:
        return True, []
    if report is None and sys.stderr.isatty():
        return False, []
    return True, [step_lines(report or _stderr, seconds)]


def step_lines(report: Callable[[str], None], seconds: float = 60):
    """A trainer callback: ``training steps: done/total (rate/s, about N min left), loss L``."""
    from transformers import TrainerCallback

    class StepLines(TrainerCallback):
        def __init__(self) -> None:
            self.loss: float | None = None
            self.update = every(seconds, lambda m: report(m + (f", loss {self.loss:.4f}" if self.loss is not None
                                                                else "")), "training steps")

        def on_train_begin(self, args, state, control, **kwargs):
            self.update(state.global_step, state.max_steps)  # the start (a resumed run counts from its step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args, state, control, **kwargs):
            self.update(state.global_step, state.max_steps)

    return StepLines()
