"""What a user may hand over as "a model", resolved to something the Evaluator scores.

* an ONNX file path (``resnet.onnx``);
* ``SPACE:ARCH`` — an architecture of a built-in search space in its text form
  (``nb201:|nor_conv_3x3~0|+|...|``, ``darts:Genotype(...)``), or ``SPACE:random:N`` for N
  seeded random samples, ``SPACE:all`` for every architecture of an enumerable space
  (NAS-Bench-201's 15,625), or ``darts:DARTS_V2``;
* ``FILE.py:FUNCTION`` — a Python file and a function in it that returns a ``torch.nn.Module``;
* from Python also a ``torch.nn.Module`` or an ``onnx.ModelProto``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swapprobe.errors import ModelLoadError, UnknownArchitectureError

__all__ = ["ModelRef", "resolve_models"]


@dataclass(frozen=True)
class ModelRef:
    """A model not yet loaded: a name for reports, a key for stores, and how to get it."""

    name: str
    key: str
    load: Callable[[], Any]
    space: Any = None  # SearchSpace when this is an architecture
    arch: Hashable | None = None


def resolve_models(specs: Iterable[Any], *, seed: int = 0) -> list[ModelRef]:
    """Turn model specs into :class:`ModelRef` s, failing early on any that cannot work.

    Raises:
        ModelLoadError: a missing file, or a ``.py`` spec whose function is missing.
        UnknownArchitectureError: an unknown space or unparsable architecture.
    """
    refs: list[ModelRef] = []
    for spec in specs:
        refs.extend(_resolve(spec, seed))
    return refs


def _resolve(spec: Any, seed: int) -> list[ModelRef]:
    if isinstance(spec, tuple) and len(spec) == 2:
        space, arch = spec
        return [_arch_ref(space, arch)]
    if not isinstance(spec, (str, Path)):
        return [_object_ref(spec)]
    text = str(spec)
    path = Path(text)
    if path.suffix.lower() == ".onnx" or path.exists():
        return [_file_ref(path)]
    head, _, rest = text.partition(":")
    if rest and head.endswith(".py"):
        return [_python_ref(Path(head), rest)]
    if rest:
        from swapprobe.searchspaces import get_space

        space = get_space(head)
        if rest == "all":
            enumerate_all = getattr(space, "enumerate", None)
            if not callable(enumerate_all):
                raise UnknownArchitectureError(
                    f"{space.name} cannot be enumerated; use {space.name}:random:N"
                )
            return [_arch_ref(space, arch) for arch in enumerate_all()]
        if rest.startswith("random"):
            count = _random_count(rest)
            rng = np.random.default_rng(seed)
            return [_arch_ref(space, space.sample(rng)) for _ in range(count)]
        arch, named = _named_or_parsed(space, rest)
        return [_arch_ref(space, arch, name=f"{space.name}:{rest}" if named else None)]
    raise ModelLoadError(
        f"model file not found: {text} (a model is an .onnx file, SPACE:ARCH, SPACE:random:N "
        "or FILE.py:FUNCTION)"
    )


def _named_or_parsed(space: Any, text: str) -> tuple[Hashable, bool]:
    """``DARTS_V2``-style names are module constants of the space's file; else parse the text.

    Returns the architecture and whether ``text`` was such a name (it then names the model in
    reports, rather than a hash of the architecture).
    """
    if text.isidentifier():
        module = sys.modules.get(type(space).__module__)
        named = getattr(module, text, None)
        if named is not None:
            return space.parse(space.format(named)), True
    return space.parse(text), False


def _random_count(rest: str) -> int:
    _, _, count = rest.partition(":")
    try:
        value = int(count or 1)
    except ValueError:
        raise UnknownArchitectureError(f"'random:{count}' needs a whole number") from None
    if value < 1:
        raise UnknownArchitectureError("random:N needs N ≥ 1")
    return value


def _file_ref(path: Path) -> ModelRef:
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory, not an ONNX model file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ModelRef(name=path.name, key=f"sha256:{digest}", load=lambda: path)


def _arch_ref(space: Any, arch: Hashable, name: str | None = None) -> ModelRef:
    text = space.format(arch)
    return ModelRef(
        name=name or short_name(space, arch),
        key=f"{space.name}:{text}",
        load=lambda: arch,
        space=space,
        arch=arch,
    )


def short_name(space: Any, arch: Hashable) -> str:
    """A name that fits a table cell: the space's index when it has one, else a text hash."""
    index = getattr(space, "index", None)
    if callable(index):
        return f"{space.name}#{index(arch)}"
    digest = hashlib.sha1(space.format(arch).encode()).hexdigest()[:8]
    return f"{space.name}:{digest}"


def _object_ref(obj: Any) -> ModelRef:
    try:
        import onnx

        if isinstance(obj, onnx.ModelProto):
            data = obj.SerializeToString(deterministic=True)
            return ModelRef(
                obj.graph.name or "model", "sha256:" + hashlib.sha256(data).hexdigest(), lambda: obj
            )
    except ImportError:  # pragma: no cover
        pass
    from swapprobe.evaluate import _is_torch_module, _module_digest

    if _is_torch_module(obj):
        return ModelRef(type(obj).__name__, "torch:" + _module_digest(obj), lambda: obj)
    raise ModelLoadError(
        f"cannot score a {type(obj).__name__}: give an ONNX file or a torch.nn.Module"
    )


def _python_ref(path: Path, function: str) -> ModelRef:
    if not path.exists():
        raise ModelLoadError(f"python file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"swapprobe_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ModelLoadError(f"importing {path} failed: {type(error).__name__}: {error}") from None
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ModelLoadError(f"{path} has no function {function!r}")
    built = factory()
    ref = _object_ref(built)
    return ModelRef(f"{path.name}:{function}", ref.key, ref.load)
