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
