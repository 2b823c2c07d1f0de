"""Typed errors: every mistake a user can make raises one of these, with a message to act on.

The CLI prints ``SwapprobeError`` messages in one line and exits non-zero; anything else is a
bug and keeps its traceback.

Messages speak in library terms. Where a message names a parameter the user should change, it
marks it in braces: ``{store}``, ``{resume=True}``, ``{reg='auto'}``. ``str(error)`` drops the
braces (``pass resume=True to continue it``), and :meth:`SwapprobeError.spelled` lets the CLI
write each term as its flag (``pass --resume to continue it``) without the library knowing the
flags. :attr:`SwapprobeError.option` is the first parameter named.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "DamagedStoreError",
    "DataError",
    "DiskFullError",
    "DownloadError",
    "ExportError",
    "InfeasibleError",
    "ModelLoadError",
    "NoActivationError",
    "SettingsError",
    "ShapeMismatchError",
    "StoreError",
    "SwapprobeError",
    "UnknownArchitectureError",
]


#: a parameter named in a message: ``{name}`` or ``{name=value}`` (value a Python literal)
TERM = re.compile(r"\{([a-z][a-z0-9_]*)(=(?:True|False|None|'[^'{}]*'|[0-9.]+))?\}")


class SwapprobeError(Exception):
    """Base class: raised for bad input or settings a user can fix."""

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(message, *args)
        self.message = message

    def __str__(self) -> str:
        return self.spelled(lambda name, value: name + (value or ""))

    @property
    def option(self) -> str | None:
        """The first parameter the message names (``"resume"``), or None."""
        found = TERM.search(self.message)
        return found.group(1) if found else None

    def spelled(self, spell: Callable[[str, str | None], str]) -> str:
        """The message with each marked parameter written by ``spell(name, "=value" or None)``."""
        return TERM.sub(lambda term: spell(term.group(1), term.group(2)), self.message)


class ModelLoadError(SwapprobeError):
    """Raised when a model file is missing, unreadable, or not a valid ONNX model."""


class NoActivationError(SwapprobeError):
    """Raised when a model has no activation (ReLU-like) node whose patterns could be read."""


class ShapeMismatchError(SwapprobeError):
    """Raised when the model's input shape does not fit the data, or the input is ambiguous."""


class ExportError(SwapprobeError):
    """Raised when a torch module cannot be exported to ONNX."""


class SettingsError(SwapprobeError):
    """Raised for invalid settings: batch size below 2, non-positive mu or sigma, and the like."""


class InfeasibleError(SettingsError):
    """No architecture drawn met a search's constraint (e.g. a size budget below the space's
    smallest member); ``draws`` is how many were drawn before giving up."""

    def __init__(self, message: str = "", draws: int = 0) -> None:
        super().__init__(message)
        self.draws = draws


class DataError(SwapprobeError):
    """Raised when a dataset is unknown, missing, malformed, or holds NaN/inf values."""


class DownloadError(DataError):
    """Raised when a dataset download fails or its checksum does not match."""


class StoreError(SwapprobeError):
    """Raised when an HDF5 store cannot be written, is damaged, or was made with other settings."""


class DamagedStoreError(StoreError):
    """Raised when a store's bytes are damaged (HDF5 cannot read them); says which records
    are still readable."""


class DiskFullError(SwapprobeError):
    """Raised when the disk (or quota) fills up while writing a store or an output file; what
    was complete before is kept."""


class UnknownArchitectureError(SwapprobeError):
    """Raised when an architecture string or search-space name cannot be parsed or is unknown."""
