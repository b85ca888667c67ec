"""The lock of the tested set (requirements.lock) agrees with the ranges of pyproject.toml."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("lock", ROOT / "scripts" / "lock.py")
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)


def _requirements(extra: str, extras: dict[str, list[str]], seen: set[str] | None = None) -> list[Requirement]:
    """Every requirement ``lextune[extra]`` brings, following ``lextune[...]`` self-references."""
    seen = seen if seen is not None else set()
    out = []
    for line in extras[extra]:
        req = Requirement(line)
        if req.name == "lextune":
            for sub in sorted(req.extras - seen):
                seen.add(sub)
                out += _requirements(sub, extras, seen)
        else:
            out.append(req)
    return out


def test_every_requirement_of_the_dev_set_is_locked_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = lock.read_lock(ROOT / "requirements.lock")
    reqs = [Requirement(r) for r in project["dependencies"]] + _requirements("dev", project["optional-dependencies"])
    checked = 0
    for req in reqs:
        name = lock.normalize(req.name)
        if name == "torch":  # installed by the Makefile's TORCH_SPEC, never locked
            assert name not in pins
            continue
        assert name in pins, f"{req.name} is required but not in requirements.lock: make test-latest && make lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req}"
        checked += 1
    assert checked >= 25


def test_the_lock_has_one_exact_pin_per_line_and_names_no_cuda_wheel():
    pins = lock.read_lock(ROOT / "requirements.lock")
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in pins.values())
    assert not [n for n in pins if n.startswith(("nvidia-", "torch", "triton"))]


def test_differences_name_every_kind_of_mismatch(tmp_path):
    path = tmp_path / "requirements.lock"
    path.write_text("# comment\nA_b==1.0\nc==2\nd==3\n", encoding="utf-8")
    pins = lock.read_lock(path)
    assert pins == {"a-b": "1.0", "c": "2", "d": "3"}
    assert lock.differences(pins, {"a-b": "1.0", "c": "2.1", "e": "5"}) == [
        "d: locked 3, not installed", "c: locked 2, installed 2.1", "e: installed 5, not in the lock"]
    path.write_text("numpy>=2\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="requirements.lock:1"):
        lock.read_lock(path)
