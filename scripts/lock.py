"""The lock of the tested dependency set: write it from a virtualenv, or check a virtualenv against it.

``python scripts/lock.py write`` prints ``name==version`` for every distribution installed in the running
interpreter's environment (the one whose suite just passed: ``make test-latest`` then ``make lock``);
``python scripts/lock.py check`` fails, naming each difference, when the environment is not the lock.
torch (and the CUDA wheels a GPU build brings) are left out: the Makefile installs ``TORCH_SPEC`` (the
CPU build 2.13.0 by default) and keeps a GPU user's own build. lextune itself and pip's own tools are
left out too.
"""

from __future__ import annotations

import platform
import re
import sys
from datetime import date
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
# Not locked: torch's build (the Makefile's TORCH_SPEC or the user's own) and what a GPU build brings, the `gpu`
# extra (bitsandbytes: CUDA only, cannot be tested here), lextune itself and pip's own tools.
_IGNORED = re.compile(r"^(torch|triton|bitsandbytes|lextune|pip|setuptools|wheel|nvidia-.*|cuda-.*)$")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """Every distribution of this environment that the lock covers, by normalised name."""
    out = {}
    for dist in metadata.distributions():
        name = normalize(dist.metadata["Name"] or "")
        if name and not _IGNORED.match(name):
            out[name] = dist.version
    return out


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """``name -> version`` of a lock file (``name==version`` lines, ``#`` comments)."""
    pins = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version.strip():
            raise SystemExit(f"{path}:{lineno}: expected 'name==version', got {line!r}")
        pins[normalize(name.strip())] = version.strip()
    return pins


def differences(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    """What keeps ``have`` from being the locked set, one line each."""
    out = [f"{n}: locked {v}, not installed" for n, v in sorted(pins.items()) if n not in have]
    out += [f"{n}: locked {v}, installed {have[n]}" for n, v in sorted(pins.items()) if n in have and have[n] != v]
    out += [f"{n}: installed {v}, not in the lock" for n, v in sorted(have.items()) if n not in pins]
    return out


def main(argv: list[str]) -> int:
    if argv[1:] == ["write"]:
        print(f"# The tested dependency set of lextune[dev] (written by `make lock` on {date.today()}, "
              f"Python {platform.python_version()}, {platform.machine()}).")
        print("# `make demo`, `make test` and .ci/run install with `pip install -c requirements.lock`.")
        print("# torch is not here: the Makefile installs TORCH_SPEC (CPU build by default) or keeps yours.")
        for name, version in sorted(installed().items()):
            print(f"{name}=={version}")
        return 0
    if argv[1:] == ["check"]:
        diff = differences(read_lock(), installed())
        if diff:
            print(f"this environment ({sys.prefix}) is not the locked set of {LOCK.name}:", file=sys.stderr)
            for line in diff:
                print(f"  {line}", file=sys.stderr)
            print("remove it (make clean) and install again, or refresh the lock on purpose: make test-latest "
                  "&& make lock (README)", file=sys.stderr)
            return 1
        return 0
    print("usage: python scripts/lock.py write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
