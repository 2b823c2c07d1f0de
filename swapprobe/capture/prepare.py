"""Model → the graph a per-repeat session runs: a pure function of the model and the settings.

:func:`prepare` rewrites a loaded model once (fixed parameters baked, BN on batch statistics,
re-drawn weights as inputs, the batch fixed), chooses the activations read (of the selected
kinds, on tensors with a batch axis) and exposes their patterns as the only outputs. It opens
no session and runs nothing: :class:`~swapprobe.capture.session.PatternSession` opens the
result with :func:`~swapprobe.capture.runtime.open_session`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from swapprobe.capture import graph
from swapprobe.capture.activations import DEFAULT_ACTIVATIONS, select_kinds
from swapprobe.capture.feeds import as_declared, declared_dtype
from swapprobe.capture.fixed_batch import declared_batch, free_batch
from swapprobe.capture.shapes import UNKNOWN_AXIS, batch_axes, leading_batch_shapes, static_shapes
from swapprobe.capture.weights import constant_value, is_random
from swapprobe.errors import NoActivationError, ShapeMismatchError

__all__ = ["PreparedGraph", "bake_constants", "prepare", "units_by_kind"]


@dataclass(frozen=True)
class PreparedGraph:
    """A rewritten model ready for a session, and what it reads.

    ``model`` returns only the patterns (``output_names``, one per activation, in order);
    ``random`` are the parameters fed afresh each repeat (graph inputs), ``parameters`` all of
    the source's. ``sample_shapes`` is each activation's per-sample shape (None where shape
    inference lost it; measured on the first run), ``permutations`` the transpose that brings
    a batch axis that is not the first to the front. ``fixed_batch`` is the batch the source
    graph declared (None when symbolic): a forward pass that fails where it differs from S
    fails because the graph still fixes it. ``kinds``, ``not_counted`` and
    ``no_batch`` (kind → units; None where unknown) say what is counted and what is left out.
    """

    model: onnx.ModelProto
    output_names: list[str]
    activations: list[graph.Activation]
    sample_shapes: list[tuple[int, ...] | None]
    permutations: list[list[int] | None]
    parameters: list[graph.ParameterInfo]
    random: list[graph.ParameterInfo]
    input_name: str
    input_dtype: np.dtype
    extra: dict[str, np.ndarray]
    kinds: dict[str, int | None]
    not_counted: dict[str, int | None]
    no_batch: list[tuple[graph.Activation, int | None]]
    packed_in_graph: bool
    fixed_batch: int | None = None

    @property
    def param_count(self) -> int:
        """Θ of the graph: every parameter it holds."""
        return sum(int(np.prod(p.shape)) for p in self.parameters)


def prepare(
    model: onnx.ModelProto,
    *,
    batch_size: int,
    sample_shape: Sequence[int],
    init: str = "gaussian",
    input_name: str | None = None,
    activations: str = DEFAULT_ACTIVATIONS,
    extra_inputs: Mapping[str, np.ndarray] | None = None,
    pack_in_graph: bool = True,
    name: str = "model",
) -> PreparedGraph:
    """The graph :class:`~swapprobe.capture.session.PatternSession` runs (see its arguments);
    ``pack_in_graph``: the patterns leave the graph packed, 16 samples per float32, rather
    than as booleans. ``name`` is the model's name in errors.

    Raises:
        NoActivationError: no activation of the selected kinds, or none on a batch axis.
        ShapeMismatchError: a further input without S samples, or a graph input no data feeds.
    """
    parameters = graph.parameters(model)
    extra_inputs = dict(extra_inputs or {})
    data_input = graph.model_input(model, input_name, others=extra_inputs)
    data_name = data_input.name
    extra = _declared_extras(model, data_name, extra_inputs, batch_size)
    fixed_batch = declared_batch(model, data_name)
    model = free_batch(model, data_name)  # a batch baked into Reshapes runs S samples
    kinds = select_kinds(activations)

    # Fixed values first (biases 0, BN 1/0), so the BN rewrite can drop the no-op scaling.
    rewritten = bake_constants(model, parameters, init)
    rewritten = graph.batchnorm_on_batch_statistics(rewritten)
    random = [p for p in parameters if is_random(init, p.role)]
    rewritten = graph.parameters_as_inputs(rewritten, [p.name for p in random])
    unsized = rewritten
    sized = _sized(rewritten, data_name, extra, batch_size, sample_shape)
    selection = _select(
        unsized, sized, data_name, extra, kinds, activations, batch_size, sample_shape, name
    )
    rewritten, output_names = graph.expose_patterns(
        sized,
        selection.activations,
        packed_samples=batch_size if pack_in_graph else None,
        permutations=selection.permutations,
    )
    # Only the patterns are wanted: drop the model's own outputs so ORT prunes the tail.
    keep = [o for o in rewritten.graph.output if o.name in set(output_names)]
    del rewritten.graph.output[:]
    rewritten.graph.output.extend(keep)
    return PreparedGraph(
        model=rewritten,
        output_names=output_names,
        activations=selection.activations,
        sample_shapes=selection.sample_shapes,
        permutations=selection.permutations,
        parameters=parameters,
        random=random,
        input_name=data_name,
        input_dtype=declared_dtype(data_input),
        extra=extra,
        kinds=selection.kinds,
        not_counted=selection.not_counted,
        no_batch=selection.no_batch,
        packed_in_graph=pack_in_graph,
        fixed_batch=fixed_batch,
    )


def bake_constants(
    model: onnx.ModelProto, params: Sequence[graph.ParameterInfo], init: str
) -> onnx.ModelProto:
    """Parameters with a fixed value under ``init`` (biases 0, BN 1/0) set in the graph, so
    the BN rewrite drops the no-op scalings (both ONNX runners start from this); the model
    itself when none is fixed."""
    fixed = {p.name: constant_value(init, p.role) for p in params}
    fixed = {name: value for name, value in fixed.items() if value is not None}
    if not fixed:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for index, tensor in enumerate(out.graph.initializer):
        if tensor.name in fixed:
            dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
            value = np.full(tuple(tensor.dims), fixed[tensor.name], dtype=dtype)
            out.graph.initializer[index].CopyFrom(numpy_helper.from_array(value, tensor.name))
    return out


def units_by_kind(items: Iterable[tuple[str, int | None]]) -> dict[str, int | None]:
    """kind → summed units, in first-seen order (None when any unit count is unknown)."""
    found: dict[str, int | None] = {}
    for kind, units in items:
        if kind not in found:
            found[kind] = units
        else:
            previous = found[kind]
            found[kind] = None if previous is None or units is None else previous + units
    return found


def _sized(
    model: onnx.ModelProto,
    input_name: str,
    extra: Mapping[str, np.ndarray],
    batch: int,
    sample_shape: Sequence[int],
) -> onnx.ModelProto:
    """The data input and every further input fixed to ``batch`` samples."""
    sized = graph.set_batch_size(model, input_name, batch, sample_shape)
    for name, array in extra.items():
        sized = graph.set_batch_size(sized, name, batch, array.shape[1:])
    return sized


@dataclass(frozen=True)
class _Selection:
    activations: list[graph.Activation]
    sample_shapes: list[tuple[int, ...] | None]
    permutations: list[list[int] | None]
    kinds: dict[str, int | None]
    not_counted: dict[str, int | None]
    no_batch: list[tuple[graph.Activation, int | None]]


def _select(
    unsized: onnx.ModelProto,
    sized: onnx.ModelProto,
    input_name: str,
    extra: Mapping[str, np.ndarray],
    kinds: frozenset[str],
    selector: str,
    batch_size: int,
    sample_shape: Sequence[int],
    name: str,
) -> _Selection:
    """Choose the activations read: of the selected kinds, on tensors with a batch axis.

    The batch axis is found from the shapes inferred at S and S + 1 samples: a tensor
    whose shape does not move with S (a ReLU on a learned ``(N, D)`` tensor), or that is
    not computed from the data input at all, carries no sample and is left out; one whose
    batch axis is not the first is transposed.
    """
    present = graph.all_activations(sized)
    if not any(activation.op in kinds for activation in present):
        graph.find_activations(sized, selector)  # raises, naming what is there
    tensors = [activation.tensor for activation in present]
    leading = leading_batch_shapes(unsized, input_name, tensors, batch_size)
    if leading is not None:  # read off the loaded model's shapes: no inference needed
        shapes: dict[str, tuple[int, ...]] = leading
        axes: dict[str, int | None] = dict.fromkeys(tensors, 0)
    else:
        shapes = static_shapes(sized, tensors)
        other = _sized(unsized, input_name, extra, batch_size + 1, sample_shape)
        axes = batch_axes(
            shapes, static_shapes(other, tensors), tensors, batch_size, batch_size + 1
        )
    # What the shapes cannot tell (lost ones), the graph can: not computed from the input.
    from_input = graph.downstream(sized, input_name)
    for extra_name in extra:
        from_input |= graph.downstream(sized, extra_name)
    axes |= {tensor: None for tensor in tensors if tensor not in from_input}
    chosen: list[graph.Activation] = []
    permutations: list[list[int] | None] = []
    sample_shapes: list[tuple[int, ...] | None] = []
    not_counted: list[tuple[str, int | None]] = []
    no_batch: list[tuple[graph.Activation, int | None]] = []
    for activation in present:
        shape, axis = shapes.get(activation.tensor), axes[activation.tensor]
        if axis is None:
            units = None if shape is None else int(np.prod(shape))
            if activation.op in kinds:
                no_batch.append((activation, units))
            else:
                not_counted.append((activation.op, units))
            continue
        axis = 0 if axis == UNKNOWN_AXIS else axis
        sample = None
        if shape is not None:
            rest = [size for index, size in enumerate(shape) if index != axis]
            lead = shape[axis] // batch_size if axis == 0 else 1
            sample = (lead, *rest) if lead > 1 else tuple(rest)
        if activation.op not in kinds:
            not_counted.append((activation.op, None if sample is None else _size(sample)))
            continue
        chosen.append(activation)
        sample_shapes.append(sample)
        rank = None if shape is None else len(shape)
        permutations.append(
            None if axis == 0 or rank is None else [axis, *(i for i in range(rank) if i != axis)]
        )
    if not chosen:
        left = ", ".join(f"{a.op} {a.name}" for a, _ in no_batch)
        raise NoActivationError(
            f"{name}: every counted activation ({left}) acts on a tensor without a "
            "batch axis (learned parameters, not samples): its patterns cannot depend on "
            "the input"
        )
    return _Selection(
        activations=chosen,
        sample_shapes=sample_shapes,
        permutations=permutations,
        kinds=units_by_kind(
            (a.op, None if s is None else _size(s))
            for a, s in zip(chosen, sample_shapes, strict=True)
        ),
        not_counted=units_by_kind(not_counted),
        no_batch=no_batch,
    )


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def _declared_extras(
    model: onnx.ModelProto, input_name: str, extra: Mapping[str, np.ndarray], batch_size: int
) -> dict[str, np.ndarray]:
    """The further inputs the graph declares, in its dtypes; every other graph input must be
    one of them.

    Raises:
        ShapeMismatchError: a further input without S samples, or a graph input no data feeds.
    """
    declared = {value.name: value for value in graph.data_inputs(model)}
    fed: dict[str, np.ndarray] = {}
    for name, array in extra.items():
        if name == input_name or name not in declared:
            continue
        if array.ndim < 1 or array.shape[0] != batch_size:
            raise ShapeMismatchError(
                f"input {name!r} has shape {array.shape}; it needs {batch_size} samples"
            )
        fed[name] = as_declared(array, declared_dtype(declared[name]), name)
    missing = [name for name in declared if name != input_name and name not in fed]
    if missing:
        given = ", ".join([input_name, *fed])
        several = len(missing) > 1
        raise ShapeMismatchError(
            f"model input{'s' if several else ''} {', '.join(map(repr, missing))} "
            f"get{'' if several else 's'} no data (the data feeds {given}); give "
            f"{'them as further named inputs' if several else 'it as a further named input'} "
            "of the batch (Batch.extra)"
        )
    return fed
