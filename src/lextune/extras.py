"""Optional dependencies: one helper imports them lazily and names the extra to install when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from lextune.errors import MissingExtraError


def optional_import(module: str, extra: str, purpose: str) -> ModuleType:
    """``module`` imported, or a :class:`MissingExtraError` in one format: ``<purpose> needs <package>
    (<why>): pip install "lextune[<extra>]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f'{purpose} needs {module.split(".")[0]} ({exc}): '
                                f'pip install "lextune[{extra}]"') from exc
