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
        rewritten, self.output_names = graph.expose_patterns(rewritten, self.activations)
        # Only the patterns are wanted: drop the model's own outputs so ORT prunes the tail.
        keep = [o for o in rewritten.graph.output if o.name in set(self.output_names)]
        del rewritten.graph.output[:]
        rewritten.graph.output.extend(keep)
        self.model = rewritten

        options = ort.SessionOptions()
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if optimize
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                rewritten.SerializeToString(), options, providers=providers_for(device)
            )
        except Exception as error:  # ORT raises its own Fail/InvalidGraph types
            raise ShapeMismatchError(
                f"onnxruntime cannot run the model at batch size {batch_size}: {_first_line(error)}"
            ) from None
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"
        self.timings = RepeatTimings()
        self.layers: tuple[LayerInfo, ...] = ()

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
        try:
            outputs = self.session.run(self.output_names, feeds)
        except Exception as error:
            raise ShapeMismatchError(f"forward pass failed: {_first_line(error)}") from None
        ran = time.perf_counter()
        blocks = [pack_sample_bits(out) for out in outputs]
        if not self.layers:
            offset, layers = 0, []
            for activation, out, block in zip(self.activations, outputs, blocks, strict=True):
                layers.append(
                    LayerInfo(
                        activation.name, activation.op, tuple(out.shape[1:]), offset, len(block)
                    )
                )
                offset += len(block)
            self.layers = tuple(layers)
        words = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        matrix = PatternMatrix(words, self.batch_size, self.layers)
        done = time.perf_counter()
        self.timings.draw += drawn - start
        self.timings.forward += ran - drawn
        self.timings.pack += done - ran
        return matrix


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
