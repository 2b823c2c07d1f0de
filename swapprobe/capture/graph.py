"""Pure ONNX graph surgery: every function takes a ModelProto and returns a new one.

Which activations count is :mod:`swapprobe.capture.activations`' job (every gate by default,
``activations="relu"`` for the ReLU family alone); each unit's bit is ``1[pre-activation > 0]``.
For Relu and Clip(0, ·) that is read as ``output > 0`` (so ORT can still fuse Conv+Relu).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from swapprobe.capture.activations import (
    DEFAULT_ACTIVATIONS,
    RELU_KINDS,
    Activation,
    find_gates,
    select_kinds,
)
from swapprobe.capture.folding import FoldedBatchNormWarning
from swapprobe.errors import ModelLoadError, NoActivationError, ShapeMismatchError

__all__ = [
    "ACTIVATION_OPS",
    "Activation",
    "FoldedBatchNormWarning",
    "ParameterInfo",
    "all_activations",
    "batchnorm_on_batch_statistics",
    "downstream",
    "expose_patterns",
    "find_activations",
    "is_large",
    "join_sample_groups",
    "load_model",
    "model_digest",
    "model_input",
    "parameters",
    "parameters_as_inputs",
    "set_batch_size",
    "weightless",
]

ACTIVATION_OPS = RELU_KINDS  # the ReLU family (kept for callers of the old name)
PATTERN_SUFFIX = "__swapprobe_pattern"


@dataclass(frozen=True)
class ParameterInfo:
    """A trainable initializer and its role, as the initialisation schemes need it.

    ``role`` is ``weight`` (Conv/Gemm/MatMul weight), ``bias``, ``bn_scale`` or ``bn_bias``;
    ``fan_in`` is the number of inputs per output unit (for the kaiming scheme).
    """

    name: str
    role: str
    shape: tuple[int, ...]
    fan_in: int


# --- loading -------------------------------------------------------------------------
def load_model(source: str | Path | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """Load and validate an ONNX model (path, bytes or proto), with shapes inferred.

    Raises:
        ModelLoadError: missing file, not ONNX, or fails the ONNX checker.
    """
    path: Path | None = None
    if isinstance(source, onnx.ModelProto):
        model = source
        label = model.graph.name or "model"
    elif isinstance(source, bytes):
        model = _parse_bytes(source, "model bytes")
        label = "model bytes"
    else:
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise ModelLoadError(f"model file not found: {path}")
        if path.is_dir():
            raise ModelLoadError(f"{path} is a directory, not an ONNX model file")
        try:
            model = onnx.load(str(path))
        except Exception as error:  # onnx raises DecodeError, google.protobuf errors, ...
            raise ModelLoadError(f"{path} is not an ONNX model ({type(error).__name__})") from None
    if not model.graph.node:
        raise ModelLoadError(f"{label} is not an ONNX model (empty graph)")
    large = is_large(model)
    try:
        # a model over protobuf's limit is checked from its file (external data and all)
        if not large:
            onnx.checker.check_model(model)
        elif path is not None:
            onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise ModelLoadError(f"{label} fails the ONNX checker: {first}") from None
    if large:
        return model  # shapes are inferred later on a weightless copy (capture.shapes)
    try:
        return shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a convenience; an unusual op must not block us
        return model


def _parse_bytes(data: bytes, label: str) -> onnx.ModelProto:
    try:
        return onnx.load_from_string(data)
    except Exception:
        raise ModelLoadError(f"{label} is not an ONNX model") from None


#: protobuf cannot serialise a message of 2 GiB or more: larger models keep their weights in
#: ONNX external data (a file beside the graph) on their way to onnxruntime
INLINE_LIMIT = (1 << 31) - (1 << 24)


def is_large(model: onnx.ModelProto) -> bool:
    """True when ``model`` is too large to serialise in one piece.

    protobuf cannot even measure a message past 2 GiB (``ByteSize`` raises ``EncodeError``):
    that answer is "large" too.
    """
    try:
        return model.ByteSize() >= INLINE_LIMIT
    except Exception:  # google.protobuf.message.EncodeError: "Failed to serialize proto"
        return True


def model_digest(model: onnx.ModelProto) -> str:
    """sha256 of the serialised model: identifies it in stores and reports.

    A model over the protobuf limit is hashed in parts (each initializer, then the rest).
    """
    if not is_large(model):
        return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
    digest = hashlib.sha256()
    for tensor in model.graph.initializer:
        if len(tensor.raw_data) < INLINE_LIMIT:
            digest.update(tensor.SerializeToString(deterministic=True))
        else:  # a tensor past protobuf's limit itself: its header, then its bytes
            header = onnx.TensorProto(
                name=tensor.name, data_type=tensor.data_type, dims=tensor.dims
            )
            digest.update(header.SerializeToString(deterministic=True))
            digest.update(tensor.raw_data)
    skeleton = onnx.GraphProto()
    skeleton.node.extend(model.graph.node)
    skeleton.input.extend(model.graph.input)
    skeleton.output.extend(model.graph.output)
    digest.update(skeleton.SerializeToString(deterministic=True))
    return digest.hexdigest()


def weightless(model: onnx.ModelProto, keep_elements: int = 4096) -> onnx.ModelProto:
    """A copy whose large initializers keep their type and dims but no data: enough for shape
    inference (which reads values only of small shape tensors), and small enough to serialise.
    """
    source = model.graph
    shell = onnx.GraphProto(name=source.name)
    shell.node.extend(source.node)
    shell.input.extend(source.input)
    shell.output.extend(source.output)
    shell.value_info.extend(source.value_info)
    for tensor in source.initializer:
        if int(np.prod(tensor.dims)) <= keep_elements:
            shell.initializer.append(tensor)
        else:
            shell.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    out = onnx.ModelProto(ir_version=model.ir_version, graph=shell)
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    return out


# --- indexes -------------------------------------------------------------------------
def _initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {init.name: init for init in graph.initializer}


def _constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The value of a tensor that is an initializer or a Constant node output, else None.

    ``Cast`` and ``Identity`` of a constant are followed: torch exports ``F.relu6`` as
    ``Clip(x, Cast(Constant 0), Cast(Constant 6))``.
    """
    if not name:
        return None
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if not node.output or node.output[0] != name:
            continue
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    return numpy_helper.to_array(attribute.t)
        elif node.op_type in ("Cast", "Identity") and node.input:
            return _constant_value(graph, node.input[0])
        return None
    return None


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def data_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs that are not initializers: what a run must feed."""
    initializer_names = {init.name for init in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializer_names]


def model_input(
    model: onnx.ModelProto, name: str | None = None, *, others: Iterable[str] = ()
) -> onnx.ValueInfoProto:
    """The data input (not an initializer); ``name`` picks one when there are several, else
    the one input not among ``others`` (the further named inputs the data brings).

    Raises:
        ShapeMismatchError: no data input, an unknown name, or several inputs and no name.
    """
    inputs = data_inputs(model)
    if name is not None:
        for value in inputs:
            if value.name == name:
                return value
        known = ", ".join(value.name for value in inputs) or "none"
        raise ShapeMismatchError(f"model has no input named {name!r}; its inputs: {known}")
    if not inputs:
        raise ShapeMismatchError("model has no data input")
    named = set(others)
    if len(inputs) > 1 and named:
        rest = [value for value in inputs if value.name not in named]
        if len(rest) == 1:
            return rest[0]
    if len(inputs) > 1:
        known = ", ".join(value.name for value in inputs)
        raise ShapeMismatchError(
            f"model has {len(inputs)} inputs ({known}); choose the data input with {{input_name}}"
        )
    return inputs[0]


def input_shape(value: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
    """Static dims as ints, symbolic ones as their name (or None)."""
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)


# --- activations ---------------------------------------------------------------------
def all_activations(model: onnx.ModelProto) -> list[Activation]:
    """Every gate of any kind in graph order, whatever the selector (for reports)."""
    graph = model.graph
    constants = _constant_names(graph)
    return find_gates(graph, constants.__contains__, lambda node: _clip_is_relu(graph, node))


def find_activations(
    model: onnx.ModelProto, activations: str = DEFAULT_ACTIVATIONS
) -> list[Activation]:
    """The activations of the kinds ``activations`` selects (see
    :func:`~swapprobe.capture.activations.select_kinds`), in graph order.

    Raises:
        NoActivationError: when there is none.
        SettingsError: an unknown kind in ``activations``.
    """
    kinds = select_kinds(activations)
    present = all_activations(model)
    found = [activation for activation in present if activation.op in kinds]
    if not found:
        ops = sorted({node.op_type for node in model.graph.node})
        others = sorted({activation.op for activation in present})
        hint = f"; present but not counted: {', '.join(others)}" if others else ""
        raise NoActivationError(
            f"model has no supported activation of the kinds counted (activations="
            f"{activations!r}: {', '.join(sorted(kinds))}){hint}; its ops: {', '.join(ops)}"
        )
    return found


def downstream(model: onnx.ModelProto, name: str) -> set[str]:
    """Every tensor computed from ``name`` (the data input): an activation outside this set
    reads parameters alone, carries no sample, and cannot depend on the input."""
    reached = {name}
    for node in model.graph.node:  # nodes are topologically sorted (the checker demands it)
        if any(tensor in reached for tensor in node.input):
            reached.update(out for out in node.output if out)
    return reached


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    """Initializers, Constant outputs, and Cast/Identity of them: the tensors fixed at export."""
    names = {init.name for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" or (
            node.op_type in ("Cast", "Identity") and node.input and node.input[0] in names
        ):
            names.update(out for out in node.output if out)
    return names


def _attribute(node: onnx.NodeProto, name: str, default: float) -> float:
    for attribute in node.attribute:
        if attribute.name == name:
            return float(helper.get_attribute_value(attribute))
    return default


def _clip_is_relu(graph: onnx.GraphProto, node: onnx.NodeProto) -> bool:
    """Clip whose lower bound is exactly 0 (opset ≥ 11: input 1; older: attribute)."""
    if len(node.input) > 1 and node.input[1]:
        value = _constant_value(graph, node.input[1])
        return value is not None and float(np.asarray(value).reshape(-1)[0]) == 0.0
    return _attribute(node, "min", -np.inf) == 0.0


def expose_patterns(
    model: onnx.ModelProto,
    activations: Sequence[Activation],
    *,
    packed_samples: int | None = None,
    permutations: Sequence[Sequence[int] | None] | None = None,
) -> tuple[onnx.ModelProto, list[str]]:
    """Add one pattern output per activation; returns the new model and output names in order.

    ``permutations[i]``, when given, transposes activation i's bits so that its batch axis
    comes first (a ``(tokens, batch, features)`` tensor is read per sample, not per token).

    By default the output is ``Greater(tensor, 0)`` (BOOL, the activation's shape) and the host
    packs the bits. With ``packed_samples=S`` the packing happens in the graph instead, so that
    only bits leave the execution provider (the CUDA path) and no layer's booleans are ever
    returned whole (large models on any device): the 0/1 pattern, cast to float and viewed as
    ``(S, V_layer)``, is multiplied by a ``(G, S)`` matrix whose row ``g`` weighs sample
    ``16g + i`` by ``2^i``. Each output entry is a sum of distinct powers of two below 2^16,
    exact in float32 whatever the summation order (and with TF32 inputs, where 0, 1 and powers
    of two are exact). The output is float32 ``(G, V_layer)`` with G = ⌈S/16⌉ sample groups;
    :func:`join_sample_groups` makes the words of :func:`~swapprobe.patterns.pack_sample_bits`
    from it, bit for bit. The transient cost per layer is one float copy of its pattern.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    zero_name = "swapprobe__zero"
    graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), zero_name))
    if packed_samples is not None:
        _add_packing_constants(graph, packed_samples)
    names = []
    readers: dict[str, list[onnx.NodeProto]] = {}  # tensor → the pattern nodes that read it
    for index, activation in enumerate(activations):
        output = f"{activation.name}{PATTERN_SUFFIX}"
        node_name = f"swapprobe_pattern_{index}"
        bits = output if packed_samples is None else f"{output}__bits"
        perm = permutations[index] if permutations is not None else None
        greater = bits if perm is None else f"{output}__unordered"
        nodes = [
            helper.make_node("Greater", [activation.tensor, zero_name], [greater], name=node_name)
        ]
        if perm is not None:
            nodes.append(
                helper.make_node(
                    "Transpose", [greater], [bits], perm=list(perm), name=node_name + "_t"
                )
            )
        if packed_samples is None:
            graph.output.append(helper.make_tensor_value_info(output, TensorProto.BOOL, None))
        else:
            nodes += _packing_nodes(bits, output, node_name)
            graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, None))
        readers.setdefault(activation.tensor, []).extend(nodes)
        names.append(output)
    # Each pattern right after the node that makes its tensor: onnxruntime runs nodes in this
    # order, and patterns appended at the end would keep every activation's floats alive until
    # then (ResNet-50 at S = 64: 2.4 GB instead of one layer at a time).
    ordered: list[onnx.NodeProto] = []
    for node in graph.node:
        ordered.append(node)
        for tensor in node.output:
            ordered.extend(readers.pop(tensor, []))
    for nodes in readers.values():  # graph inputs (or initializers) read directly
        ordered[:0] = nodes
    del graph.node[:]
    graph.node.extend(ordered)
    out.producer_name = "swapprobe"
    return out, names


