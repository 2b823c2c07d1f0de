"""A model not yet loaded (:class:`ModelRef`), its store key and its short name.

Every way a user names a model (:mod:`.schemes`) ends in one of these: a name for reports, a
key for stores, and how to load it.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from swapprobe.errors import ModelLoadError

__all__ = [
    "ModelRef",
    "arch_key",
    "arch_ref",
    "is_torch_module",
    "object_ref",
    "short_name",
    "text_key",
]


@dataclass(frozen=True)
class ModelRef:
    """A model not yet loaded: a name for reports, a key for stores, and how to get it."""

    name: str
    key: str
    load: Callable[[], Any]
    space: Any = None  # SearchSpace when this is an architecture
    arch: Hashable | None = None
    #: (H, W) the model is made for, when it says (a zoo model's own configuration)
    input_size: tuple[int, int] | None = None


def arch_key(space: Any, arch: Hashable) -> str:
    """The store key of an architecture: ``SPACE:canonical text`` (the one place it is made)."""
    return text_key(space, space.format(arch))


def text_key(space: Any, text: str) -> str:
    """The store key of an architecture given its canonical text (see :func:`arch_key`)."""
    return f"{space.name}:{text}"


def arch_ref(space: Any, arch: Hashable, name: str | None = None) -> ModelRef:
    """The reference of one architecture of ``space`` (``name`` labels it in reports)."""
    return ModelRef(
        name=name or short_name(space, arch),
        key=arch_key(space, arch),
        load=lambda: arch,
        space=space,
        arch=arch,
        input_size=space.defaults.input_size,  # the benchmark's image size, unless one is given
    )


def short_name(space: Any, arch: Hashable) -> str:
    """A name that fits a table cell: the space's index when it has one (``nb201#8617``, which
    is accepted back as input), else a hash of the text (``darts:8c6485ba``)."""
    index = getattr(space, "index", None)
    if callable(index):
        return f"{space.name}#{index(arch)}"
    digest = hashlib.sha1(space.format(arch).encode()).hexdigest()[:8]
    return f"{space.name}:{digest}"


def is_torch_module(model: object) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (without importing torch when it is not
    loaded: then nothing can be one)."""
    if "torch" not in sys.modules:
        return False
    import torch.nn as nn

    return isinstance(model, nn.Module)


def object_ref(obj: Any) -> ModelRef:
    """A model handed over as an object: an ``onnx.ModelProto`` or a ``torch.nn.Module``."""
    if "onnx" in sys.modules:
        import onnx

        if isinstance(obj, onnx.ModelProto):
            data = obj.SerializeToString(deterministic=True)
            return ModelRef(
                obj.graph.name or "model", "sha256:" + hashlib.sha256(data).hexdigest(), lambda: obj
            )
    if is_torch_module(obj):
        from swapprobe.capture.digest import module_digest  # the torch runner's own digest

        return ModelRef(type(obj).__name__, "torch:" + module_digest(obj), lambda: obj)
    raise ModelLoadError(
        f"cannot score an object of type {type(obj).__name__}: give an ONNX file (path, "
        "bytes or onnx.ModelProto), a torch.nn.Module, or a model spec such as "
        "'darts:random:4' or 'torchvision:resnet18'"
    )
