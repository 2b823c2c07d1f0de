"""Which units count, and where they are in an ONNX graph.

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

from swapprobe.errors import SettingsError
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

#: the ReLU family: what swapprobe counted before gates (``activations="relu"``)
RELU_KINDS = ("Relu", "LeakyRelu", "PRelu", "Clip")
#: every gate kind (``activations="gates"``)
GATE_KINDS = (*RELU_KINDS, "Gelu", "Silu", "HardSwish", "Mish", "Elu", "Selu", "Celu")

# The one default of the selector lives in swapprobe.results (DEFAULT_ACTIVATIONS, "gates"):
# SWAP_Universal (TPAMI 2026) hooks ReLU, GELU and SiLU; every other kind here obeys the same
# sign rule, so all gates count. ReLU-only models (the DARTS and NB201 spaces) score exactly
# as under "relu".

_ALIASES = {
    "swish": "Silu",
    "relu6": "Clip",
    "hardswish": "HardSwish",
    "hard_swish": "HardSwish",
    "leaky_relu": "LeakyRelu",
}


@dataclass(frozen=True)
class Activation:
    """One activation whose pattern is read: ``tensor`` is what ``Greater(·, 0)`` sees.

    ``op`` is the activation's kind (one of :data:`GATE_KINDS`): the op type for single-op
    activations, ``Gelu``/``Silu``/``HardSwish``/``Mish`` for the decomposed forms.
    """

    name: str  # output tensor of the activation (the layer's name in reports)
    op: str
    tensor: str


def select_kinds(selector: str) -> frozenset[str]:
    """``"relu"`` | ``"gates"`` | a comma list of kinds (``"Relu,Gelu"``) → the kinds counted.

    Raises:
        SettingsError: an unknown kind, or an empty selector.
    """
    text = selector.strip()
    if text.lower() == "relu":
        return frozenset(RELU_KINDS)
    if text.lower() == "gates":
        return frozenset(GATE_KINDS)
    by_lower = {kind.lower(): kind for kind in GATE_KINDS} | _ALIASES
    chosen: set[str] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind = by_lower.get(part.lower())
        if kind is None:
            raise SettingsError(
                f"unknown activation kind {part!r}: use relu, gates, or a comma list of "
                + ", ".join(GATE_KINDS)
            )
        chosen.add(kind)
    if not chosen:
        raise SettingsError("no activation kind chosen: use relu, gates, or a list like Relu,Gelu")
    return frozenset(chosen)


def summary_line(
    counted: Mapping[str, int],
    not_counted: Mapping[str, int | None],
    no_batch: Mapping[str, int | None],
) -> str:
    """One line for reports: the kinds counted with their units, and what was left out."""

    def units(items: Mapping[str, int | None]) -> str:
        return ", ".join(f"{k} {'?' if v is None else v}" for k, v in items.items())

    line = f"counted {units(counted) or 'nothing'}"
    if not_counted:
        line += f"; present, not counted: {units(not_counted)}"
    if no_batch:
        line += f"; left out, no batch axis: {units(no_batch)}"
    return line


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
#: read ``output > 0`` (same bits, keeps Conv+Relu fusable); every other kind reads its input
_READ_OUTPUT = ("Relu", "Clip")
#: gating functions of decomposed gates → kind (Tanh of Softplus is Mish, found below)
_ANCHORS = {"Erf": "Gelu", "Tanh": "Gelu", "Sigmoid": "Silu", "HardSigmoid": "HardSwish"}
#: ops an exporter writes between ``x`` and its gating function (and after it)
_ELEMENTWISE = ("Mul", "Div", "Add", "Sub", "Pow", "Neg", "Identity")
_DEPTH = 8


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
            tensor = node.output[0] if kind in _READ_OUTPUT else node.input[0]
            found.append((index, Activation(node.output[0], kind, tensor)))
            continue
        if node.op_type in _ANCHORS:
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
    kind = _ANCHORS[anchor.op_type]
    source = anchor.input[0]
    softplus = producers.get(source)
    if anchor.op_type == "Tanh" and softplus is not None and softplus.op_type == "Softplus":
        kind, source = "Mish", softplus.input[0]
    frontier, seen = [anchor.output[0]], 0
    while frontier and seen < 4:
        following: list[str] = []
        for tensor in frontier:
            for node in consumers.get(tensor, []):
                if node.op_type not in ("Mul", "Add", "Sub", "Div") or len(node.input) != 2:
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
    if node is None or node.op_type not in _ELEMENTWISE or depth >= _DEPTH:
        return False
    variable = [name for name in node.input if name and not is_constant(name)]
    return bool(variable) and all(
        _function_of(name, x, producers, is_constant, depth + 1) for name in variable
    )


def _unscaled(
    tensor: str, producers: Mapping[str, onnx.NodeProto], is_constant: Callable[[str], bool]
) -> str:
    """Follow ``Mul``/``Div`` by a constant back to the tensor scaled (``0.5·x`` → x)."""
    for _ in range(_DEPTH):
        node = producers.get(tensor)
        if node is None or node.op_type not in ("Mul", "Div", "Identity"):
            return tensor
        variable = [name for name in node.input if name and not is_constant(name)]
        if len(variable) != 1 or (node.op_type == "Div" and variable[0] != node.input[0]):
            return tensor
        tensor = variable[0]
    return tensor
