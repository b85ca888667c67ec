"""Progress in a log file: a line at a steady interval with done/total, rate and time left."""

from __future__ import annotations

from lextune import progress


def test_every_reports_at_its_interval_and_at_the_end_with_the_rate_of_new_work(monkeypatch):
    clock = iter([0.0, 10.0, 31.0, 45.0, 70.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    update = progress.every(30, lines.append, "encoding")
    update(400, 1000)  # t=0: 400 were cached; nothing done yet
    update(500, 1000)  # t=10: too soon
    update(710, 1000)  # t=31: 310 new in 31 s = 10/s, 290 left = 29 s
    update(800, 1000)  # t=45: too soon
    update(1000, 1000)  # t=70: the end is always reported
    assert lines == ["encoding: 710/1000 (10.0/s, about 0 min left)", "encoding: 1000/1000 (8.6/s)"]


def test_every_says_when_everything_was_cached():
    lines: list[str] = []
    progress.every(30, lines.append)(5, 5)
    assert lines == ["encoding: 5/5 (all cached)"]


def test_training_shows_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
    import sys

    from lextune.train.progress import training_progress

    assert training_progress(False) == (True, [])  # progress off: neither
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert training_progress(True) == (False, [])  # a terminal: tqdm's bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    disable, callbacks = training_progress(True)  # a log file: no bar, a line a minute
    assert disable and len(callbacks) == 1
    disable, callbacks = training_progress(True, report=print)  # a caller that takes the lines, even on a terminal
    assert disable and len(callbacks) == 1
