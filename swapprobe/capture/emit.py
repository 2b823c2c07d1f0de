"""Search-space networks → ONNX by walking their modules, without tracing.

Why: the TorchScript exporter spends about 0.3 s on a NAS-Bench-201 network (tracing a
forward, then running its passes over ~1000 intermediate nodes), which was two thirds of
the time to score an architecture. The networks of the built-in search spaces are made of a
handful of layer types, so their graph can be written directly with ``onnx.helper`` in a few
milliseconds.

The emitted graph computes what the exporter's graph computes, in the same order, with the
same initializer names (the weight draws are seeded by name) and the same node and tensor
names (``/cells/cells.0/edges.1/edges.1.0/Relu_output_0``: the layer names of reports and
stores). Only index bookkeeping may be written more compactly (one ``Slice`` where the
exporter writes ``Shape``/``Gather``/``Unsqueeze`` chains). The tests hold every op of both
spaces to bit-identical patterns and identical layer names against the traced export.

A module opts in by defining ``emit_onnx(self, emitter, *inputs) -> str`` on its class (the
root network and any container whose ``forward`` is more than a chain). Plain layers are
written by :class:`GraphEmitter` itself; an unsupported layer raises :class:`EmitError` and
:func:`swapprobe.capture.export.export_module` falls back to tracing.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ["EmitError", "GraphEmitter", "can_emit", "emit_module"]

_OUTPUT_NAME = "output"


class EmitError(NotImplementedError):
    """A module (or a setting of it) that :class:`GraphEmitter` cannot write."""


def can_emit(module: object) -> bool:
    """Whether ``module``'s class writes its own graph (the opt-in of search-space networks)."""
    return callable(getattr(type(module), "emit_onnx", None))


def emit_module(
    module: nn.Module,
    sample_shape: Sequence[int],
    *,
    input_name: str,
    opset: int,
    elem_type: int = TensorProto.FLOAT,
) -> onnx.ModelProto:
    """The ONNX model of ``module`` (which must :func:`can_emit`) for samples of ``sample_shape``.

    The batch axis is symbolic (``batch``), as in a traced export with a dynamic first axis;
    ``elem_type`` is the input's (``INT64`` for token ids).
    """
    emitter = GraphEmitter(module, sample_shape)
    output = module.emit_onnx(emitter, input_name)  # type: ignore[operator]
    return emitter.model(input_name, list(sample_shape), output, opset=opset, elem_type=elem_type)


