"""``synthetic:SIZE``: the dead-leaves images drawn at a stated size, so that a space's
defaults can say which input it is scored on (``SpaceDefaults(data="synthetic:224")``).

Why here: a space's references state no input size (``ModelRef.input_size`` is set for zoo
models only) and the plain ``synthetic`` source draws 32×32 unless told otherwise; a ViT with
patch 16 would then see four patches. Registering the sized source under a ``synthetic:``
prefix keeps everything else as it is: ``synthetic:224`` is ``synthetic`` with
``input_size=(224, 224)``, ``synthetic:112x96`` with (112, 96). The source belongs in
:mod:`swapprobe.data` (it serves any image model); it is registered from here only until it
moves there, and only when no ``synthetic:`` source exists yet.
"""

from __future__ import annotations

import dataclasses

from swapprobe.data import Batch, find_source, register_source
from swapprobe.data.common import LoadRequest
from swapprobe.data.synthetic import load_synthetic
from swapprobe.errors import SettingsError

__all__ = ["SIZED_SYNTHETIC", "sized_synthetic_name"]

#: the prefix of the sized synthetic source
SIZED_SYNTHETIC = "synthetic:"


def sized_synthetic_name(height: int, width: int | None = None) -> str:
    """``synthetic:224`` (square) or ``synthetic:112x96``."""
    if width is None or width == height:
        return f"{SIZED_SYNTHETIC}{height}"
    return f"{SIZED_SYNTHETIC}{height}x{width}"


def _parse_size(name: str) -> tuple[int, int]:
    text = name[len(SIZED_SYNTHETIC) :].lower()
    height_text, sep, width_text = text.partition("x")
    try:
        height = int(height_text)
        width = int(width_text) if sep else height
    except ValueError:
        raise SettingsError(
            f"{name!r}: the sized synthetic source is synthetic:SIZE or synthetic:HxW "
            "(e.g. synthetic:224)"
        ) from None
    if height < 1 or width < 1:
        raise SettingsError(f"{name!r}: image sizes must be positive")
    return height, width


def load_sized_synthetic(name: str, request: LoadRequest) -> Batch:
    """The registered loader: ``synthetic`` at the size the name states (``--input-size``, when
    given, must agree: the name is the size)."""
    size = _parse_size(name)
    if request.input_size is not None and tuple(request.input_size) != size:
        shown = f"{request.input_size[0]}x{request.input_size[1]}"
        raise SettingsError(
            f"{name} draws {size[0]}x{size[1]} images but the input size asked is {shown}; "
            f"use {sized_synthetic_name(*request.input_size)} or drop the input size"
        )
    return load_synthetic("synthetic", dataclasses.replace(request, input_size=size))


def register_sized_synthetic() -> None:
    """Register ``synthetic:`` unless a source under that prefix already exists."""
    if find_source(f"{SIZED_SYNTHETIC}224") is None:
        register_source(SIZED_SYNTHETIC, load_sized_synthetic)
