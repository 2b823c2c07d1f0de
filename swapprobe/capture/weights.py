"""Initialisation schemes, drawn per repeat and per tensor name.

Every tensor's draw is seeded by ``(seed, repeat, crc32(name))``, so it depends neither on the
order tensors are visited in nor on the backend: the ONNX path and the torch path draw the
same numbers for a parameter of the same name and shape.

* ``gaussian`` — the reference (SWAP-NAS code): Conv/Linear weights ~ N(0, 1), biases 0,
  BatchNorm scale 1 and bias 0.
* ``kaiming`` — PyTorch's default layer initialisation computed from each weight's shape:
  weights and biases ~ U(−1/√fan_in, 1/√fan_in) (``kaiming_uniform_(a=√5)``), BN 1 and 0.
* ``keep`` — the weights as given; nothing is drawn, every repeat is identical.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Literal

import numpy as np

from swapprobe.capture.graph import ParameterInfo
from swapprobe.results import INIT_SCHEMES, check_scheme

__all__ = ["INIT_SCHEMES", "InitScheme", "check_scheme", "constant_value", "draw", "is_random"]

InitScheme = Literal["gaussian", "kaiming", "keep"]


def is_random(scheme: str, role: str) -> bool:
    """Whether a parameter of this role is re-drawn every repeat under ``scheme``."""
    check_scheme(scheme)
    if scheme == "gaussian":
        return role == "weight"
    if scheme == "kaiming":
        return role in ("weight", "bias")
    return False


def constant_value(scheme: str, role: str) -> float | None:
    """The fixed value a parameter takes under ``scheme`` (None: drawn, or kept as given)."""
    check_scheme(scheme)
    if scheme == "keep" or is_random(scheme, role):
        return None
    return {"bias": 0.0, "bn_scale": 1.0, "bn_bias": 0.0}.get(role)


def _rng(seed: int, repeat: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, repeat, zlib.crc32(name.encode())])


def draw(
    scheme: str, params: Iterable[ParameterInfo], seed: int, repeat: int
) -> dict[str, np.ndarray]:
    """The randomly drawn parameters of one repeat, by name (float32)."""
    out: dict[str, np.ndarray] = {}
    for param in params:
        if not is_random(scheme, param.role):
            continue
        rng = _rng(seed, repeat, param.name)
        if scheme == "gaussian":
            out[param.name] = rng.standard_normal(param.shape, dtype=np.float32)
        else:
            bound = 1.0 / np.sqrt(param.fan_in)
            out[param.name] = rng.uniform(-bound, bound, size=param.shape).astype(np.float32)
    return out
