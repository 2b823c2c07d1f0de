"""Which units count, and where they are in an ONNX graph: the gate rules of
:mod:`swapprobe.capture.gate_rules` applied to a graph's nodes.

Every counted unit is a *gate*: its output's sign is its input's sign, so the bit is
``1[pre-activation > 0]`` (SPEC, "Beyond ReLU"). Gates arrive as one op (``Relu``, ``Gelu``,
``HardSwish``, ``Elu``...) or decomposed by an exporter (GELU as ``0.5·x·(1 + Erf(x/√2))`` or
its Tanh approximation, SiLU as ``x·Sigmoid(x)``, Hardswish as ``x·HardSigmoid(x)``, Mish as
``x·Tanh(Softplus(x))``). Decomposed forms are recognised by the shape of the graph — a gating
function of ``x`` multiplied back onto the same ``x`` — never by node names.

A bounded squashing function alone (``Sigmoid``, ``Tanh``) is not a gate and never counts; an SE
block's ``x·Sigmoid(f(x))`` multiplies by a function of *another* tensor and is not one either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import onnx

from swapprobe.capture.gate_rules import (
    ANCHOR_KINDS,
    ELEMENTWISE,
    GATE_KINDS,
    MAX_EXPRESSION_DEPTH,
    READ_OUTPUT,
    RELU_KINDS,
    SHIFTS,
    gate_kind,
    select_kinds,
    summary_line,
)
from swapprobe.results import DEFAULT_ACTIVATIONS

__all__ = [
    "DEFAULT_ACTIVATIONS",
    "GATE_KINDS",
    "RELU_KINDS",
    "Activation",
    "find_gates",
    "select_kinds",
    "summary_line",
]


@dataclass(frozen=True)
class Activation:
    """One activation whose pattern is read: ``tensor`` is what ``Greater(·, 0)`` sees.

    ``op`` is the activation's kind (one of :data:`GATE_KINDS`): the op type for single-op
    activations, ``Gelu``/``Silu``/``HardSwish``/``Mish`` for the decomposed forms.
    """

    name: str  # output tensor of the activation (the layer's name in reports)
    op: str
    tensor: str


# --- recognition ---------------------------------------------------------------------
#: single-op activations (domain "" or com.microsoft) → kind
_SINGLE_OPS = {
    "Relu": "Relu",
    "LeakyRelu": "LeakyRelu",
    "PRelu": "PRelu",
    "Clip": "Clip",
    "Gelu": "Gelu",
    "FastGelu": "Gelu",
    "HardSwish": "HardSwish",
    "Mish": "Mish",
    "Elu": "Elu",
    "Selu": "Selu",
    "Celu": "Celu",
    "Swish": "Silu",
}


def find_gates(
    graph: onnx.GraphProto,
    is_constant: Callable[[str], bool],
    clip_is_relu: Callable[[onnx.NodeProto], bool],
) -> list[Activation]:
    """Every gate of :data:`GATE_KINDS` in graph order (of the node that completes it)."""
    producers = {out: node for node in graph.node for out in node.output if out}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    position = {id(node): index for index, node in enumerate(graph.node)}
    found: list[tuple[int, Activation]] = []
    for index, node in enumerate(graph.node):
        if not node.output or node.domain not in ("", "ai.onnx", "com.microsoft"):
            continue
        kind = _SINGLE_OPS.get(node.op_type)
        if kind is not None:
            if kind == "Clip" and not clip_is_relu(node):
                continue
            if node.op_type == "FastGelu" and len(node.input) > 1 and node.input[1]:
                continue  # bias folded in: the unit's input is x + bias, not a graph tensor
            tensor = node.output[0] if kind in READ_OUTPUT else node.input[0]
            found.append((index, Activation(node.output[0], kind, tensor)))
            continue
        if node.op_type in ANCHOR_KINDS:
            gate = _decomposed_gate(node, producers, consumers, is_constant)
            if gate is not None:
                mul, activation = gate
                found.append((position[id(mul)], activation))
    found.sort(key=lambda item: item[0])
    return [activation for _, activation in found]


def _decomposed_gate(
    anchor: onnx.NodeProto,
    producers: Mapping[str, onnx.NodeProto],
    consumers: Mapping[str, list[onnx.NodeProto]],
    is_constant: Callable[[str], bool],
) -> tuple[onnx.NodeProto, Activation] | None:
    """``x · g(x)`` around the gating function ``anchor``: the Mul and the activation, or None."""
    source = anchor.input[0]
    inner = producers.get(source)
    kind, through = gate_kind(anchor.op_type, None if inner is None else inner.op_type)
    if through:
        assert inner is not None
        source = inner.input[0]
    frontier, seen = [anchor.output[0]], 0
    while frontier and seen < 4:
        following: list[str] = []
        for tensor in frontier:
            for node in consumers.get(tensor, []):
                if node.op_type not in SHIFTS or len(node.input) != 2:
                    continue
                other = node.input[1] if node.input[0] == tensor else node.input[0]
                if is_constant(other):
                    following.append(node.output[0])  # 1 + g, 0.5 · g, ...
                    continue
                if node.op_type != "Mul" or other == tensor:
                    continue
                x = _unscaled(other, producers, is_constant)
                for name in (other, x):
                    if _function_of(source, name, producers, is_constant):
                        return node, Activation(node.output[0], kind, name)
        frontier, seen = following, seen + 1
    return None


def _function_of(
    tensor: str,
    x: str,
    producers: Mapping[str, onnx.NodeProto],
    is_constant: Callable[[str], bool],
    depth: int = 0,
) -> bool:
    """True when ``tensor`` is an elementwise expression of ``x`` and constants alone
    (``√(2/π)·(x + 0.044715·x³)``, ``x/√2``, ``1.702·x``)."""
    if tensor == x:
        return True
    node = producers.get(tensor)
    if node is None or node.op_type not in ELEMENTWISE or depth >= MAX_EXPRESSION_DEPTH:
        return False
    variable = [name for name in node.input if name and not is_constant(name)]
    return bool(variable) and all(
        _function_of(name, x, producers, is_constant, depth + 1) for name in variable
    )


def _unscaled(
    tensor: str, producers: Mapping[str, onnx.NodeProto], is_constant: Callable[[str], bool]
) -> str:
    """Follow ``Mul``/``Div`` by a constant back to the tensor scaled (``0.5·x`` → x)."""
    for _ in range(MAX_EXPRESSION_DEPTH):
        node = producers.get(tensor)
        if node is None or node.op_type not in ("Mul", "Div", "Identity"):
            return tensor
        variable = [name for name in node.input if name and not is_constant(name)]
        if len(variable) != 1 or (node.op_type == "Div" and variable[0] != node.input[0]):
            return tensor
        tensor = variable[0]
    return tensor
