"""Static tensor shapes of a graph, and which axis of each tensor is the batch.

Two jobs the session needs before its first run: the size of every pattern output (so that a
forward pass returns at most the pattern-memory budget) and the batch axis of every activation
(a ReLU on a learned ``(N, D)`` tensor carries no sample axis and must not be cut into fake
samples). onnx's default inference loses shapes after a ``Reshape`` whose target is computed
(``Shape``→``Gather``→``Concat``, as in a channel shuffle); with the batch fixed, its data
propagation recovers them. What it still cannot tell (a value-dependent size) the session
measures on its first run. onnxruntime's symbolic inference was tried and dropped: it found
nothing more on the models tried (a channel shuffle, Swin V2) and took 17 s per call on Swin V2.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx
from onnx import shape_inference

__all__ = ["UNKNOWN_AXIS", "batch_axes", "leading_batch_shapes", "static_shapes"]

#: the batch axis could not be told (shapes unknown): treated as the leading axis
UNKNOWN_AXIS = -1


def static_shapes(model: onnx.ModelProto, names: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Fully static shapes of ``names`` (those that can be inferred; the others are absent)."""
    from swapprobe.capture.graph import is_large, weightless

    wanted = list(dict.fromkeys(names))
    if is_large(model):  # over protobuf's limit: infer on the graph without its weights
        model = weightless(model)
    known = _collect(_onnx_inferred(model))
    return {name: known[name] for name in wanted if name in known}


def leading_batch_shapes(
    model: onnx.ModelProto, input_name: str, names: Sequence[str], batch: int
) -> dict[str, tuple[int, ...]] | None:
    """The shapes of ``names`` at ``batch`` samples, read off the value infos of a loaded
    model (inferred at a symbolic batch), or None unless every one of them is
    ``(batch_param, *static)`` with the data input's own batch parameter first.

    Why: such a tensor's batch axis is its first, at any batch size, so the two inferences at
    S and S + 1 (with data propagation, the costliest step of a small model's setup) would
    only confirm what the symbolic shapes already say: ``(S, *static)``, batch axis 0.
    """
    from swapprobe.capture.graph import input_shape, model_input

    dims = input_shape(model_input(model, input_name))
    batch_param = dims[0] if dims else None
    if not isinstance(batch_param, str):
        return None  # a fixed or unnamed batch: only the inferences at two sizes can tell
    graph = model.graph
    known = {value.name: value for value in [*graph.input, *graph.value_info, *graph.output]}
    found: dict[str, tuple[int, ...]] = {}
    for name in names:
        value = known.get(name)
        if value is None or not value.type.tensor_type.HasField("shape"):
            return None
        first, *rest = value.type.tensor_type.shape.dim or [None]
        if first is None or first.dim_param != batch_param:
            return None
        if not all(d.HasField("dim_value") and d.dim_value > 0 for d in rest):
            return None
        found[name] = (batch, *(int(d.dim_value) for d in rest))
    return found


def batch_axes(
    shapes: dict[str, tuple[int, ...]],
    other_shapes: dict[str, tuple[int, ...]],
    names: Sequence[str],
    batch: int,
    other_batch: int,
) -> dict[str, int | None]:
    """The batch axis of each tensor from its shapes at two batch sizes.

    The axis whose size is ``batch`` in one and ``other_batch`` in the other, all else equal;
    a leading axis that holds several rows per sample (``(S·T, F)``) counts as the batch axis,
    as rows stay sample-major. ``None``: the shape does not move with the batch (no sample
    axis). :data:`UNKNOWN_AXIS`: a shape is unknown or moves some other way.
    """
    found: dict[str, int | None] = {}
    for name in names:
        first, second = shapes.get(name), other_shapes.get(name)
        if first is None or second is None or len(first) != len(second):
            found[name] = UNKNOWN_AXIS
            continue
        moved = [axis for axis, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
        if not moved:
            found[name] = None
        elif len(moved) == 1 and (first[moved[0]], second[moved[0]]) == (batch, other_batch):
            found[name] = moved[0]
        elif (
            moved == [0]
            and first[0] % batch == 0
            and second[0] % other_batch == 0
            and first[0] // batch == second[0] // other_batch
        ):
            found[name] = 0
        else:
            found[name] = UNKNOWN_AXIS
    return found


def _collect(model: onnx.ModelProto | None) -> dict[str, tuple[int, ...]]:
    if model is None:
        return {}
    known: dict[str, tuple[int, ...]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tensor_type.shape.dim
        if all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            known[value.name] = tuple(int(d.dim_value) for d in dims)
    return known


def _onnx_inferred(model: onnx.ModelProto) -> onnx.ModelProto | None:
    try:
        return shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # an op onnx cannot infer must not block scoring
        try:
            return shape_inference.infer_shapes(model)
        except Exception:
            return None
