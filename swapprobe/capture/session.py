"""One onnxruntime session that turns a batch into activation patterns, repeat after repeat.

The model is rewritten once (BN on batch statistics, re-drawn weights as inputs, a BOOL
``x > 0`` output per activation), the session is created once, and each repeat only feeds new
weights: no re-export, no new session.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from swapprobe.capture import graph
from swapprobe.capture.weights import check_scheme, constant_value, draw, is_random
from swapprobe.errors import SettingsError, ShapeMismatchError
from swapprobe.patterns import LayerInfo, PatternMatrix, pack_sample_bits

__all__ = ["DEVICES", "PatternSession", "available_providers", "providers_for"]

DEVICES = ("auto", "cpu", "cuda")

#: intra-op threads of new sessions when none are asked for; ``None`` keeps onnxruntime's
#: default (every core). Pool and Ray workers set 1, so N workers use N cores.
SESSION_THREADS: int | None = None


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def providers_for(device: str) -> list[str]:
    """Execution providers to ask for, most preferred first.

    Raises:
        SettingsError: unknown device, or ``cuda`` without a CUDA-enabled onnxruntime.
    """
    if device not in DEVICES:
        raise SettingsError(f"unknown device {device!r}: use {', '.join(DEVICES)}")
    available = available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise SettingsError(
            "device cuda asked for, but onnxruntime has no CUDA provider (available: "
            f"{', '.join(available)}); install the GPU extra: pip install 'swapprobe[gpu]'"
        )
    if device == "cpu" or not has_cuda:
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


@dataclass
class RepeatTimings:
    """Seconds spent per stage, summed over the repeats run so far."""

    draw: float = 0.0
    forward: float = 0.0
    pack: float = 0.0
    per_stage: dict[str, float] = field(default_factory=dict)


class PatternSession:
    """A rewritten model in an onnxruntime session.

    Args:
        model: a loaded ONNX model (see :func:`swapprobe.capture.graph.load_model`).
        batch_size: S, the number of samples per forward pass.
        sample_shape: the shape of one input sample, e.g. ``(3, 32, 32)``.
        init: ``gaussian`` | ``kaiming`` | ``keep`` (see :mod:`swapprobe.capture.weights`).
        input_name: which graph input takes the data (needed when there are several).
        device: ``auto`` | ``cpu`` | ``cuda``.
        optimize: enable ORT graph optimisations (patterns are bit-identical to an
            un-optimised session; a test checks this).
        threads: intra-op threads (default: :data:`SESSION_THREADS`).
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
        threads: int | None = None,
        pack: str = "auto",
        io_binding: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        check_scheme(init)
        if batch_size < 2:
            raise SettingsError(f"batch size S must be at least 2, got {batch_size}")
        self.init = init
        self.batch_size = batch_size
        self.parameters = graph.parameters(model)
        self.param_count = sum(int(np.prod(p.shape)) for p in self.parameters)
        data_input = graph.model_input(model, input_name)
        self.input_name = data_input.name

        # Fixed values first (biases 0, BN 1/0), so the BN rewrite can drop the no-op scaling.
        rewritten = _bake_constants(model, self.parameters, init)
        rewritten = graph.batchnorm_on_batch_statistics(rewritten)
        self.activations = graph.find_activations(rewritten)
        self._random = [p for p in self.parameters if is_random(init, p.role)]
        rewritten = graph.parameters_as_inputs(rewritten, [p.name for p in self._random])
        rewritten = graph.set_batch_size(rewritten, self.input_name, batch_size, sample_shape)
        providers = providers_for(device)
        on_cuda = providers[0] == "CUDAExecutionProvider"
        if pack not in ("auto", "host", "graph"):
            raise SettingsError(f"pack must be auto, host or graph, got {pack!r}")
        # Packing inside the graph returns only bits (what the CUDA path needs), never holds a
        # whole layer's booleans, and measured faster on the CPU too (DARTS scoring cells 23 %,
        # NB201 even). ``host`` (booleans out, packed by numpy) stays as the plain reference.
        self.pack_in_graph = pack in ("auto", "graph")
        self.io_binding = on_cuda if io_binding is None else io_binding
        rewritten, self.output_names = graph.expose_patterns(
            rewritten, self.activations, packed_samples=batch_size if self.pack_in_graph else None
        )
        # Only the patterns are wanted: drop the model's own outputs so ORT prunes the tail.
        keep = [o for o in rewritten.graph.output if o.name in set(self.output_names)]
        del rewritten.graph.output[:]
        rewritten.graph.output.extend(keep)
        self.model = rewritten
        # Large models: the pattern outputs of all layers at once may not fit. Group the layers
        # so each forward pass returns at most ``max_pattern_bytes``; more passes, same
        # patterns. (Splitting the *samples* instead would change BatchNorm's batch statistics.)
        budget = DEFAULT_MAX_PATTERN_BYTES if max_pattern_bytes is None else max_pattern_bytes
        bool_names = [f"{n}__bits" if self.pack_in_graph else n for n in self.output_names]
        self._inferred_shapes = _inferred_shapes(rewritten, bool_names)
        # bytes returned per unit: S booleans, or one float32 per 16 samples
        per_unit = 4 * -(-batch_size // graph.GROUP_BITS) if self.pack_in_graph else batch_size
        sizes = [
            None if shape is None else per_unit * int(np.prod(shape[1:]))
            for shape in self._inferred_shapes
        ]
        self.groups = _group_outputs(self.output_names, sizes, budget)

        options = ort.SessionOptions()
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if optimize
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.log_severity_level = 3
        # Run each pattern node right after its activation (expose_patterns orders them so):
        # the default order keeps every activation's floats alive to the end of the graph
        # (ResNet-50, S = 64: peak 2.6 GB against 1.1 GB). Without the arena, memory freed by
        # one layer goes back at once; it measured no slower on small cells.
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        options.enable_cpu_mem_arena = False
        threads = SESSION_THREADS if threads is None else threads
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                rewritten.SerializeToString(), options, providers=providers
            )
        except Exception as error:  # ORT raises its own Fail/InvalidGraph types
            raise ShapeMismatchError(
                f"onnxruntime cannot run the model at batch size {batch_size}: {_first_line(error)}"
            ) from None
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.timings = RepeatTimings()
        self.layers: tuple[LayerInfo, ...] = ()
        self._bound_input: tuple[np.ndarray, object] | None = None

    def run(self, inputs: np.ndarray, *, seed: int, repeat: int) -> PatternMatrix:
        """One forward pass with the weights of ``repeat``; returns the packed patterns."""
        if inputs.shape[0] != self.batch_size:
            raise ShapeMismatchError(
                f"session was built for S={self.batch_size}, got a batch of {inputs.shape[0]}"
            )
        start = time.perf_counter()
        feeds = draw(self.init, self._random, seed, repeat)
        feeds[self.input_name] = np.ascontiguousarray(inputs, dtype=np.float32)
        drawn = time.perf_counter()
        blocks: list[np.ndarray] = []
        shapes: list[tuple[int, ...]] = []
        forward = pack = 0.0
        for group in self.groups:
            t0 = time.perf_counter()
            try:
                outputs = self._forward(group, feeds)
            except Exception as error:
                raise ShapeMismatchError(f"forward pass failed: {_first_line(error)}") from None
            t1 = time.perf_counter()
            for name, out in zip(group, outputs, strict=True):
                if self.pack_in_graph:
                    blocks.append(graph.join_sample_groups(out))
                    inferred = self._inferred_shapes[self.output_names.index(name)]
                    shapes.append(inferred[1:] if inferred else (out.shape[-1],))
                else:
                    blocks.append(pack_sample_bits(out))
                    shapes.append(tuple(out.shape[1:]))
            del outputs  # free this group's booleans before the next pass
            forward += t1 - t0
            pack += time.perf_counter() - t1
        if not self.layers:
            offset, layers = 0, []
            for activation, shape, block in zip(self.activations, shapes, blocks, strict=True):
                layers.append(LayerInfo(activation.name, activation.op, shape, offset, len(block)))
                offset += len(block)
            self.layers = tuple(layers)
        t2 = time.perf_counter()
        words = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        matrix = PatternMatrix(words, self.batch_size, self.layers)
        self.timings.draw += drawn - start
        self.timings.forward += forward
        self.timings.pack += pack + time.perf_counter() - t2
        return matrix

    def _forward(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One pass; with I/O binding the data stays on the device across repeats and only the
        pattern outputs are copied back (the CUDA path)."""
        if not self.io_binding:
            return self.session.run(names, feeds)
        import onnxruntime as ort

        device = "cuda" if self.device == "cuda" else "cpu"
        data = feeds[self.input_name]
        if self._bound_input is None or self._bound_input[0] is not data:
            value = ort.OrtValue.ortvalue_from_numpy(data, device, 0)
            self._bound_input = (data, value)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, self._bound_input[1])
        for name, array in feeds.items():
            if name != self.input_name:
                binding.bind_cpu_input(name, array)
        for name in names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    @property
    def passes(self) -> int:
        """Forward passes per repeat (more than 1 when the patterns are read in layer groups)."""
        return len(self.groups)


#: the most BOOL pattern bytes one forward pass returns before layers are read in groups
DEFAULT_MAX_PATTERN_BYTES = 1 << 30


def _inferred_shapes(model: onnx.ModelProto, names: Sequence[str]) -> list[tuple[int, ...] | None]:
    """Static shapes of the BOOL pattern tensors from shape inference (None where unknown)."""
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:
        return [None] * len(names)
    known: dict[str, tuple[int, ...]] = {}
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            known[value.name] = tuple(int(d.dim_value) for d in dims)
    return [known.get(name) for name in names]


def _group_outputs(
    names: Sequence[str], sizes: Sequence[int | None], budget: int
) -> list[list[str]]:
    """Consecutive groups of outputs, each at most ``budget`` bytes (unknown sizes: alone)."""
    if all(size is not None for size in sizes) and sum(sizes) <= budget:  # type: ignore[arg-type]
        return [list(names)]
    groups: list[list[str]] = []
    current: list[str] = []
    used = 0
    for name, size in zip(names, sizes, strict=True):
        if size is None or (current and used + size > budget):
            if current:
                groups.append(current)
            current, used = [], 0
        current.append(name)
        used += size or 0
        if size is None:
            groups.append(current)
            current, used = [], 0
    if current:
        groups.append(current)
    return groups


def _bake_constants(
    model: onnx.ModelProto, params: Sequence[graph.ParameterInfo], init: str
) -> onnx.ModelProto:
    """Set parameters with a fixed value under ``init`` (biases 0, BN 1/0) in the graph."""
    fixed = {p.name: constant_value(init, p.role) for p in params}
    fixed = {name: value for name, value in fixed.items() if value is not None}
    if not fixed:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for index, init_tensor in enumerate(out.graph.initializer):
        if init_tensor.name in fixed:
            array = numpy_helper.to_array(init_tensor)
            replacement = numpy_helper.from_array(
                np.full(array.shape, fixed[init_tensor.name], dtype=array.dtype), init_tensor.name
            )
            out.graph.initializer[index].CopyFrom(replacement)
    return out


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
