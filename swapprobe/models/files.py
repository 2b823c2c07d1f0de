"""Models in files: an ONNX file path, or ``FILE.py:FUNCTION`` (a Python file and a function
in it that returns a ``torch.nn.Module``; one that takes the choice recorder is a search space,
:mod:`swapprobe.searchspaces.custom`)."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swapprobe.errors import ModelLoadError
from swapprobe.models.refs import ModelRef, object_ref

__all__ = ["file_ref", "is_file", "load_function", "python_ref"]


def is_file(path: Path) -> bool:
    """Whether ``path`` is an existing file or folder; any OS error (a name too long for the
    file system, a path through a file) means it is not."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def file_ref(path: Path) -> ModelRef:
    """An ONNX file, keyed by the SHA-256 of its bytes."""
    if not is_file(path):
        raise ModelLoadError(f"model file not found: {path!s:.200}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory, not an ONNX model file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ModelRef(name=path.name, key=f"sha256:{digest}", load=lambda: path)


def load_function(path: Path, function: str) -> Callable[..., Any]:
    """The function ``function`` of the Python file ``path``, imported with its folder on
    ``sys.path`` (so sibling imports work)."""
    if not is_file(path):
        raise ModelLoadError(f"python file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"swapprobe_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        _exec(spec, module, path)
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ModelLoadError(f"{path} has no function {function!r}")
    return factory  # type: ignore[no-any-return]


def python_ref(
    path: Path, function: str, seed: int, factory: Callable[..., Any] | None = None
) -> ModelRef:
    """``FILE.py:FUNCTION``: the file is imported (:func:`load_function`; ``factory``: the
    function already imported) and the function called with no arguments under a torch seed
    derived from ``seed`` (so ``init="keep"`` scores the same weights every run)."""
    if factory is None:
        factory = load_function(path, function)
    built = _call_factory(factory, f"{path.name}:{function}", seed)
    ref = object_ref(built)
    return ModelRef(f"{path.name}:{function}", ref.key, ref.load)


def _exec(spec: Any, module: Any, path: Path) -> None:
    """Import the user's file; a torchvision built for another torch (which transformers
    imports) is repaired once (see :func:`~swapprobe.models.zoos.repair_torchvision`) and
    named when it is still the cause."""
    from swapprobe.models.zoos import install_advice, repair_torchvision, torchvision_mismatch

    for attempt in range(2):
        try:
            spec.loader.exec_module(module)
            return
        except Exception as error:
            if not torchvision_mismatch(error):
                raise ModelLoadError(
                    f"importing {path} failed: {type(error).__name__}: {error}"
                ) from None
            if attempt:
                raise ModelLoadError(
                    f"importing {path} failed: torchvision is installed but built for another "
                    "torch (operator torchvision::nms does not exist), and the import loads it; "
                    f"install the build made for this torch: {install_advice('torchvision')}, "
                    "or uninstall torchvision"
                ) from None
            repair_torchvision()


def _call_factory(factory: Callable[[], Any], label: str, seed: int) -> Any:
    try:
        needed = [
            p.name
            for p in inspect.signature(factory).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
    except (TypeError, ValueError):
        needed = []
    if needed:
        raise ModelLoadError(
            f"{label} needs arguments ({', '.join(needed)}); give a function that takes none "
            "and returns the model, or one that takes the choice recorder (a search space)"
        )
    import torch

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory()
    except Exception as error:
        raise ModelLoadError(f"{label} raised {type(error).__name__}: {error}") from None