#: samples per float32 group of the in-graph packing (sums stay below 2^16, exact in float32)
GROUP_BITS = 16


def _add_packing_constants(graph: onnx.GraphProto, samples: int) -> None:
    groups = -(-samples // GROUP_BITS)
    weights = np.zeros((groups, samples), dtype=np.float32)
    sample = np.arange(samples)
    weights[sample // GROUP_BITS, sample] = np.exp2(sample % GROUP_BITS)
    graph.initializer.extend(
        [
            numpy_helper.from_array(weights, "swapprobe__group_weights"),
            numpy_helper.from_array(np.asarray([samples, -1], np.int64), "swapprobe__flat"),
        ]
    )


def _packing_nodes(bits: str, output: str, name: str) -> list[onnx.NodeProto]:
    """(S, …) BOOL → (G, V) float32 sample groups, inside the graph."""
    return [
        helper.make_node("Cast", [bits], [f"{output}__f"], to=TensorProto.FLOAT, name=name + "_c"),
        helper.make_node(
            "Reshape", [f"{output}__f", "swapprobe__flat"], [f"{output}__sv"], name=name + "_r"
        ),
        helper.make_node(
            "MatMul", ["swapprobe__group_weights", f"{output}__sv"], [output], name=name + "_m"
        ),
    ]


def join_sample_groups(groups: np.ndarray) -> np.ndarray:
    """(G, V) float32 sample groups from the graph → (V, W) uint64 words (sample s → bit s % 64
    of word s // 64, as :func:`~swapprobe.patterns.pack_sample_bits`)."""
    per_word = 64 // GROUP_BITS
    count, units = groups.shape
    values = np.zeros((-(-count // per_word) * per_word, units), dtype=np.uint64)
    values[:count] = groups
    values = values.reshape(-1, per_word, units)
    words = values[:, 0].copy()
    for part in range(1, per_word):
        words |= values[:, part] << np.uint64(GROUP_BITS * part)
    return np.ascontiguousarray(words.T)


# --- batch size ----------------------------------------------------------------------
def set_batch_size(
    model: onnx.ModelProto, input_name: str, batch: int, sample_shape: Sequence[int]
) -> onnx.ModelProto:
    """Fix the data input to ``(batch, *sample_shape)``, checking the non-batch dims fit.

    Raises:
        ShapeMismatchError: when the model's static per-sample shape differs from the data's.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    value = model_input(out, input_name)
    dims = input_shape(value)
    expected = tuple(sample_shape)
    if len(dims) != len(expected) + 1:
        raise ShapeMismatchError(
            f"model input {input_name!r} has rank {len(dims)} {_fmt(dims)}, "
            f"data samples have shape {expected}"
        )
    for got, want in zip(dims[1:], expected, strict=True):
        if isinstance(got, int) and got > 0 and got != want:
            raise ShapeMismatchError(
                f"model input {input_name!r} expects samples of shape {_fmt(dims[1:])}, "
                f"data has {expected}; resize with {{input_size}} (images), "
                "give {seq_len} (tokens), or use other data"
            )
    tensor_shape = value.type.tensor_type.shape
    del tensor_shape.dim[:]
    for size in (batch, *expected):
        tensor_shape.dim.add().dim_value = int(size)
    # Outputs and intermediate shapes may still carry the old batch: let ORT re-infer them.
    for output in out.graph.output:
        if output.type.tensor_type.HasField("shape"):
            output.type.tensor_type.ClearField("shape")
    del out.graph.value_info[:]
    return out


def _fmt(dims: Iterable[int | str | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


# --- batch norm ----------------------------------------------------------------------
def batchnorm_on_batch_statistics(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every BatchNormalization by explicit batch-statistics ops.

    y = (x − mean_b) / sqrt(var_b + ε) · scale + bias, mean and (biased) variance over every
    axis but the channel axis 1 — what a torch BN layer computes in training mode. Written in
    plain ops so every execution provider runs it (the CUDA EP rejects ``training_mode=1``).
    Running statistics are no longer read.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    opset = _opset(out)
    ranks = _tensor_ranks(
        out, [n.input[0] for n in graph.node if n.op_type == "BatchNormalization"]
    )
    initializers = _initializers(graph)
    nodes: list[onnx.NodeProto] = []
    extra_initializers: list[onnx.TensorProto] = []
    replaced = 0
    for node in graph.node:
        if node.op_type != "BatchNormalization":
            nodes.append(node)
            continue
        x, scale, bias = node.input[0], node.input[1], node.input[2]
        y = node.output[0]
        if len(node.output) > 1 and any(node.output[1:]):
            used = {name for other in graph.node for name in other.input}
            if used & set(node.output[1:]):
                raise ShapeMismatchError(
                    f"BatchNormalization {node.name or y!r} feeds its running statistics onward; "
                    "export the model in inference mode"
                )
        eps = _attribute(node, "epsilon", 1e-5)
        rank = ranks.get(x, 4)
        axes = [0, *range(2, rank)]
        p = f"swapprobe_bn{replaced}"
        trailing = [-1] + [1] * (rank - 2)
        extra_initializers += [
            numpy_helper.from_array(np.asarray(eps, np.float32), f"{p}_eps"),
            numpy_helper.from_array(np.asarray(trailing, np.int64), f"{p}_cshape"),
        ]
        # Passes over the activation are what cost: mean, x − mean, (x − mean)², variance,
        # one scaling multiply (+ one add for a non-zero shift). Per-channel factors are
        # formed on (C, 1, 1) tensors; torch likewise multiplies by 1/sqrt(var + ε).
        nodes += _reduce_mean(x, f"{p}_mean", axes, opset, p + "_m", extra_initializers)
        nodes += [
            helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_d"], name=p + "_sub"),
            helper.make_node("Mul", [f"{p}_d", f"{p}_d"], [f"{p}_d2"], name=p + "_sq"),
        ]
        nodes += _reduce_mean(f"{p}_d2", f"{p}_var", axes, opset, p + "_v", extra_initializers)
        nodes += [
            helper.make_node("Add", [f"{p}_var", f"{p}_eps"], [f"{p}_ve"], name=p + "_addeps"),
            helper.make_node("Sqrt", [f"{p}_ve"], [f"{p}_std"], name=p + "_sqrt"),
            helper.make_node("Reciprocal", [f"{p}_std"], [f"{p}_inv"], name=p + "_inv"),
        ]
        unit_scale = _is_constant(initializers, scale, 1.0)
        zero_shift = _is_constant(initializers, bias, 0.0)
        factor = f"{p}_inv"
        if not unit_scale:
            nodes += [
                helper.make_node("Reshape", [scale, f"{p}_cshape"], [f"{p}_s"], name=p + "_rs"),
                helper.make_node("Mul", [f"{p}_inv", f"{p}_s"], [f"{p}_f"], name=p + "_f"),
            ]
            factor = f"{p}_f"
        if zero_shift:
            nodes.append(helper.make_node("Mul", [f"{p}_d", factor], [y], name=p + "_scale"))
        else:
            nodes += [
                helper.make_node("Mul", [f"{p}_d", factor], [f"{p}_n"], name=p + "_scale"),
                helper.make_node("Reshape", [bias, f"{p}_cshape"], [f"{p}_b"], name=p + "_rb"),
                helper.make_node("Add", [f"{p}_n", f"{p}_b"], [y], name=p + "_shift"),
            ]
        replaced += 1
    if replaced:
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.extend(extra_initializers)
        _drop_unused_initializers(graph)
    return out


def _is_constant(initializers: dict[str, onnx.TensorProto], name: str, value: float) -> bool:
    """True when ``name`` is an initializer whose every element equals ``value``."""
    init = initializers.get(name)
    return init is not None and bool(np.all(numpy_helper.to_array(init) == value))


def _reduce_mean(
    x: str, y: str, axes: list[int], opset: int, name: str, initializers: list[onnx.TensorProto]
) -> list[onnx.NodeProto]:
    if opset >= 18:
        initializers.append(numpy_helper.from_array(np.asarray(axes, np.int64), f"{name}_axes"))
        return [helper.make_node("ReduceMean", [x, f"{name}_axes"], [y], keepdims=1, name=name)]
    return [helper.make_node("ReduceMean", [x], [y], axes=axes, keepdims=1, name=name)]


def _tensor_ranks(model: onnx.ModelProto, wanted: Sequence[str] = ()) -> dict[str, int]:
    """Tensor ranks; shapes are inferred only when the model's own value infos (a loaded
    model carries them) leave one of ``wanted`` unknown (inference would give the same)."""
    ranks = _ranks(model)
    if wanted and all(name in ranks for name in wanted):
        return ranks
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    return _ranks(inferred)


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    ranks: dict[str, int] = {}
    graph = model.graph
    for value in [*graph.value_info, *graph.input, *graph.output]:
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            ranks[value.name] = len(tensor_type.shape.dim)
    return ranks


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    used |= {output.name for output in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


# --- parameters ----------------------------------------------------------------------
def parameters(model: onnx.ModelProto) -> list[ParameterInfo]:
    """Trainable initializers with their roles (BN running statistics are not parameters).

    Initializers reached through ``Identity`` nodes (as torch's exporter writes shared weights)
    are resolved to their source.
    """
    graph = model.graph
    inits = _initializers(graph)
    alias = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "Identity"}
    # Transpose of a 2-D weight: torch exports a Linear on (batch, tokens, features) input as
    # MatMul(x, Transpose(W)); W keeps its name and (out, in) shape, so it is drawn as torch's.
    transposed = {
        node.output[0]: node.input[0]
        for node in graph.node
        if node.op_type == "Transpose"
        and node.input[0] in inits
        and len(inits[node.input[0]].dims) == 2
    }

    def source(name: str) -> str | None:
        seen = 0
        name = transposed.get(name, name)
        while name in alias and seen < 64:
            name, seen = alias[name], seen + 1
        return name if name in inits else None

    producers = {out: node for node in graph.node for out in node.output}
    found: dict[str, ParameterInfo] = {}

    def add(name: str | None, role: str, fan_in: int) -> None:
        if name is None or name in found:
            return
        shape = tuple(int(d) for d in inits[name].dims)
        found[name] = ParameterInfo(name, role, shape, max(int(fan_in), 1))

    for node in graph.node:
        op = node.op_type
        inputs = list(node.input)
        if op in ("Conv", "ConvTranspose") and len(inputs) > 1:
            weight = source(inputs[1])
            fan_in = 1
            if weight is not None:
                dims = inits[weight].dims
                # Conv weight (out, in/groups, k…); ConvTranspose (in, out/groups, k…): torch
                # computes fan_in from dims[1:] for both.
                fan_in = int(np.prod(dims[1:]))
            add(weight, "weight", fan_in)
            if len(inputs) > 2 and inputs[2]:
                add(source(inputs[2]), "bias", fan_in)
        elif op == "Gemm":
            trans_a = int(_attribute(node, "transA", 0))
            trans_b = int(_attribute(node, "transB", 0))
            weight = source(inputs[1])
            fan_in = 1
            if weight is not None:
                dims = inits[weight].dims
                fan_in = int(dims[1] if trans_b else dims[0])
                add(weight, "weight", fan_in)
            elif source(inputs[0]) is not None:
                dims = inits[source(inputs[0])].dims  # type: ignore[index]
                fan_in = int(dims[0] if trans_a else dims[1])
                add(source(inputs[0]), "weight", fan_in)
            if len(inputs) > 2 and inputs[2]:
                add(source(inputs[2]), "bias", fan_in)
        elif op == "MatMul":
            for position in (1, 0):
                weight = source(inputs[position])
                if weight is not None and len(inits[weight].dims) == 2:
                    dims = inits[weight].dims
                    flipped = inputs[position] in transposed
                    add(weight, "weight", int(dims[(position == 1) == flipped]))
                    break
        elif op == "Add":
            # bias of a MatMul-based linear layer: Add(MatMul(x, W), b)
            for position, other in ((1, 0), (0, 1)):
                bias = source(inputs[position])
                producer = producers.get(inputs[other])
                if bias is not None and producer is not None and producer.op_type == "MatMul":
                    weight = next((source(i) for i in producer.input if source(i)), None)
                    fan_in = found[weight].fan_in if weight in found else 1
                    add(bias, "bias", fan_in)
                    break
        elif op == "BatchNormalization":
            add(source(inputs[1]), "bn_scale", 1)
            add(source(inputs[2]), "bn_bias", 1)
        elif op == "PRelu" and len(inputs) > 1:
            add(source(inputs[1]), "slope", 1)
    return list(found.values())


def parameters_as_inputs(model: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """Turn the named initializers into graph inputs, so each repeat can feed new values."""
    wanted = set(names)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep: list[onnx.TensorProto] = []
    declared = {value.name for value in graph.input}
    for init in graph.initializer:
        if init.name not in wanted:
            keep.append(init)
            continue
        if init.name not in declared:
            graph.input.append(
                helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return out
