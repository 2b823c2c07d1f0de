"""The torch backend: run the module itself and intercept every gate call.

A ``TorchFunctionMode`` sees ``nn.ReLU`` modules, ``F.relu``, ``torch.relu``, ``Tensor.relu``
(and their in-place forms), ``F.relu6``/``F.hardtanh(0, ·)``, ``F.leaky_relu``, ``F.prelu``,
and the other gates of :data:`~swapprobe.capture.activations.GATE_KINDS` (``F.gelu`` — which
``nn.GELU`` and the transformers library's GELU modules call —, ``F.silu``, ``F.hardswish``,
``F.mish``, ``F.elu``, ``F.selu``, ``F.celu``) alike — module hooks would miss the functional
calls. Each bit is the sign of the call's input (read from the output for ReLU and ReLU6: the
same bits). A gate written out by hand (``x * torch.sigmoid(x)``, GPT-2's tanh GELU) is found
from the elementwise calls around it (:mod:`swapprobe.capture.torch_gates`), by the rule the
ONNX backend applies to the graph.

Only activations whose tensor carries the batch axis count: on the first run the module also
runs on 2 samples (3 when S = 2), and a call whose shape does not move with the sample count
(a ReLU on a learned parameter) is left out, as the ONNX backend leaves it out. BatchNorm
layers run in training mode (batch statistics), dropout is off, on a private copy of the
module so the user's module is never changed. Weights are drawn by
:func:`swapprobe.capture.weights.draw` under the same names the ONNX export uses, so both
backends see identical weights.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from swapprobe.capture.activations import DEFAULT_ACTIVATIONS
from swapprobe.capture.digest import module_digest
from swapprobe.capture.feeds import module_keywords
from swapprobe.capture.gate_rules import READ_OUTPUT, select_kinds, summary_line
from swapprobe.capture.graph import ParameterInfo
from swapprobe.capture.runner import ModelOrigin, OriginMixin, RunnerTimings
from swapprobe.capture.shapes import UNKNOWN_AXIS, batch_axes
from swapprobe.capture.torch_gates import ExpressionTracker, expression_ops
from swapprobe.capture.weights import check_scheme, constant_value, draw, is_random
from swapprobe.errors import NoActivationError, SettingsError
from swapprobe.patterns import LayerInfo, PatternMatrix, pack_sample_bits

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ["TorchPatternRunner", "module_digest", "module_parameters", "plain_attention"]


def module_parameters(module: nn.Module) -> list[ParameterInfo]:
    """Parameters with the roles the init schemes use, named as ``named_parameters`` does."""
    import torch.nn as nn

    conv_like = (
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.ConvTranspose1d,
        nn.ConvTranspose2d,
        nn.ConvTranspose3d,
        nn.Linear,
    )
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    found: list[ParameterInfo] = []
    for path, sub in module.named_modules():
        prefix = f"{path}." if path else ""
        if isinstance(sub, conv_like):
            weight = sub.weight
            fan_in = int(np.prod(weight.shape[1:]))
            found.append(ParameterInfo(prefix + "weight", "weight", tuple(weight.shape), fan_in))
            if sub.bias is not None:
                found.append(ParameterInfo(prefix + "bias", "bias", tuple(sub.bias.shape), fan_in))
        elif isinstance(sub, nn.MultiheadAttention):
            # in_proj_* are raw parameters (out_proj is a Linear, found on its own)
            for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                weight = getattr(sub, name, None)
                if weight is not None:
                    shape = tuple(weight.shape)
                    found.append(ParameterInfo(prefix + name, "weight", shape, shape[1]))
            if sub.in_proj_bias is not None:
                shape = tuple(sub.in_proj_bias.shape)
                found.append(ParameterInfo(prefix + "in_proj_bias", "bias", shape, sub.embed_dim))
        elif isinstance(sub, norms) and sub.affine:
            found.append(ParameterInfo(prefix + "weight", "bn_scale", tuple(sub.weight.shape), 1))
            found.append(ParameterInfo(prefix + "bias", "bn_bias", tuple(sub.bias.shape), 1))
    return found


@contextlib.contextmanager
def plain_attention() -> Iterator[None]:
    """Switch off PyTorch's fused attention fast path (``_transformer_encoder_layer_fwd``,
    ``_native_multi_head_attention``), then restore it.

    In eval mode without grad, ``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention``
    run one fused kernel: its activation is invisible to the recorder and the ONNX exporter
    cannot translate it. The plain path computes the same function with ordinary ops.
    """
    import torch

    backend = torch.backends.mha
    before = backend.get_fastpath_enabled()
    backend.set_fastpath_enabled(False)
    try:
        yield
    finally:
        backend.set_fastpath_enabled(before)


class TorchPatternRunner(OriginMixin):
    """Scores a torch module directly, without ONNX (a
    :class:`~swapprobe.capture.runner.PatternRunner`, one forward per repeat).

    ``activations`` selects the kinds counted as for
    :class:`~swapprobe.capture.session.PatternSession` (default
    :data:`~swapprobe.capture.activations.DEFAULT_ACTIVATIONS`); after the first run ``kinds``,
    ``not_counted`` and ``no_batch`` (kind → units) and :meth:`activation_summary` say what was
    counted and what was left out.

    The data input is passed positionally (int64 for token ids, else float32); the
    ``extra_inputs`` (name → array of S samples, e.g. ``attention_mask``) that ``forward``
    names are passed as keyword arguments with every run, the others not at all.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        batch_size: int,
        init: str = "gaussian",
        activations: str = DEFAULT_ACTIVATIONS,
        extra_inputs: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        import torch
        import torch.nn as nn

        start = time.perf_counter()
        check_scheme(init)
        if batch_size < 2:
            raise SettingsError(f"batch size S must be at least 2, got {batch_size}")
        self.module = copy.deepcopy(module)
        self.module.eval()
        for sub in self.module.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.train()
        self.init = init
        self.batch_size = batch_size
        self.selected = select_kinds(activations)
        self.kinds: dict[str, int] = {}
        self.not_counted: dict[str, int] = {}
        self.no_batch: dict[str, int] = {}
        self._axes: list[int | None] | None = None
        self.parameters = module_parameters(self.module)
        # Θ counts every parameter, also those the forward never uses
        counted = sum(p.numel() for p in module.parameters())
        self.origin = ModelOrigin(counted, module_digest(module))
        self._tensors = dict(self.module.named_parameters())
        self._random = [p for p in self.parameters if is_random(init, p.role)]
        self._bake_constants()
        self._keywords = {
            name: torch.as_tensor(_as_fed(array))
            for name, array in module_keywords(self.module, extra_inputs or {}).items()
        }
        for name, tensor in self._keywords.items():
            if tensor.ndim < 1 or tensor.shape[0] != batch_size:
                raise SettingsError(
                    f"input {name!r} has shape {tuple(tensor.shape)}; it needs {batch_size} samples"
                )
        self.provider = "torch"
        self.device = "cpu"
        self.layers: tuple[LayerInfo, ...] = ()
        self.timings = RunnerTimings(session=time.perf_counter() - start)
        self.passes = 1

    def _bake_constants(self) -> None:
        import torch

        with torch.no_grad():
            for param in self.parameters:
                value = constant_value(self.init, param.role)
                if value is not None:
                    self._tensors[param.name].fill_(value)

    def run(self, inputs: np.ndarray, *, seed: int, repeat: int) -> PatternMatrix:
        import torch

        start = time.perf_counter()
        with torch.no_grad():
            for name, array in draw(self.init, self._random, seed, repeat).items():
                self._tensors[name].copy_(torch.from_numpy(array))
        drawn = time.perf_counter()
        batch = torch.as_tensor(_as_fed(inputs))
        recorded = self._forward(batch, self._keywords)
        if self._axes is None:
            self._find_batch_axes(batch, recorded)
        assert self._axes is not None
        if len(recorded) != len(self._axes):
            raise NoActivationError(
                f"the module made {len(recorded)} activation calls, {len(self._axes)} on the "
                "first run: its control flow depends on the weights; score it with backend onnx"
            )
        ran = time.perf_counter()
        blocks, layers, offset = [], [], 0
        for index, ((op, active), axis) in enumerate(zip(recorded, self._axes, strict=True)):
            if axis is None or op not in self.selected:
                continue
            active = active.movedim(axis, 0) if axis else active
            sample = tuple(active.shape[1:])
            if active.shape[0] != self.batch_size:  # (S·T, F): rows per sample, sample-major
                sample = (active.shape[0] // self.batch_size, *sample)
            block = pack_sample_bits(active.reshape(self.batch_size, -1).numpy())
            blocks.append(block)
            layers.append(LayerInfo(f"{op}_{index}", op, sample, offset, len(block)))
            offset += len(block)
        if not self.layers:
            self.layers = tuple(layers)
        matrix = PatternMatrix(np.concatenate(blocks), self.batch_size, self.layers)
        self.timings.draw += drawn - start
        self.timings.forward += ran - drawn
        self.timings.pack += time.perf_counter() - ran
        return matrix

    def run_all(
        self, inputs: np.ndarray, *, seed: int, repeats: int | Sequence[int]
    ) -> list[PatternMatrix]:
        """:meth:`run` of each repeat (``range(repeats)``, or the repeats listed)."""
        wanted = range(repeats) if isinstance(repeats, int) else repeats
        return [self.run(inputs, seed=seed, repeat=repeat) for repeat in wanted]

    def repeat_batches(self, repeats: int) -> list[list[int]]:
        """One repeat at a time (each is its own forward pass)."""
        return [[repeat] for repeat in range(repeats)]

    def _forward(self, batch: Any, keywords: Mapping[str, Any]) -> list[tuple[str, Any]]:
        import torch

        recorded: list[tuple[str, torch.Tensor]] = []
        with torch.no_grad(), plain_attention(), _ActivationRecorder(recorded):
            self.module(batch, **keywords)
        return recorded

    def _find_batch_axes(self, batch: Any, recorded: list[tuple[str, Any]]) -> None:
        """Run a second, small batch once (2 samples, 3 when S = 2): an activation whose shape
        does not move with the sample count has no batch axis and is left out (as the ONNX
        backend leaves it out). Small, because at one draw of S = 128 token sequences a
        second run of S + 1 samples doubled the score's cost."""
        import torch

        other = 2 if self.batch_size > 2 else 3
        rows = torch.arange(other) % self.batch_size
        wider = self._forward(
            batch[rows], {name: value[rows] for name, value in self._keywords.items()}
        )
        names = [str(index) for index in range(len(recorded))]
        shapes = {n: tuple(a.shape) for n, (_, a) in zip(names, recorded, strict=True)}
        if len(wider) == len(recorded):
            others = {n: tuple(a.shape) for n, (_, a) in zip(names, wider, strict=True)}
            axes = batch_axes(shapes, others, names, self.batch_size, other)
        else:
            axes = dict.fromkeys(names, UNKNOWN_AXIS)
        found: list[int | None] = []
        counted: list[tuple[str, int]] = []
        for name, (op, active) in zip(names, recorded, strict=True):
            axis = axes[name]
            axis = 0 if axis == UNKNOWN_AXIS else axis
            found.append(axis)
            units = active.numel() if axis is None else active.numel() // self.batch_size
            if op not in self.selected:
                _add(self.not_counted, op, units)
            elif axis is None:
                _add(self.no_batch, op, units)
            else:
                counted.append((op, units))
        for op, units in counted:
            _add(self.kinds, op, units)
        if not counted:
            what = ", ".join(sorted({op for op, _ in recorded})) or "none"
            raise NoActivationError(
                "the module called no counted activation on its samples in its forward pass "
                f"(kinds counted: {', '.join(sorted(self.selected))}; called: {what})"
            )
        self._axes = found

    def activation_summary(self) -> str:
        """One line: kinds counted with their units and what was left out (after a run)."""
        return summary_line(self.kinds, self.not_counted, self.no_batch)


def _as_fed(array: np.ndarray) -> np.ndarray:
    """Integers (token ids, masks) as int64, what embeddings take; booleans as they are;
    everything else float32."""
    kind = array.dtype.kind
    dtype = np.int64 if kind in "iu" else np.bool_ if kind == "b" else np.float32
    return np.ascontiguousarray(array, dtype=dtype)


def _add(table: dict[str, int], kind: str, units: int) -> None:
    table[kind] = table.get(kind, 0) + units


def _activation_functions() -> dict[Any, str]:
    import torch
    import torch.nn.functional as F

    return {
        torch.relu: "Relu",
        torch.relu_: "Relu",
        F.relu: "Relu",
        F.relu_: "Relu",
        torch.Tensor.relu: "Relu",
        torch.Tensor.relu_: "Relu",
        F.relu6: "Clip",
        F.hardtanh: "Clip",
        F.hardtanh_: "Clip",
        F.leaky_relu: "LeakyRelu",
        F.leaky_relu_: "LeakyRelu",
        F.prelu: "PRelu",
        F.gelu: "Gelu",
        F.silu: "Silu",
        F.hardswish: "HardSwish",
        F.mish: "Mish",
        F.elu: "Elu",
        F.elu_: "Elu",
        F.selu: "Selu",
        torch.selu: "Selu",
        torch.selu_: "Selu",
        F.celu: "Celu",
        torch.celu: "Celu",
        torch.celu_: "Celu",
    }


def _first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs["input"]


class _ActivationRecorder:
    """Context manager: a TorchFunctionMode that records ``pre-activation > 0`` per call."""

    def __init__(self, sink: list[tuple[str, Any]]) -> None:
        from torch.overrides import TorchFunctionMode

        functions = _activation_functions()
        expressions = expression_ops()
        tracker = ExpressionTracker()

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                kwargs = kwargs or {}
                op = functions.get(func)
                if op is None:
                    expression = expressions.get(func)
                    if expression is None:
                        return func(*args, **kwargs)
                    gate = tracker.gate_before(expression, args)
                    if gate is not None:  # x · g(x) written out: read x before the call
                        sink.append((gate[0], gate[1] > 0))
                    out = func(*args, **kwargs)
                    tracker.note(expression, func, args, out)
                    return out
                if op == "Clip" and _hardtanh_min(func, args, kwargs) != 0.0:
                    return func(*args, **kwargs)
                if op not in READ_OUTPUT:  # before the call: in-place forms overwrite it
                    sink.append((op, _first_tensor(args, kwargs) > 0))
                    return func(*args, **kwargs)
                out = func(*args, **kwargs)
                sink.append((op, out > 0))
                return out

        self._mode = Mode()

    def __enter__(self) -> _ActivationRecorder:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)


def _hardtanh_min(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    import torch.nn.functional as F

    if func is F.relu6:
        return 0.0
    if len(args) > 1:
        return float(args[1])
    return float(kwargs.get("min_val", -1.0))
