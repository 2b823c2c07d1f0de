"""The torch backend: run the module itself and intercept every ReLU-like call.

A ``TorchFunctionMode`` sees ``nn.ReLU`` modules, ``F.relu``, ``torch.relu``, ``Tensor.relu``
(and their in-place forms), ``F.relu6``/``F.hardtanh(0, ·)``, ``F.leaky_relu`` and ``F.prelu``
alike — module hooks would miss the functional calls. BatchNorm layers run in training mode
(batch statistics), dropout is off, on a private copy of the module so the user's module is
never changed. Weights are drawn by :func:`swapprobe.capture.weights.draw` under the same
names the ONNX export uses, so both backends see identical weights.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from swapprobe.capture.graph import ParameterInfo
from swapprobe.capture.weights import check_scheme, constant_value, draw, is_random
from swapprobe.errors import SettingsError
from swapprobe.patterns import LayerInfo, PatternMatrix, pack_sample_bits

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ["TorchPatternRunner", "module_parameters"]


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
        elif isinstance(sub, norms) and sub.affine:
            found.append(ParameterInfo(prefix + "weight", "bn_scale", tuple(sub.weight.shape), 1))
            found.append(ParameterInfo(prefix + "bias", "bn_bias", tuple(sub.bias.shape), 1))
    return found


class TorchPatternRunner:
    """Scores a torch module directly, without ONNX."""

    def __init__(self, module: nn.Module, *, batch_size: int, init: str = "gaussian") -> None:
        import torch.nn as nn

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
        self.parameters = module_parameters(self.module)
        self.param_count = sum(p.numel() for p in module.parameters())
        self._tensors = dict(self.module.named_parameters())
        self._random = [p for p in self.parameters if is_random(init, p.role)]
        self._bake_constants()
        self.provider = "torch"
        self.device = "cpu"
        self.layers: tuple[LayerInfo, ...] = ()
        self.timings: dict[str, float] = {"draw": 0.0, "forward": 0.0, "pack": 0.0}

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
        recorded: list[tuple[str, torch.Tensor]] = []
        with torch.no_grad(), _ActivationRecorder(recorded):
            self.module(torch.as_tensor(np.ascontiguousarray(inputs, dtype=np.float32)))
        ran = time.perf_counter()
        blocks = [pack_sample_bits(active.numpy()) for _, active in recorded]
        if not recorded:
            from swapprobe.errors import NoActivationError

            raise NoActivationError("the module called no ReLU-like function in its forward pass")
        if not self.layers:
            offset, layers = 0, []
            for index, ((op, active), block) in enumerate(zip(recorded, blocks, strict=True)):
                layers.append(
                    LayerInfo(f"{op}_{index}", op, tuple(active.shape[1:]), offset, len(block))
                )
                offset += len(block)
            self.layers = tuple(layers)
        matrix = PatternMatrix(np.concatenate(blocks), self.batch_size, self.layers)
        self.timings["draw"] += drawn - start
        self.timings["forward"] += ran - drawn
        self.timings["pack"] += time.perf_counter() - ran
        return matrix


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
    }


class _ActivationRecorder:
    """Context manager: a TorchFunctionMode that records ``pre-activation > 0`` per call."""

    def __init__(self, sink: list[tuple[str, Any]]) -> None:
        from torch.overrides import TorchFunctionMode

        functions = _activation_functions()

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                kwargs = kwargs or {}
                op = functions.get(func)
                if op is None:
                    return func(*args, **kwargs)
                if op == "Clip" and _hardtanh_min(func, args, kwargs) != 0.0:
                    return func(*args, **kwargs)
                if op in ("LeakyRelu", "PRelu"):
                    sink.append((op, args[0] > 0))
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
