"""One onnxruntime session that turns a batch into activation patterns, repeat after repeat.

The model is rewritten once (:func:`~swapprobe.capture.prepare.prepare`: BN on batch
statistics, re-drawn weights as inputs, an ``x > 0`` output per activation), the session is
opened once (:func:`~swapprobe.capture.runtime.open_session`), and each repeat only feeds new
weights: no re-export, no new session.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from swapprobe.capture import graph
from swapprobe.capture.activations import DEFAULT_ACTIVATIONS, summary_line
from swapprobe.capture.feeds import as_declared
from swapprobe.capture.fixed_batch import fixed_batch_advice
from swapprobe.capture.folding import warn_if_folded
from swapprobe.capture.prepare import prepare, units_by_kind
from swapprobe.capture.runner import ModelOrigin, OriginMixin, RunnerTimings
from swapprobe.capture.runtime import first_line, open_session, providers_for
from swapprobe.capture.weights import check_scheme, draw
from swapprobe.errors import SettingsError, ShapeMismatchError
from swapprobe.patterns import LayerInfo, PatternMatrix, pack_sample_bits

__all__ = ["DEFAULT_MAX_PATTERN_BYTES", "PatternSession"]

#: the most BOOL pattern bytes one forward pass returns before layers are read in groups
DEFAULT_MAX_PATTERN_BYTES = 1 << 30


class PatternSession(OriginMixin):
    """A rewritten model in an onnxruntime session (a
    :class:`~swapprobe.capture.runner.PatternRunner`, one forward pass per repeat).

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
        threads: intra-op threads (None: onnxruntime's default, every core).
        activations: which kinds count: ``relu`` | ``gates`` | ``Relu,Gelu,...`` (default
            :data:`~swapprobe.capture.activations.DEFAULT_ACTIVATIONS`).
        name: the model's name in warnings (default: the graph's name).
        batchnorm_layers: the number of BN layers of the source module, when known (a torch
            module was exported): decides the folded-BN warning exactly.
        extra_inputs: further named inputs (name → array of S samples, e.g. a token model's
            ``attention_mask``), fed with every run's data to the graph inputs of those names;
            those the graph does not declare are not fed. Each is fed in its input's declared
            dtype, as the data input is (int64 token ids, float32 images).
        origin: the parameter count and digest of the model this graph stands for (a module
            it was exported from); what it leaves None is read off the graph.

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
        origin: ModelOrigin | None = None,
    ) -> None:
        start = time.perf_counter()
        check_scheme(init)
        if batch_size < 2:
            raise SettingsError(f"batch size S must be at least 2, got {batch_size}")
        if pack not in ("auto", "host", "graph"):
            raise SettingsError(f"pack must be auto, host or graph, got {pack!r}")
        self.init = init
        self.batch_size = batch_size
        self.name = name or model.graph.name or "model"
        self.batchnorm_warning = warn_if_folded(model, self.name, batchnorm_layers=batchnorm_layers)
        providers = providers_for(device)
        # Packing inside the graph returns only bits (what the CUDA path needs), never holds a
        # whole layer's booleans, and measured faster on the CPU too (DARTS scoring cells 23 %,
        # NB201 even). ``host`` (booleans out, packed by numpy) stays as the plain reference.
        self.pack_in_graph = pack in ("auto", "graph")
        prepared = prepare(
            model,
            batch_size=batch_size,
            sample_shape=sample_shape,
            init=init,
            input_name=input_name,
            activations=activations,
            extra_inputs=extra_inputs,
            pack_in_graph=self.pack_in_graph,
            name=self.name,
        )
        self.prepared = prepared
        self.parameters = prepared.parameters
        self.origin = (origin or ModelOrigin()).completed(
            prepared.param_count, lambda: graph.model_digest(model)
        )
        self.input_name = prepared.input_name
        self.input_dtype = prepared.input_dtype
        self.extra = prepared.extra
        self._random = prepared.random
        self.activations = prepared.activations
        self._sample_shapes = prepared.sample_shapes
        self._permutations = prepared.permutations
        self.kinds = prepared.kinds
        self.not_counted = prepared.not_counted
        self.no_batch = prepared.no_batch
        self.output_names = prepared.output_names
        self.model = prepared.model
        on_cuda = providers[0] == "CUDAExecutionProvider"
        self.io_binding = on_cuda if io_binding is None else io_binding
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

        self._external_dir: tempfile.TemporaryDirectory[str] | None = None
        self.session = open_session(
            self._serialised(self.model),
            providers=providers,
            optimize=optimize,
            threads=threads,
            failure=f"onnxruntime cannot run the model at batch size {batch_size}",
            advice=_fixed_batch_advice(model, self.input_name, batch_size),
        )
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.layers: tuple[LayerInfo, ...] = ()
        self._bound_input: tuple[np.ndarray, object] | None = None
        self.timings = RunnerTimings(
            export=self.origin.export_seconds, session=time.perf_counter() - start
        )

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
                fixed = self.prepared.fixed_batch
                if fixed is not None and fixed != self.batch_size:
                    raise ShapeMismatchError(fixed_batch_advice(fixed, self.batch_size)) from None
                raise ShapeMismatchError(f"forward pass failed: {first_line(error)}") from None
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
            self.kinds = units_by_kind((info.op, info.size) for info in self.layers)
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

    def run_all(
        self, inputs: np.ndarray, *, seed: int, repeats: int | Sequence[int]
    ) -> list[PatternMatrix]:
        """:meth:`run` of each repeat (``range(repeats)``, or the repeats listed)."""
        wanted = range(repeats) if isinstance(repeats, int) else repeats
        return [self.run(inputs, seed=seed, repeat=repeat) for repeat in wanted]

    def repeat_batches(self, repeats: int) -> list[list[int]]:
        """One repeat at a time: a repeat's patterns are counted before the next is run, so
        at most one repeat's patterns are held (they can be gigabytes on large models)."""
        return [[repeat] for repeat in range(repeats)]

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

    def activation_summary(self) -> str:
        """One line: kinds counted with their units, kinds present but not counted, and the
        activations left out for having no batch axis."""
        no_batch = units_by_kind((a.op, units) for a, units in self.no_batch)
        return summary_line(self.kinds, self.not_counted, no_batch)

    @property
    def passes(self) -> int:
        """Forward passes per repeat (more than 1 when the patterns are read in layer groups)."""
        return len(self.groups)


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
