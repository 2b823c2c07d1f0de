"""One onnxruntime session that turns a batch into activation patterns, repeat after repeat.

The model is rewritten once (BN on batch statistics, re-drawn weights as inputs, a BOOL
``x > 0`` output per activation), the session is created once, and each repeat only feeds new
weights: no re-export, no new session.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from swapprobe.capture import graph
from swapprobe.capture.activations import DEFAULT_ACTIVATIONS, select_kinds, summary_line
from swapprobe.capture.feeds import as_declared, declared_dtype
from swapprobe.capture.folding import warn_if_folded
from swapprobe.capture.shapes import UNKNOWN_AXIS, batch_axes, static_shapes
from swapprobe.capture.weights import check_scheme, constant_value, draw, is_random
from swapprobe.errors import NoActivationError, SettingsError, ShapeMismatchError
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
        input_name: which graph input takes the data (needed when there are several and
            ``extra_inputs`` does not name all but one of them).
        device: ``auto`` | ``cpu`` | ``cuda``.
        optimize: enable ORT graph optimisations (patterns are bit-identical to an
            un-optimised session; a test checks this).
        threads: intra-op threads (default: :data:`SESSION_THREADS`).
        activations: which kinds count: ``relu`` | ``gates`` | ``Relu,Gelu,...`` (default
            :data:`~swapprobe.capture.activations.DEFAULT_ACTIVATIONS`).
        name: the model's name in warnings (default: the graph's name).
        batchnorm_layers: the number of BN layers of the source module, when known (a torch
            module was exported): decides the folded-BN warning exactly.
        extra_inputs: further named inputs (name → array of S samples, e.g. a token model's
            ``attention_mask``), fed with every run's data to the graph inputs of those names;
            those the graph does not declare are not fed. Each is fed in its input's declared
            dtype, as the data input is (int64 token ids, float32 images).

    Attributes (beside the patterns): ``kinds`` (kind → units counted), ``not_counted`` (kind →
    units of the kinds present but not selected; None where a shape is unknown), ``no_batch``
    (activations left out because their tensor has no batch axis, with their units), and
    :meth:`activation_summary` saying all three in one line.
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
        activations: str = DEFAULT_ACTIVATIONS,
        name: str | None = None,
        batchnorm_layers: int | None = None,
        extra_inputs: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        import onnxruntime as ort

        ort.set_default_logger_severity(4)  # no multi-line coloured log on a failing model
        check_scheme(init)
        if batch_size < 2:
            raise SettingsError(f"batch size S must be at least 2, got {batch_size}")
        self.init = init
        self.batch_size = batch_size
        self.parameters = graph.parameters(model)
        self.param_count = sum(int(np.prod(p.shape)) for p in self.parameters)
        extra_inputs = dict(extra_inputs or {})
        data_input = graph.model_input(model, input_name, others=extra_inputs)
        self.input_name = data_input.name
        self.input_dtype = declared_dtype(data_input)
        self.extra = _declared_extras(model, self.input_name, extra_inputs, batch_size)

        self.name = name or model.graph.name or "model"
        self.batchnorm_warning = warn_if_folded(model, self.name, batchnorm_layers=batchnorm_layers)
        kinds = select_kinds(activations)

        # Fixed values first (biases 0, BN 1/0), so the BN rewrite can drop the no-op scaling.
        rewritten = _bake_constants(model, self.parameters, init)
        rewritten = graph.batchnorm_on_batch_statistics(rewritten)
        self._random = [p for p in self.parameters if is_random(init, p.role)]
        rewritten = graph.parameters_as_inputs(rewritten, [p.name for p in self._random])
        unsized = rewritten
        rewritten = self._sized(rewritten, batch_size, sample_shape)
        self._select(unsized, rewritten, kinds, activations, sample_shape)
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
            rewritten,
            self.activations,
            packed_samples=batch_size if self.pack_in_graph else None,
            permutations=self._permutations,
        )
        # Only the patterns are wanted: drop the model's own outputs so ORT prunes the tail.
        keep = [o for o in rewritten.graph.output if o.name in set(self.output_names)]
        del rewritten.graph.output[:]
        rewritten.graph.output.extend(keep)
        self.model = rewritten
        # Large models: the pattern outputs of all layers at once may not fit. Group the layers
        # so each forward pass returns at most ``max_pattern_bytes``; more passes, same
        # patterns. (Splitting the *samples* instead would change BatchNorm's batch statistics.)
        # Sizes come from the shapes inferred above; any still unknown are measured on the
        # first run, and the layers regrouped from then on.
        self._budget = DEFAULT_MAX_PATTERN_BYTES if max_pattern_bytes is None else max_pattern_bytes
        # bytes returned per unit: S booleans, or one float32 per 16 samples
        self._per_unit = (
            4 * -(-batch_size // graph.GROUP_BITS) if self.pack_in_graph else batch_size
        )
        sizes = [
            None if shape is None else self._per_unit * int(np.prod(shape))
            for shape in self._sample_shapes
        ]
        self._regroup = any(size is None for size in sizes)
        self.groups = _group_outputs(self.output_names, sizes, self._budget)

        options = ort.SessionOptions()
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if optimize
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.log_severity_level = 4  # failures become one-line errors
        # Run each pattern node right after its activation (expose_patterns orders them so):
        # the default order keeps every activation's floats alive to the end of the graph
        # (ResNet-50, S = 64: peak 2.6 GB against 1.1 GB). Without the arena, memory freed by
        # one layer goes back at once; it measured no slower on small cells.
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        options.enable_cpu_mem_arena = False
        threads = SESSION_THREADS if threads is None else threads
        if threads is not None:
            options.intra_op_num_threads = threads
        self._external_dir: tempfile.TemporaryDirectory[str] | None = None
        try:
            self.session = ort.InferenceSession(
                self._serialised(rewritten), options, providers=providers
            )
        except Exception as error:  # ORT raises its own Fail/InvalidGraph types
            raise ShapeMismatchError(
                _fixed_batch_advice(model, self.input_name, batch_size)
                or f"onnxruntime cannot run the model at batch size {batch_size}: "
                f"{_first_line(error)}"
            ) from None
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.timings = RepeatTimings()
        self.layers: tuple[LayerInfo, ...] = ()
        self._bound_input: tuple[np.ndarray, object] | None = None

    def _sized(
        self, model: onnx.ModelProto, batch: int, sample_shape: Sequence[int]
    ) -> onnx.ModelProto:
        """The data input and every further input fixed to ``batch`` samples."""
        sized = graph.set_batch_size(model, self.input_name, batch, sample_shape)
        for name, array in self.extra.items():
            sized = graph.set_batch_size(sized, name, batch, array.shape[1:])
        return sized

    def _serialised(self, model: onnx.ModelProto) -> bytes | str:
        """The model as onnxruntime takes it: bytes, or over protobuf's 2 GiB limit a file
        with its weights in external data (in a folder that lives as long as the session)."""
        if not graph.is_large(model):
            return model.SerializeToString()
        self._external_dir = tempfile.TemporaryDirectory(prefix="swapprobe-")
        path = f"{self._external_dir.name}/model.onnx"
        onnx.save_model(
            model,  # its weights now point into the folder (onnx converts it in place)
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.bin",
        )
        return path

    def run(self, inputs: np.ndarray, *, seed: int, repeat: int) -> PatternMatrix:
        """One forward pass with the weights of ``repeat``; returns the packed patterns."""
        if inputs.shape[0] != self.batch_size:
            raise ShapeMismatchError(
                f"session was built for S={self.batch_size}, got a batch of {inputs.shape[0]}"
            )
        start = time.perf_counter()
        feeds = draw(self.init, self._random, seed, repeat)
        feeds[self.input_name] = as_declared(inputs, self.input_dtype, self.input_name)
        feeds.update(self.extra)
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
                known = self._sample_shapes[self.output_names.index(name)]
                if self.pack_in_graph:
                    blocks.append(graph.join_sample_groups(out))
                    shapes.append(known if known is not None else (out.shape[-1],))
                else:
                    blocks.append(pack_sample_bits(out.reshape(self.batch_size, -1)))
                    shapes.append(known if known is not None else tuple(out.shape[1:]))
            del outputs  # free this group's booleans before the next pass
            forward += t1 - t0
            pack += time.perf_counter() - t1
        if not self.layers:
            offset, layers = 0, []
            for activation, shape, block in zip(self.activations, shapes, blocks, strict=True):
                layers.append(LayerInfo(activation.name, activation.op, shape, offset, len(block)))
                offset += len(block)
            self.layers = tuple(layers)
            self.kinds = _units_by_kind((info.op, info.size) for info in self.layers)
        if self._regroup:  # sizes measured now: read the layers in as few passes as fit
            sizes = [self._per_unit * info.size for info in self.layers]
            self.groups = _group_outputs(self.output_names, sizes, self._budget)
            self._regroup = False
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

    def _select(
        self,
        unsized: onnx.ModelProto,
        sized: onnx.ModelProto,
        kinds: frozenset[str],
        selector: str,
        sample_shape: Sequence[int],
    ) -> None:
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
        shapes = static_shapes(sized, tensors)
        other = self._sized(unsized, self.batch_size + 1, sample_shape)
        axes = batch_axes(
            shapes, static_shapes(other, tensors), tensors, self.batch_size, self.batch_size + 1
        )
        # What the shapes cannot tell (lost ones), the graph can: not computed from the input.
        from_input = graph.downstream(sized, self.input_name)
        for name in self.extra:
            from_input |= graph.downstream(sized, name)
        axes |= {tensor: None for tensor in tensors if tensor not in from_input}
        self.activations: list[graph.Activation] = []
        self._permutations: list[list[int] | None] = []
        self._sample_shapes: list[tuple[int, ...] | None] = []
        not_counted: list[tuple[str, int | None]] = []
        self.no_batch: list[tuple[graph.Activation, int | None]] = []
        for activation in present:
            shape, axis = shapes.get(activation.tensor), axes[activation.tensor]
            if axis is None:
                units = None if shape is None else int(np.prod(shape))
                if activation.op in kinds:
                    self.no_batch.append((activation, units))
                else:
                    not_counted.append((activation.op, units))
                continue
            axis = 0 if axis == UNKNOWN_AXIS else axis
            sample = None
            if shape is not None:
                rest = [size for index, size in enumerate(shape) if index != axis]
                lead = shape[axis] // self.batch_size if axis == 0 else 1
                sample = (lead, *rest) if lead > 1 else tuple(rest)
            if activation.op not in kinds:
                not_counted.append((activation.op, None if sample is None else _size(sample)))
                continue
            self.activations.append(activation)
            self._sample_shapes.append(sample)
            rank = None if shape is None else len(shape)
            self._permutations.append(
                None
                if axis == 0 or rank is None
                else [axis, *(i for i in range(rank) if i != axis)]
            )
        if not self.activations:
            left = ", ".join(f"{a.op} {a.name}" for a, _ in self.no_batch)
            raise NoActivationError(
                f"{self.name}: every counted activation ({left}) acts on a tensor without a "
                "batch axis (learned parameters, not samples): its patterns cannot depend on "
                "the input"
            )
        self.not_counted = _units_by_kind(not_counted)
        self.kinds = _units_by_kind(
            (a.op, None if s is None else _size(s))
            for a, s in zip(self.activations, self._sample_shapes, strict=True)
        )

    def activation_summary(self) -> str:
        """One line: kinds counted with their units, kinds present but not counted, and the
        activations left out for having no batch axis."""
        no_batch = _units_by_kind((a.op, units) for a, units in self.no_batch)
        return summary_line(self.kinds, self.not_counted, no_batch)

    @property
    def passes(self) -> int:
        """Forward passes per repeat (more than 1 when the patterns are read in layer groups)."""
        return len(self.groups)


#: the most BOOL pattern bytes one forward pass returns before layers are read in groups
DEFAULT_MAX_PATTERN_BYTES = 1 << 30


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def _units_by_kind(items: Iterable[tuple[str, int | None]]) -> dict[str, int | None]:
    """kind → summed units, in first-seen order (None when any unit count is unknown)."""
    found: dict[str, int | None] = {}
    for kind, units in items:
        if kind not in found:
            found[kind] = units
        else:
            previous = found[kind]
            found[kind] = None if previous is None or units is None else previous + units
    return found


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


def _fixed_batch_advice(model: onnx.ModelProto, input_name: str, batch_size: int) -> str | None:
    """The one line for a model exported with a fixed batch (torch's default dynamo exporter
    bakes the example's batch of 1 into Reshape nodes), or None when its batch axis is free.

    SWAP needs S samples in one forward (BatchNorm's batch statistics couple them), so such a
    file cannot be scored as it is: say how to export one that can."""
    dims = graph.input_shape(graph.model_input(model, input_name))
    fixed = dims[0] if dims else None
    if not isinstance(fixed, int) or fixed <= 0 or fixed == batch_size:
        return None
    return (
        f"the model was exported with a fixed batch of {fixed} and cannot run {batch_size} "
        "samples at once; export it with a free batch axis and BatchNorm kept: "
        "torch.onnx.export(model, x, path, dynamo=False, do_constant_folding=False, "
        "input_names=['x'], dynamic_axes={'x': {0: 'batch'}}), or score the torch module "
        "itself (FILE.py:FUNCTION)"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