class GraphEmitter:
    """Collects the nodes and initializers of one module tree.

    Names follow the TorchScript exporter: each *called* module adds a scope whose name is
    its qualified name from the last non-numeric atom on (``cells.0.edges.1.0`` → ``edges.1.0``);
    a node is ``/{scopes}/{OpType}`` with ``_k`` for the k-th repeat of that op in that scope,
    and its output is the node name plus ``_output_0``.
    """

    def __init__(self, root: nn.Module, sample_shape: Sequence[int] = ()) -> None:
        self.root = root
        #: one sample's shape (no batch axis): what layers whose constants depend on the
        #: input's size (a transform matrix over T tokens) are written for
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names_by_module = {id(m): name for name, m in root.named_modules()}
        self._initialized: dict[int, str] = {}  # id(tensor) → initializer name
        self._scopes: list[str] = []
        self._counts: Counter[tuple[str, str]] = Counter()

    # --- scopes and nodes ---------------------------------------------------------------
    @contextmanager
    def scope(self, module: nn.Module) -> Iterator[str]:
        """Enter ``module``'s scope; yields its qualified name (``""`` for the root)."""
        qualified = self._names_by_module[id(module)]
        if qualified:
            self._scopes.append(_unqualified(qualified))
        try:
            yield qualified
        finally:
            if qualified:
                self._scopes.pop()

    def node(self, op_type: str, inputs: Sequence[str], **attributes: Any) -> str:
        """Append one node in the current scope; returns its output tensor's name."""
        prefix = "/" + "/".join(self._scopes) + "/" if self._scopes else "/"
        count = self._counts[(prefix, op_type)]
        self._counts[(prefix, op_type)] += 1
        name = f"{prefix}{op_type}" + (f"_{count}" if count else "")
        output = f"{name}_output_0"
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [output], name=name, **attributes)
        )
        return output

    def constant(self, value: np.ndarray) -> str:
        """A ``Constant`` node in the current scope holding ``value``."""
        return self.node("Constant", [], value=numpy_helper.from_array(np.asarray(value)))

    def zeros_like(self, x: str) -> str:
        """``x.mul(0.)``: zeros that keep the data dependence (as the ``none`` ops do)."""
        return self.node("Mul", [x, self.constant(np.array(0.0, np.float32))])

    def slice(
        self, x: str, starts: Sequence[int], axes: Sequence[int], steps: Sequence[int]
    ) -> str:
        """``x[..., start::step, ...]`` on ``axes`` (to the end of each axis)."""
        ends = [np.iinfo(np.int64).max] * len(axes)
        bounds = [np.asarray(v, np.int64) for v in (starts, ends, axes, steps)]
        return self.node("Slice", [x, *(self.constant(b) for b in bounds)])

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b])

    def concat(self, xs: Sequence[str], axis: int = 1) -> str:
        return self.node("Concat", list(xs), axis=axis)

    def flatten(self, x: str) -> str:
        """``x.flatten(1)`` / ``torch.flatten(x, 1)``."""
        return self.node("Flatten", [x], axis=1)

    def parameter(self, module: nn.Module, attribute: str) -> str:
        """The initializer for ``module.<attribute>`` (a parameter or buffer), added once.

        A tensor shared by two modules (tied weights) is one initializer under its first
        name, as the exporter keeps it: re-drawn weights stay tied.
        """
        tensor = getattr(module, attribute)
        if id(tensor) in self._initialized:
            return self._initialized[id(tensor)]
        name = f"{self._names_by_module[id(module)]}.{attribute}".lstrip(".")
        self.initializers.append(numpy_helper.from_array(tensor.detach().cpu().numpy(), name))
        self._initialized[id(tensor)] = name
        return name

    # --- modules ------------------------------------------------------------------------
    def __call__(self, module: nn.Module, *inputs: str) -> str:
        """Write ``module`` applied to ``inputs``; returns the output tensor's name."""
        import torch.nn as nn

        if isinstance(module, nn.Identity):  # traced away: no node, no scope
            return inputs[0]
        with self.scope(module):
            if can_emit(module):
                return module.emit_onnx(self, *inputs)  # type: ignore[operator]
            if isinstance(module, nn.Sequential):
                x = inputs[0]
                for child in module:
                    x = self(child, x)
                return x
            (x,) = inputs
            writer = _layer_writers().get(type(module))
            if writer is None:
                raise EmitError(f"no ONNX writer for {type(module).__name__}")
            return writer(self, module, x)

    def model(
        self,
        input_name: str,
        sample_shape: list[int],
        output: str,
        *,
        opset: int,
        elem_type: int = TensorProto.FLOAT,
    ) -> onnx.ModelProto:
        """The finished model: ``output`` renamed to ``"output"``, batch axis symbolic."""
        for node in self.nodes:
            node.output[:] = [_OUTPUT_NAME if o == output else o for o in node.output]
            node.input[:] = [_OUTPUT_NAME if i == output else i for i in node.input]
        graph = helper.make_graph(
            self.nodes,
            "main_graph",
            [helper.make_tensor_value_info(input_name, elem_type, ["batch", *sample_shape])],
            [helper.make_tensor_value_info(_OUTPUT_NAME, TensorProto.FLOAT, None)],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="swapprobe"
        )
        model.ir_version = 8
        # The output's shape is whatever the layers make of the input: let ONNX infer it (a
        # graph output must have one to pass the checker).
        inferred = shape_inference.infer_shapes(model)
        model.graph.output[0].CopyFrom(inferred.graph.output[0])
        return model


