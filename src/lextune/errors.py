"""Exception classes: every user-facing failure has its own type and a message that says what to do."""

from __future__ import annotations


class LextuneError(Exception):
    """Base class of lextune's errors."""


class ModelFormatError(LextuneError):
    """A model file or folder is not in the expected format."""


class ModelNotFoundError(LextuneError):
    """A model spec could not be resolved to a loadable model."""


class MissingExtraError(LextuneError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class InputFormatError(LextuneError):
    """Bad user input (a file, line and field are named in the message)."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            if field is not None:
                where += f" (field {field!r})"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.field = field


class OutputError(LextuneError):
    """An output path cannot be written (it names a file where a folder goes, or is not writable)."""


class ConfigError(LextuneError):
    """A configuration file or override is invalid."""
