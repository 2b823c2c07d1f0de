"""All repeats of a score in one forward pass: repeats become channel groups.

Why: the scoring networks of the built-in search spaces are tiny (a DARTS scoring cell has 3
to 6 channels), so per-repeat fixed costs (one onnxruntime call, feeding every weight, the
packing nodes, counting) dominated a score 32 times over. Here the R repeats of a chunk run
side by side in the channel axis: a tensor of C channels becomes one of R·C channels, repeat r
holding channels ``[r·C, (r+1)·C)``.

* ``Conv`` becomes a grouped conv over R times its groups; its weight is the R repeats'
  weights concatenated along the output-channel axis (a depthwise conv stays depthwise, over
  R·C groups). Repeat r's group therefore gets exactly the weights
  :func:`~swapprobe.capture.weights.draw` gives for ``(seed, r, name)``.
* ``BatchNormalization`` is per channel: its batch statistics are each repeat's own.
* Pooling, ``Relu``, ``Add``, ``Mul`` by a scalar, ``Slice``/``Pad`` on the spatial axes act
  per channel and are kept as they are.
* ``Concat`` on the channel axis is written as reshape (S, R, Cᵢ, H, W) → concat → reshape,
  so each repeat's channels stay contiguous.

Every other op, or a listed op used otherwise (a Slice on the channel axis, a Concat on
another axis, an Add of a constant), raises :class:`GroupingError`: the caller keeps the
per-repeat :class:`~swapprobe.capture.session.PatternSession`. The supported set is what the
emitted search-space graphs (:mod:`swapprobe.capture.emit`) contain up to their last
activation; nodes no activation depends on (global pooling, the classifier) are dropped.

What no drawn weight precedes (the DARTS cell's two ReLUs on the image) is the same in every
repeat: it is computed once per chunk at its own size, and a one-group conv reading it writes
all R·C_out channels at once (no tiling); its pattern words are repeated on the host.

The rewrite is exact: fed its weights, a chunk's patterns are bit-identical to the per-repeat
pass (tests hold every op of both spaces to it), each repeat's arithmetic being the same ops on
the same values, only more of them per node. On the CPU each chunk's weights are baked into its
own session instead, so that onnxruntime runs its blocked (NCHWc) convolution kernels, about
1.3× faster end to end on DARTS; those kernels round differently, which may flip the sign of a
pre-activation within rounding of zero (measured: 3 bits in 6.7·10⁸; tests bound it).

Measured on the CPU (one thread): grouping saves the per-call and per-repeat host costs, but
the kernels themselves do not get cheaper per element, and slow down once a chunk's tensors
leave the caches, so chunks are kept to 16 DARTS repeats (:data:`DEFAULT_MAX_CHUNK_BYTES`), and
compute-bound networks (NAS-Bench-201) keep the per-repeat path (:data:`GROUP_BELOW_BYTES`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from swapprobe.capture import graph
from swapprobe.capture.fixed_batch import free_batch
from swapprobe.capture.prepare import bake_constants
from swapprobe.capture.runner import ModelOrigin, OriginMixin, RunnerTimings
from swapprobe.capture.runtime import (
    PROCESS_CPU_ARENA,
    SharedCpuArena,
    first_line,
    open_session,
    providers_for,
)
from swapprobe.capture.weights import check_scheme, draw, is_random
from swapprobe.errors import SettingsError, ShapeMismatchError
from swapprobe.patterns import LayerInfo, PatternMatrix

__all__ = [
    "DrawCache",
    "GroupedGraph",
    "GroupedPatternSession",
    "GroupingError",
    "group_repeats",
    "grouped_session",
    "prepare_grouped",
    "varying_tensors",
]

#: ops whose every output channel depends only on the same input channel (kept unchanged)
_CHANNELWISE = frozenset({"Relu", "MaxPool", "AveragePool", "GlobalAveragePool"})

#: default bound on the float bytes of one chunk's intermediate tensors (all summed). Not
#: only memory: on the CPU, kernels slow down once a chunk's tensors leave the caches, while
#: each baked chunk costs a session (~5 ms). DARTS cells at S = 16 (~7 MB a repeat), the first
#: 16 table architectures × 32 repeats, seconds per architecture, interleaved, three runs:
#: 64 MiB (chunks of 8) 0.083 / 0.089 / 0.110, 128 MiB (16) 0.077 / 0.086 / 0.101, 256 MiB
#: (32) 0.088 / 0.104. (Fed weights, before chunks were baked, 64 MiB and 16 repeats tied.)
DEFAULT_MAX_CHUNK_BYTES = 128 << 20

#: above this many bytes of intermediate tensors per repeat a network is compute-bound (a
#: NAS-Bench-201 network at S = 32 has ~300 MB; a DARTS scoring cell at S = 16 ~7 MB) and the
#: per-repeat fixed costs grouping saves are noise: such networks keep the per-repeat path.
GROUP_BELOW_BYTES = 32 << 20


class GroupingError(NotImplementedError):
    """A graph the channel-group rewrite cannot prove exact for (the per-repeat path runs)."""


# --- the rewrite ---------------------------------------------------------------------------
def group_repeats(
    model: onnx.ModelProto, repeats: int, *, input_name: str, drawn: Sequence[str]
) -> onnx.ModelProto:
    """``model`` (batch fixed, shapes inferred, fixed parameters baked) with ``repeats``
    repeats as channel groups.

    ``drawn`` names the initializers drawn per repeat: they become graph inputs whose first
    axis is ``repeats`` times the original (the repeats' draws concatenated); every other
    per-channel parameter is tiled. The data input keeps its shape and is repeated in the
    channel axis by the first node. Outputs: none (the caller adds the pattern outputs).

    Raises:
        GroupingError: an op (or a use of one) outside the supported set.
    """
    g = model.graph
    shapes = _static_shapes(model)
    initializers = {t.name: t for t in g.initializer}
    constants = _constant_nodes(g)
    activations = {a.tensor for a in graph.find_activations(model)}
    kept = _ancestors(g.node, activations)
    drawn_set = set(drawn)
    varying = varying_tensors(kept, drawn_set)

    nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    new_inputs: list[onnx.ValueInfoProto] = []
    data_tensors = {input_name}
    tiled: dict[str, str] = {}

    def tile(name: str) -> str:
        """A tensor the same in every repeat, repeated in the channel axis (once)."""
        if name not in tiled:
            tiled[name] = f"{name}__swapprobe_tiled"
            nodes.append(
                helper.make_node(
                    "Concat", [name] * repeats, [tiled[name]], axis=1, name=f"{name}__tile"
                )
            )
        return tiled[name]

    for node in kept:
        op = node.op_type
        if op == "Constant":
            nodes.append(node)
            continue
        data = [name for name in node.input if name in data_tensors]
        _check_supported(node, data, shapes, constants, initializers)
        data_tensors.update(node.output)
        if not varying.intersection(node.output):
            nodes.append(node)  # the same in every repeat: computed once, as it is
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        if op == "Conv":
            # A conv over one group reading a tensor that no repeat changes needs no tiling:
            # its R·C_out output channels are already each repeat's own.
            spread = node.input[0] in varying or _group_count(node) != 1
            if node.input[0] not in varying and spread:
                copy.input[0] = tile(node.input[0])
            _group_conv(copy, repeats if spread else 1)
            for position in range(1, len(node.input)):
                if node.input[position]:
                    _group_parameter(
                        node.input[position],
                        repeats,
                        initializers,
                        drawn_set,
                        new_inits,
                        new_inputs,
                    )
            nodes.append(copy)
            continue
        copy.input[:] = [
            tile(name) if name in data_tensors and name not in varying else name
            for name in node.input
        ]
        if op == "BatchNormalization":
            for position in range(1, 5):
                _group_parameter(
                    node.input[position], repeats, initializers, drawn_set, new_inits, new_inputs
                )
            nodes.append(copy)
        elif op == "Concat":
            nodes += _group_concat(copy, repeats, shapes, node, new_inits)
        else:
            nodes.append(copy)
    drop = {t.name for t in new_inits} | {v.name for v in new_inputs}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.ClearField("value_info")
    out.graph.ClearField("output")
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    keep = [t for t in g.initializer if t.name in used and t.name not in drop]
    del out.graph.initializer[:]
    out.graph.initializer.extend([*keep, *new_inits])
    data_inputs = [v for v in g.input if v.name == input_name]
    del out.graph.input[:]
    out.graph.input.extend([*data_inputs, *new_inputs])
    return out


def varying_tensors(nodes: Sequence[onnx.NodeProto], drawn: set[str]) -> set[str]:
    """The tensors that differ between repeats: outputs of a node that reads a drawn
    parameter or a tensor that differs. The rest is computed once for all repeats."""
    varying: set[str] = set()
    for node in nodes:
        if any(name in drawn or name in varying for name in node.input):
            varying.update(node.output)
    return varying


def _check_supported(
    node: onnx.NodeProto,
    data: Sequence[str],
    shapes: dict[str, tuple[int, ...]],
    constants: dict[str, np.ndarray],
    initializers: dict[str, onnx.TensorProto],
) -> None:
    """Raise :class:`GroupingError` unless ``node`` acts on each repeat's channels alone."""
    op = node.op_type
    if not data:
        raise GroupingError(f"{op} node {node.name!r} reads no data tensor")
    if op in ("Conv", "BatchNormalization") or op in _CHANNELWISE:
        if node.input[0] not in data or len(data) != 1:
            raise GroupingError(f"{op} node {node.name!r} reads data as a parameter")
    elif op == "Add":
        if len(data) != len(node.input):
            raise GroupingError(f"Add node {node.name!r} adds a constant")
    elif op == "Mul":
        others = [i for i in node.input if i not in data]
        if len(others) != 1 or not _is_scalar(others[0], constants, initializers):
            raise GroupingError(f"Mul node {node.name!r} is not a product with a scalar")
    elif op == "Slice":
        rank = len(shapes[node.input[0]])
        axes = _constant(node.input[3] if len(node.input) > 3 else "", constants)
        if axes is None or {int(a) % rank for a in np.ravel(axes)} & {0, 1}:
            raise GroupingError(f"Slice node {node.name!r} is not on spatial axes only")
    elif op == "Pad":
        pads = _constant(node.input[1] if len(node.input) > 1 else "", constants)
        rank = len(shapes[node.input[0]])
        mode = _string_attribute(node, "mode", "constant")
        if pads is None or mode != "constant" or len(node.input) > 3:
            raise GroupingError(f"Pad node {node.name!r} is not a constant spatial pad")
        if np.any(np.ravel(pads)[[0, 1, rank, rank + 1]] != 0):
            raise GroupingError(f"Pad node {node.name!r} pads the batch or channel axis")
    elif op == "Concat":
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        rank = len(shapes[node.input[0]])
        if axis is None or axis % rank != 1 or len(data) != len(node.input):
            raise GroupingError(f"Concat node {node.name!r} is not a channel concat of data")
    else:
        raise GroupingError(f"op {op} (node {node.name!r}) has no channel-group rewrite")


def _group_count(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _group_conv(node: onnx.NodeProto, factor: int) -> None:
    """Multiply the conv's group count by ``factor`` (R, or 1 on an unrepeated input)."""
    groups = _group_count(node)
    for attribute in list(node.attribute):
        if attribute.name == "group":
            node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute("group", groups * factor))


def _group_parameter(
    name: str,
    repeats: int,
    initializers: dict[str, onnx.TensorProto],
    drawn: set[str],
    new_inits: list[onnx.TensorProto],
    new_inputs: list[onnx.ValueInfoProto],
) -> None:
    """A per-output-channel parameter: an input R times as long (drawn), or tiled R times."""
    if name in {t.name for t in new_inits} | {v.name for v in new_inputs}:
        raise GroupingError(f"parameter {name!r} is shared by two layers")
    init = initializers.get(name)
    if init is None:
        raise GroupingError(f"parameter {name!r} is not an initializer")
    dims = list(init.dims)
    if not dims:
        raise GroupingError(f"parameter {name!r} is a scalar")
    if name in drawn:
        grown = [dims[0] * repeats, *dims[1:]]
        new_inputs.append(helper.make_tensor_value_info(name, init.data_type, grown))
    else:
        value = numpy_helper.to_array(init)
        new_inits.append(numpy_helper.from_array(np.concatenate([value] * repeats), name))


def _group_concat(
    node: onnx.NodeProto,
    repeats: int,
    shapes: dict[str, tuple[int, ...]],
    original: onnx.NodeProto,
    new_inits: list[onnx.TensorProto],
) -> list[onnx.NodeProto]:
    """Channel concat of repeated tensors, each repeat's channels kept contiguous (the shapes
    are the per-repeat ones, read from ``original``'s inputs)."""
    label = original.name
    prefix = f"{label}__swapprobe_group"
    out: list[onnx.NodeProto] = []
    split: list[str] = []
    for index, (name, source) in enumerate(zip(node.input, original.input, strict=True)):
        s, c, *rest = shapes[source]
        shape_name = f"{prefix}_shape{index}"
        new_inits.append(
            numpy_helper.from_array(np.asarray([s, repeats, c, *rest], np.int64), shape_name)
        )
        split.append(f"{prefix}_in{index}")
        out.append(
            helper.make_node("Reshape", [name, shape_name], [split[-1]], name=f"{prefix}_r{index}")
        )
    s, c, *rest = shapes[node.output[0]]
    joined = f"{prefix}_joined"
    out.append(helper.make_node("Concat", split, [joined], axis=2, name=f"{prefix}_cat"))
    final = f"{prefix}_shape"
    new_inits.append(numpy_helper.from_array(np.asarray([s, repeats * c, *rest], np.int64), final))
    out.append(helper.make_node("Reshape", [joined, final], [node.output[0]], name=f"{prefix}_out"))
    return out


def _ancestors(nodes: Sequence[onnx.NodeProto], wanted: set[str]) -> list[onnx.NodeProto]:
    """The nodes some tensor of ``wanted`` depends on, in graph order."""
    needed = set(wanted)
    kept: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Every tensor's static shape (the batch is fixed before the rewrite)."""
    g = model.graph
    shapes: dict[str, tuple[int, ...]] = {}
    for value in [*g.input, *g.value_info, *g.output]:
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    for node in g.node:
        for name in node.output:
            if node.op_type != "Constant" and name not in shapes:
                raise GroupingError(f"tensor {name!r} has no static shape")
    return shapes


def _constant_nodes(g: onnx.GraphProto) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for node in g.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _constant(name: str, constants: dict[str, np.ndarray]) -> np.ndarray | None:
    return constants.get(name) if name else None


def _is_scalar(
    name: str, constants: dict[str, np.ndarray], initializers: dict[str, onnx.TensorProto]
) -> bool:
    if name in constants:
        return constants[name].size == 1 and constants[name].ndim == 0
    init = initializers.get(name)
    return init is not None and len(init.dims) == 0


def _string_attribute(node: onnx.NodeProto, name: str, default: str) -> str:
    for attribute in node.attribute:
        if attribute.name == name:
            return attribute.s.decode()
    return default


# --- the prepared graph -------------------------------------------------------------------
@dataclass(frozen=True)
class GroupedGraph:
    """What the grouped pass runs, before any repeat count is chosen (a pure function of the
    model and the settings: :func:`prepare_grouped`).

    ``base``: the model with fixed parameters baked, the batch fixed and shapes inferred (what
    :func:`group_repeats` rewrites for R repeats). ``drawn``: the parameters drawn per repeat
    that some activation depends on. ``repeated``: per activation, whether it differs between
    repeats (else computed once per chunk, its words repeated on the host). ``layers``: the
    layer table of every repeat's patterns. ``repeat_bytes``: one repeat's intermediate
    tensors, all summed (what a chunk multiplies). ``channel_step``: the fewest repeats whose
    grouped depthwise convs fill whole NCHWc blocks.
    """

    base: onnx.ModelProto
    activations: list[graph.Activation]
    drawn: list[graph.ParameterInfo]
    repeated: list[bool]
    unit_counts: list[int]
    layers: tuple[LayerInfo, ...]
    repeat_bytes: int
    channel_step: int


def prepare_grouped(
    model: onnx.ModelProto,
    *,
    batch_size: int,
    sample_shape: Sequence[int],
    init: str,
    input_name: str,
    parameters: Sequence[graph.ParameterInfo],
) -> GroupedGraph:
    """The grouped pass's graph and layer table for ``model`` (``parameters``: its
    :func:`~swapprobe.capture.graph.parameters`).

    Raises:
        GroupingError: shape inference fails or leaves a tensor without a static shape.
    """
    base = bake_constants(model, parameters, init)
    base = free_batch(base, input_name)  # a batch baked into Reshapes runs S samples
    base = graph.set_batch_size(base, input_name, batch_size, sample_shape)
    try:
        base = shape_inference.infer_shapes(base, strict_mode=True)
    except Exception as error:
        raise GroupingError(f"shape inference failed: {error}") from None
    shapes = _static_shapes(base)
    activations = graph.find_activations(base)
    random = [p for p in parameters if is_random(init, p.role)]
    # Only parameters some activation depends on are drawn (the classifier's are not):
    # each draw is seeded by its own name, so skipping one changes no other.
    kept = _ancestors(base.graph.node, {a.tensor for a in activations})
    needed = {n for node in kept for n in node.input}
    drawn = [p for p in random if p.name in needed]
    # Activations no drawn weight precedes (the DARTS cell's ReLUs on the image) are the
    # same in every repeat: computed once per chunk, their words repeated on the host.
    varying = varying_tensors(kept, {p.name for p in drawn})
    unit_shapes = [shapes[a.tensor][1:] for a in activations]
    unit_counts = [int(np.prod(s)) for s in unit_shapes]
    produced = _produced(base)
    per_repeat_floats = sum(
        int(np.prod(shape)) for name, shape in shapes.items() if name in produced
    )
    offset, layers = 0, []
    for activation, shape, size in zip(activations, unit_shapes, unit_counts, strict=True):
        layers.append(LayerInfo(activation.name, activation.op, tuple(shape), offset, size))
        offset += size
    return GroupedGraph(
        base=base,
        activations=activations,
        drawn=drawn,
        repeated=[a.tensor in varying for a in activations],
        unit_counts=unit_counts,
        layers=tuple(layers),
        repeat_bytes=4 * per_repeat_floats,
        channel_step=_channel_step(kept, varying, shapes),
    )


# --- the session ---------------------------------------------------------------------------
class GroupedPatternSession(OriginMixin):
    """Every repeat's patterns from one onnxruntime call per chunk of repeats.

    Same arguments as :class:`~swapprobe.capture.session.PatternSession` (the model as loaded,
    not yet rewritten; ``threads`` defaults to one, see ``__init__``), plus
    ``max_chunk_bytes``: the bound on one chunk's intermediate float tensors, all summed (a
    pessimistic peak), that decides how many repeats share a forward; ``repeats``: how many
    repeats will be run (their graphs are built at once); ``bake``: each chunk's weights
    baked into its own session as constants (None: on the CPU with optimisation on);
    ``draw_cache``: the drawn chunks kept across sessions (None: this session keeps its own);
    ``arena``: the shared CPU arena baked chunk sessions use where onnxruntime allows it
    (default :data:`~swapprobe.capture.runtime.PROCESS_CPU_ARENA`); ``origin``: as
    :class:`~swapprobe.capture.session.PatternSession`'s. Unbaked, the patterns of repeat r
    are those ``PatternSession.run(x, seed=, repeat=r)`` returns, bit for bit; baked,
    onnxruntime's NCHWc kernels sum in another order, and a pre-activation within float
    rounding of zero may take the other sign (3 bits of 6.7·10⁸ over 40 DARTS architectures
    × 32 repeats).

    Raises:
        GroupingError: the graph has an op outside the supported set (see the module doc).
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        *,
        batch_size: int,
        sample_shape: Sequence[int],
        init: str = "gaussian",
        input_name: str | None = None,
        device: str = "auto",
        optimize: bool = True,
        max_pattern_bytes: int | None = None,
        max_chunk_bytes: int | None = None,
        threads: int | None = None,
        repeats: int | None = None,
        bake: bool | None = None,
        draw_cache: DrawCache | None = None,
        arena: SharedCpuArena | None = None,
        origin: ModelOrigin | None = None,
    ) -> None:
        from swapprobe.capture.session import DEFAULT_MAX_PATTERN_BYTES

        check_scheme(init)
        if batch_size < 2:
            raise SettingsError(f"batch size S must be at least 2, got {batch_size}")
        t0 = time.perf_counter()
        self.init = init
        self.batch_size = batch_size
        self.parameters = graph.parameters(model)
        self.origin = (origin or ModelOrigin()).completed(
            sum(int(np.prod(p.shape)) for p in self.parameters), lambda: graph.model_digest(model)
        )
        self.input_name = graph.model_input(model, input_name).name
        self.providers = providers_for(device)
        self.optimize = optimize
        # One intra-op thread unless asked: a chunk's kernels take microseconds each, and
        # onnxruntime's spinning threads cost more than they share (the default DARTS search,
        # executor local, 2 cores: 98 s with both threads, 86 s with one, half the CPU time).
        self.threads = 1 if threads is None else threads
        self.draw_cache = DrawCache() if draw_cache is None else draw_cache
        self.arena = PROCESS_CPU_ARENA if arena is None else arena

        prepared = prepare_grouped(
            model,
            batch_size=batch_size,
            sample_shape=sample_shape,
            init=init,
            input_name=self.input_name,
            parameters=self.parameters,
        )
        self.prepared = prepared
        self._base = prepared.base
        self.activations = prepared.activations
        self._drawn = prepared.drawn
        self._repeated = prepared.repeated
        self._unit_counts = prepared.unit_counts
        #: bytes of one repeat's intermediate tensors, all summed (what a chunk multiplies)
        self.repeat_bytes = prepared.repeat_bytes
        words = -(-batch_size // graph.GROUP_BITS)
        pattern_bytes = 4 * words * sum(self._unit_counts)
        budget = DEFAULT_MAX_CHUNK_BYTES if max_chunk_bytes is None else max_chunk_bytes
        pattern_budget = (
            DEFAULT_MAX_PATTERN_BYTES if max_pattern_bytes is None else max_pattern_bytes
        )
        self.max_chunk = max(
            1, min(budget // max(self.repeat_bytes, 1), pattern_budget // max(pattern_bytes, 1))
        )
        self.layers: tuple[LayerInfo, ...] = prepared.layers
        self.provider = self.providers[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        #: whether each chunk's draws are baked into its own session as constants (see
        #: :meth:`_chunk_session`); otherwise one session per chunk size takes them as inputs
        self.bake = bake if bake is not None else optimize and self.device == "cpu"
        self._channel_step = prepared.channel_step if self.bake else 1
        self._graphs: dict[int, tuple[bytes, list[str]]] = {}
        self._sessions: dict[object, tuple[object, list[str]]] = {}
        self.timings = RunnerTimings(export=self.origin.export_seconds)
        self.timings.add_step("group_rewrite", time.perf_counter() - t0)
        self.passes = 1
        # Prove the rewrite now (it raises GroupingError before any repeat is run), and with
        # the repeats known, build their graphs (and unbaked, their sessions) up front.
        if repeats is None:
            group_repeats(
                self._base, 1, input_name=self.input_name, drawn=[p.name for p in self._drawn]
            )
        else:
            for size in sorted({len(chunk) for chunk in self.chunks(list(range(repeats)))}):
                self._graph(size) if self.bake else self._session(size)
        self.timings.session += time.perf_counter() - t0

    def _graph(self, repeats: int) -> tuple[bytes, list[str]]:
        """The serialised graph that runs ``repeats`` repeats at once and its pattern outputs
        (built once per chunk size). Baked, the drawn weights are neither inputs nor
        initializers of it: :meth:`_chunk_session` appends them."""
        if repeats in self._graphs:
            return self._graphs[repeats]
        t0 = time.perf_counter()
        grouped = group_repeats(
            self._base, repeats, input_name=self.input_name, drawn=[p.name for p in self._drawn]
        )
        grouped = graph.batchnorm_on_batch_statistics(grouped)
        activations = graph.find_activations(grouped)
        if [a.name for a in activations] != [a.name for a in self.activations]:
            raise GroupingError("the rewrite changed the activations")  # a bug, not a user's
        grouped, names = graph.expose_patterns(grouped, activations, packed_samples=self.batch_size)
        if self.bake:
            drawn = {p.name for p in self._drawn}
            data_inputs = [v for v in grouped.graph.input if v.name not in drawn]
            del grouped.graph.input[:]
            grouped.graph.input.extend(data_inputs)
        self._graphs[repeats] = (grouped.SerializeToString(), names)
        self.timings.add_step("group_session", time.perf_counter() - t0)
        return self._graphs[repeats]

    def _chunk_session(self, seed: int, chunk: Sequence[int]) -> tuple[object, list[str]]:
        """A session with this chunk's draws baked in as constants.

        Why: onnxruntime lays convolutions out in its blocked NCHWc format (and runs their
        fast kernels) only when their weights are constants, and a chunk's depthwise convs
        over R·C channels are where the grouped forward spent most of its time (a DARTS
        cell's 5×5 depthwise conv at stride 2 over 48 channels: 3.3 ms with its weights fed,
        0.3 ms baked, one thread). The graph is serialised once per chunk size; the draws are
        a second ModelProto holding only initializers, serialised and appended: protobuf
        merges the two messages, so nothing is copied. The kernels sum in another order than
        the per-repeat session's, so a pre-activation within float rounding of zero may take
        the other sign (as it may on another CPU's kernels); tests bound how often."""
        key = (seed, tuple(chunk))
        if key in self._sessions:
            return self._sessions[key]
        serialised, names = self._graph(len(chunk))
        t0 = time.perf_counter()
        weights = onnx.ModelProto()
        weights.graph.initializer.extend(
            numpy_helper.from_array(self.draw_cache.chunk(self.init, p, seed, chunk), p.name)
            for p in self._drawn
        )
        t1 = time.perf_counter()
        session = self._new_session(serialised + weights.SerializeToString())
        self.timings.draw += t1 - t0
        if len(self._sessions) >= _KEPT_CHUNK_SESSIONS:
            self._sessions.clear()
        self._sessions[key] = (session, names)
        self.timings.session += time.perf_counter() - t1
        return self._sessions[key]

    def _session(self, repeats: int) -> tuple[object, list[str]]:
        """The session that runs ``repeats`` repeats at once, their draws fed as inputs
        (built once per chunk size)."""
        if repeats in self._sessions:
            return self._sessions[repeats]
        serialised, names = self._graph(repeats)
        t0 = time.perf_counter()
        self._sessions[repeats] = (self._new_session(serialised), names)
        self.timings.add_step("group_session", time.perf_counter() - t0)
        return self._sessions[repeats]

    def _new_session(self, serialised: bytes) -> object:
        # Baked, each chunk session runs once: the shared arena keeps its pages across chunks
        # and architectures rather than mapping them afresh each run.
        session = open_session(
            serialised,
            providers=self.providers,
            optimize=self.optimize,
            threads=self.threads,
            arena=self.arena if self.bake else None,
            failure="onnxruntime cannot run the grouped model",
        )
        self.provider = session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        return session

    def chunks(self, repeats: Sequence[int]) -> list[list[int]]:
        """``repeats`` split into near-equal consecutive chunks of at most ``max_chunk``;
        baked, into chunks of the multiple of the channel step nearest ``max_chunk`` (every
        depthwise conv then has a multiple of 16 channels, which onnxruntime's NCHWc kernels
        need), as long as that stays within 1.5 × ``max_chunk``."""
        step = self._channel_step
        size = max(step, step * round(self.max_chunk / step))
        if step > 1 and 2 * size <= 3 * self.max_chunk:
            return [list(repeats[i : i + size]) for i in range(0, len(repeats), size)]
        count = -(-len(repeats) // self.max_chunk)
        size = -(-len(repeats) // count) if count else 0
        return [list(repeats[i : i + size]) for i in range(0, len(repeats), size or 1)]

    def run_all(
        self, inputs: np.ndarray, *, seed: int, repeats: int | Sequence[int]
    ) -> list[PatternMatrix]:
        """The packed patterns of each repeat (``range(repeats)``, or the repeats listed)."""
        wanted = list(range(repeats)) if isinstance(repeats, int) else list(repeats)
        if inputs.shape[0] != self.batch_size:
            raise ShapeMismatchError(
                f"session was built for S={self.batch_size}, got a batch of {inputs.shape[0]}"
            )
        data = np.ascontiguousarray(inputs, dtype=np.float32)
        matrices: list[PatternMatrix] = []
        for chunk in self.chunks(wanted):
            t0 = time.perf_counter()
            if self.bake:
                session, names = self._chunk_session(seed, chunk)
                feeds = {self.input_name: data}
            else:
                session, names = self._session(len(chunk))
                feeds = {
                    p.name: self.draw_cache.chunk(self.init, p, seed, chunk) for p in self._drawn
                }
                feeds[self.input_name] = data
            t1 = time.perf_counter()
            try:
                outputs = session.run(names, feeds)  # type: ignore[attr-defined]
            except Exception as error:
                raise ShapeMismatchError(f"forward pass failed: {first_line(error)}") from None
            t2 = time.perf_counter()
            words = _repeat_words(outputs, self._unit_counts, self._repeated, len(chunk))
            matrices += [PatternMatrix(w, self.batch_size, self.layers) for w in words]
            t3 = time.perf_counter()
            if not self.bake:  # baked, the draws were timed with the chunk's session
                self.timings.draw += t1 - t0
            self.timings.forward += t2 - t1
            self.timings.pack += t3 - t2
        return matrices

    def repeat_batches(self, repeats: int) -> list[list[int]]:
        """Every repeat at once: :meth:`run_all` splits them into chunks itself."""
        return [list(range(repeats))]

    def run(self, inputs: np.ndarray, *, seed: int, repeat: int) -> PatternMatrix:
        """One repeat (as :meth:`PatternSession.run`)."""
        return self.run_all(inputs, seed=seed, repeats=[repeat])[0]

    def activation_summary(self) -> str:
        """The line :meth:`PatternSession.activation_summary` gives: units counted per kind
        (emitted search-space graphs have every activation on the batch axis)."""
        from collections import Counter

        from swapprobe.capture.gate_rules import summary_line

        counted: Counter[str] = Counter()
        for info in self.layers:
            counted[info.op] += int(info.size)
        return summary_line(dict(counted), {}, {})


#: the NCHWc block of onnxruntime's CPU kernels: 16 channels with AVX-512, 8 with AVX2 (a
#: multiple of 16 suits both)
_NCHWC_BLOCK = 16

#: chunk sessions kept (a second run of the same seed and chunk reuses its session)
_KEPT_CHUNK_SESSIONS = 8


def _channel_step(
    nodes: Sequence[onnx.NodeProto],
    varying: set[str],
    shapes: dict[str, tuple[int, ...]],
) -> int:
    """The fewest repeats R for which every grouped depthwise conv's R·C channels are a
    multiple of :data:`_NCHWC_BLOCK` (1 when there is no such conv)."""
    step = 1
    for node in nodes:
        if node.op_type != "Conv" or node.input[0] not in varying:
            continue
        channels = shapes[node.input[0]][1]
        if _group_count(node) == channels > 1:
            step = math.lcm(step, _NCHWC_BLOCK // math.gcd(_NCHWC_BLOCK, channels))
    return step


def _repeat_words(
    outputs: Sequence[np.ndarray],
    unit_counts: Sequence[int],
    repeated: Sequence[bool],
    repeats: int,
) -> np.ndarray:
    """The in-graph packed outputs of a chunk → ``(repeats, V, W)`` uint64 words.

    Output l is ``(G, repeats · V_l)`` float32 sample groups (see
    :func:`~swapprobe.capture.graph.expose_patterns`), repeat r in columns
    ``[r·V_l, (r+1)·V_l)``. Each repeat's rows are the layers in order, the words those of
    :func:`~swapprobe.capture.graph.join_sample_groups`: sample s is bit s % 64 of word s // 64.
    A layer that is not ``repeated`` was computed once (``(G, V_l)``) and is the same in
    every repeat. Done for all layers and repeats at once, not per repeat.
    """
    per_word = 64 // graph.GROUP_BITS
    columns = [
        out.reshape(out.shape[0], repeats, -1)
        if again
        else np.broadcast_to(out[:, None, :], (out.shape[0], repeats, out.shape[1]))
        for out, again in zip(outputs, repeated, strict=True)
    ]
    if columns[0].shape[0] == 1:  # S ≤ 16: one group, cast straight into the words
        words = np.empty((repeats, sum(unit_counts), 1), dtype=np.uint64)
        offset = 0
        for column in columns:
            size = column.shape[2]
            words[:, offset : offset + size, 0] = column[0]  # exact integers below 2^16
            offset += size
        assert offset == words.shape[1]
        return words
    groups = np.concatenate(columns, axis=2) if len(columns) > 1 else columns[0]  # (G, R, V)
    count, _, units = groups.shape
    assert units == sum(unit_counts)
    width = -(-count // per_word)
    words = np.zeros((width, repeats, units), dtype=np.uint64)
    for group in range(count):  # the float sums are exact integers below 2^16
        shifted = groups[group].astype(np.uint64)
        if group % per_word:
            shifted <<= np.uint64(graph.GROUP_BITS * (group % per_word))
        words[group // per_word] |= shifted
    if width == 1:
        return words.reshape(repeats, units, 1)
    return np.ascontiguousarray(words.transpose(1, 2, 0))  # (R, V, W)


class DrawCache:
    """Drawn chunks of weights kept across models, bounded by bytes.

    The same (scheme, seed, repeats, parameter name and shape) draws the same numbers in every
    architecture of a space (the preprocessing convolutions, every edge with the same op at
    the same place), so a table or a search that shares one cache draws each once. The owner
    decides its lifetime: the Evaluator keeps one for all the models it scores; a grouped
    session given none keeps its own.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._chunks: dict[tuple[object, ...], np.ndarray] = {}
        self._used = 0

    def chunk(
        self, scheme: str, param: graph.ParameterInfo, seed: int, repeats: Sequence[int]
    ) -> np.ndarray:
        """The repeats' draws of ``param`` concatenated on the first axis (each exactly
        :func:`~swapprobe.capture.weights.draw`'s for that repeat), read-only."""
        key = (scheme, seed, tuple(repeats), param)
        value = self._chunks.get(key)
        if value is None:
            value = np.concatenate([draw(scheme, [param], seed, r)[param.name] for r in repeats])
            if self._used + value.nbytes > self.max_bytes:
                self._chunks.clear()
                self._used = 0
            value.setflags(write=False)
            self._chunks[key] = value
            self._used += value.nbytes
        return value


def _produced(model: onnx.ModelProto) -> set[str]:
    return {o for node in model.graph.node if node.op_type != "Constant" for o in node.output}


def grouped_session(model: onnx.ModelProto, **kwargs: object) -> GroupedPatternSession | None:
    """A :class:`GroupedPatternSession` when the rewrite supports the graph and pays off (per
    repeat at most :data:`GROUP_BELOW_BYTES` of intermediate tensors), else None: the caller
    runs the per-repeat session. ``kwargs`` are the session's."""
    estimate = _estimated_repeat_bytes(model, int(kwargs["batch_size"]))  # type: ignore[call-overload]
    if estimate is not None and estimate > GROUP_BELOW_BYTES:
        return None  # decided from the loaded model's shapes, before any rewrite
    try:
        runner = GroupedPatternSession(model, **kwargs)  # type: ignore[arg-type]
    except GroupingError:
        return None
    return runner if runner.repeat_bytes <= GROUP_BELOW_BYTES else None


def _estimated_repeat_bytes(model: onnx.ModelProto, batch_size: int) -> int | None:
    """One repeat's intermediate float bytes from the shapes a loaded model carries (batch
    symbolic), or None when they are not all known."""
    total = 0
    for value in model.graph.value_info:
        tensor_type = value.type.tensor_type
        dims = tensor_type.shape.dim
        if tensor_type.HasField("shape") and not dims:
            continue  # a scalar (the emitted graphs' Constant nodes): no batch, no bytes
        if not dims or not all(d.HasField("dim_value") for d in dims[1:]):
            return None
        total += int(np.prod([d.dim_value for d in dims[1:]])) * batch_size
    return 4 * total if model.graph.value_info else None
