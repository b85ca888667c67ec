"""Progress where a user looks: a bar on a terminal, and in a log file (stderr not a terminal) a line at a
steady interval with items done, rate and time left."""

from __future__ import annotations

import time
from collections.abc import Callable


def every(seconds: float, report: Callable[[str], None], label: str = "encoding") -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that reports at most once per ``seconds`` (and at the end):
    ``label: done/total (rate/s, about N min left)``. The rate counts only the work done since the first call,
    so items already cached there do not inflate it."""
    state: dict = {}

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        if not state:
            state.update(start=now, first=done, last=now)
            if total and done >= total:
                report(f"{label}: {done}/{total} (all cached)")
            return
        if now - state["last"] < seconds and done < total:
            return
        state["last"] = now
        rate = (done - state["first"]) / max(now - state["start"], 1e-9)
        left = f", about {(total - done) / rate / 60:.0f} min left" if rate > 0 and done < total else ""
        report(f"{label}: {done}/{total} ({rate:.1f}/s{left})")

    return update
