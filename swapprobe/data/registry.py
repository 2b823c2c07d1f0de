"""Source names → loaders: what :func:`~swapprobe.data.load_batch` consults before treating
``data`` as a path.

A new source is one module with a ``loader(name, request) -> Batch`` and one
:func:`register_source` call (the built-in ones are registered in ``swapprobe/data/__init__.py``).
This module imports no source, so every source module may use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from swapprobe.data.common import Batch, LoadRequest
from swapprobe.errors import SettingsError

Loader = Callable[[str, LoadRequest], Batch]
"""Called as ``loader(name, request)``: the registered (lower-case) name, the checked settings."""

_SOURCES: dict[str, Loader] = {}


def register_source(name: str, loader: Loader, *, replace: bool = False) -> None:
    """Make ``load_batch(name, ...)`` (any letter case) call ``loader(name, request)``.

    Args:
        name: the dataset name; stored lower-case. It must not contain a path separator, since a
            registered name is looked up before ``data`` is treated as a path. A name ending in
            ``:`` is a prefix: every name starting with it (``tokens:zipf``,
            ``tokens:/data/ids.npy``) goes to its loader, as :func:`source_name` spells it.
        loader: returns the :class:`~swapprobe.data.Batch`; it should end in
            ``swapprobe.data.common.finish_batch`` so the batch is checked and fingerprinted.
        replace: allow replacing a loader already registered under ``name``.

    Raises:
        SettingsError: an empty name or one with a path separator, a loader that is not
            callable, or a name already registered without ``replace=True``.
    """
    if not isinstance(name, str) or not name or "/" in name or os.sep in name:
        raise SettingsError(f"a source name must be a non-empty word without '/', got {name!r}")
    if not callable(loader):
        raise SettingsError(f"the loader for source {name!r} must be callable, got {loader!r}")
    key = name.lower()
    if key in _SOURCES and not replace:
        raise SettingsError(
            f"source {key!r} is already registered; pass replace=True to replace its loader"
        )
    _SOURCES[key] = loader


def find_source(name: str) -> Loader | None:
    """The loader registered under ``name`` (any letter case) or under its prefix, or None."""
    key = name.lower()
    if key in _SOURCES:
        return _SOURCES[key]
    prefix = _prefix(key)
    return _SOURCES.get(prefix) if prefix else None


def source_name(name: str) -> str:
    """The name a loader is called with: a registered name lower-cased; under a prefix, the
    prefix lower-cased and the rest as given (a path keeps its letter case)."""
    key = name.lower()
    if key in _SOURCES:
        return key
    prefix = _prefix(key)
    return prefix + name[len(prefix) :] if prefix else key


def _prefix(key: str) -> str:
    head, colon, _ = key.partition(":")
    return head + colon if colon and head + colon in _SOURCES else ""


def source_names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(_SOURCES)


def unknown_hint() -> str:
    """The hint of an unknown-dataset error: the registered names, or a path."""
    names = (name + "..." if name.endswith(":") else name for name in _SOURCES)
    return f"use {', '.join(names)}, or a path to an image folder or .npy/.npz file"
