"""How many units a model counts, before scoring it: what choosing S needs.

SWAP counts distinct patterns among V units over S samples, so it is at most min(V, 2^S): at
the paper's S = 16 a model of more than 65,536 units can saturate and a ranking of such models
says nothing. :func:`unit_count` reads V the way scoring will (the model exported when it is a
module, the graph prepared, the shapes inferred), without running it; :func:`samples_for`
turns the largest V into the smallest S that lifts the bound well above it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["MAX_SAMPLES", "MIN_SAMPLES", "samples_for", "unit_count"]

#: the paper's S: models small enough keep it
MIN_SAMPLES = 16
#: the largest S chosen (2^64 exceeds any V; the batch grows with S)
MAX_SAMPLES = 64
#: bits of margin above log2 V: 2^S ≥ 4 V leaves at most V/2^S ≈ 1/4 of a bound reached
MARGIN_BITS = 2


def unit_count(
    model: Any,
    inputs: np.ndarray,
    *,
    activations: str,
    input_name: str | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> int | None:
    """V of ``model`` (a ``torch.nn.Module``, an ONNX proto or path) on samples shaped like
    ``inputs``: the units of the activations scoring counts. None where it cannot be told
    without running the model (a shape lost to inference, or a model that fails: its scoring
    says why)."""
    from swapprobe.capture import graph
    from swapprobe.capture.prepare import prepare

    try:
        if _is_module(model):
            from swapprobe.capture.export import export_module

            model = export_module(model, inputs, extra=extra or {})
        prepared = prepare(
            graph.load_model(model),
            batch_size=len(inputs),
            sample_shape=inputs.shape[1:],
            input_name=input_name,
            activations=activations,
            extra_inputs=extra,
            name="model",
        )
    except Exception:  # a model that cannot be prepared fails, and says why, when scored
        return None
    counts = list(prepared.kinds.values())
    if not counts or any(count is None for count in counts):
        return None
    return int(sum(counts))  # type: ignore[arg-type]


def samples_for(units: Iterable[int]) -> int:
    """The smallest S from :data:`MIN_SAMPLES` at which 2^S is at least 2^MARGIN_BITS times
    the largest V (capped at :data:`MAX_SAMPLES`): no model's SWAP can reach its bound."""
    largest = max(units, default=1)
    wanted = math.ceil(math.log2(max(largest, 1))) + MARGIN_BITS
    return max(MIN_SAMPLES, min(MAX_SAMPLES, wanted))


def _is_module(model: object) -> bool:
    import sys

    if "torch" not in sys.modules:
        return False
    import torch.nn as nn

    return isinstance(model, nn.Module)