def _unqualified(qualified: str) -> str:
    """``cells.0.edges.1.0`` → ``edges.1.0``: from the last non-numeric atom on (as torch)."""
    atoms = qualified.split(".")
    for index in range(len(atoms) - 1, -1, -1):
        if not atoms[index].isnumeric():
            return ".".join(atoms[index:])
    return qualified


def _pair(value: int | tuple[int, ...]) -> list[int]:
    return [value, value] if isinstance(value, int) else list(value)


# --- plain layers ----------------------------------------------------------------------------
def _relu(g: GraphEmitter, module: Any, x: str) -> str:
    return g.node("Relu", [x])


def _conv2d(g: GraphEmitter, module: Any, x: str) -> str:
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        raise EmitError(f"Conv2d padding {module.padding!r}/{module.padding_mode!r}")
    inputs = [x, g.parameter(module, "weight")]
    if module.bias is not None:
        inputs.append(g.parameter(module, "bias"))
    pad = _pair(module.padding)
    return g.node(
        "Conv",
        inputs,
        dilations=_pair(module.dilation),
        group=module.groups,
        kernel_shape=_pair(module.kernel_size),
        pads=pad + pad,
        strides=_pair(module.stride),
    )


def _batchnorm2d(g: GraphEmitter, module: Any, x: str) -> str:
    if not (module.affine and module.track_running_stats):
        raise EmitError("BatchNorm2d without affine parameters or running statistics")
    names = [g.parameter(module, a) for a in ("weight", "bias", "running_mean", "running_var")]
    return g.node(
        "BatchNormalization",
        [x, *names],
        epsilon=float(module.eps),
        momentum=1.0 - float(module.momentum if module.momentum is not None else 0.1),
        training_mode=0,
    )


def _pool_attributes(module: Any) -> dict[str, Any]:
    if module.ceil_mode or getattr(module, "divisor_override", None) is not None:
        raise EmitError(f"{type(module).__name__} with ceil_mode or a divisor override")
    stride = module.stride if module.stride is not None else module.kernel_size
    pad = _pair(module.padding)
    return {
        "ceil_mode": 0,
        "kernel_shape": _pair(module.kernel_size),
        "pads": pad + pad,
        "strides": _pair(stride),
    }


def _avgpool2d(g: GraphEmitter, module: Any, x: str) -> str:
    attributes = _pool_attributes(module)
    attributes["count_include_pad"] = int(module.count_include_pad)
    # The exporter lists count_include_pad right after ceil_mode; order is cosmetic.
    return g.node("AveragePool", [x], **attributes)


def _maxpool2d(g: GraphEmitter, module: Any, x: str) -> str:
    if module.return_indices:
        raise EmitError("MaxPool2d with return_indices")
    attributes = _pool_attributes(module)
    attributes["dilations"] = _pair(module.dilation)
    return g.node("MaxPool", [x], **attributes)


def _adaptive_avgpool2d(g: GraphEmitter, module: Any, x: str) -> str:
    if _pair(module.output_size) != [1, 1]:
        raise EmitError(f"AdaptiveAvgPool2d to {module.output_size}")
    return g.node("GlobalAveragePool", [x])


def _linear(g: GraphEmitter, module: Any, x: str) -> str:
    inputs = [x, g.parameter(module, "weight")]
    if module.bias is not None:
        inputs.append(g.parameter(module, "bias"))
    return g.node("Gemm", inputs, alpha=1.0, beta=1.0, transB=1)


@functools.cache
def _layer_writers() -> dict[type, Any]:
    """The writer of each plain layer type (built on first use: importing this module needs
    no torch)."""
    import torch.nn as nn

    return {
        nn.ReLU: _relu,
        nn.Conv2d: _conv2d,
        nn.BatchNorm2d: _batchnorm2d,
        nn.AvgPool2d: _avgpool2d,
        nn.MaxPool2d: _maxpool2d,
        nn.AdaptiveAvgPool2d: _adaptive_avgpool2d,
        nn.Linear: _linear,
    }
