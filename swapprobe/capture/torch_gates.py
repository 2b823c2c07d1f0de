"""Gates written out by hand in a torch forward (``x * torch.sigmoid(x)``, GPT-2's tanh GELU),
found as the ONNX backend finds them in a graph.

The ONNX backend sees a hand-written gate as a pattern of ops and counts it
(:mod:`swapprobe.capture.activations`); this tracker gives the torch backend the same rule on
the calls of one forward pass: a gating function (Sigmoid, HardSigmoid, Tanh, Erf; Tanh of
Softplus is Mish) of an elementwise expression of ``x`` alone, shifted or scaled by numbers
(``1 + g``, ``0.5·g``), multiplied back onto ``x`` (or a scaled ``x``). It keeps weak
references only: no tensor lives longer for being tracked.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from swapprobe.capture.gate_rules import (
    ANCHOR_KINDS,
    ELEMENTWISE,
    MAX_EXPRESSION_DEPTH,
    SHIFTS,
    gate_kind,
)

__all__ = ["ExpressionTracker", "expression_ops"]



def expression_ops() -> dict[Any, str]:
    """torch callables (as a TorchFunctionMode sees them) → the op they compute."""
    import torch
    import torch.nn.functional as F

    tensor = torch.Tensor
    table: dict[Any, str] = {}
    for op, names in {
        "Mul": ("mul", "multiply", "__mul__", "__rmul__"),
        "Div": ("div", "divide", "true_divide", "__truediv__"),
        "Add": ("add", "__add__", "__radd__"),
        "Sub": ("sub", "subtract", "__sub__", "__rsub__", "rsub"),
        "Pow": ("pow", "__pow__"),
        "Neg": ("neg", "negative", "__neg__"),
        "Sigmoid": ("sigmoid",),
        "Tanh": ("tanh",),
        "Erf": ("erf",),
    }.items():
        for name in names:
            for owner in (torch, tensor):
                func = getattr(owner, name, None)
                if func is not None:
                    table[func] = op
            in_place = getattr(tensor, name + "_", None) if not name.startswith("_") else None
            if in_place is not None:
                table[in_place] = op
    table[F.hardsigmoid] = "HardSigmoid"
    table[F.softplus] = "Softplus"
    table[F.sigmoid] = "Sigmoid"
    table[F.tanh] = "Tanh"
    return table


@dataclass(frozen=True)
class _Node:
    op: str
    parents: tuple[int, ...]  # serials of the tensor arguments, in order
    first_is_tensor: bool
    positive: bool  # every number argument is > 0 (a scaling that keeps signs)


class ExpressionTracker:
    """The elementwise calls of one forward pass, to find ``x · g(x)`` as it is computed.

    Temporaries (``1.702·x``, ``x³``) are freed as soon as the next call has used them, so
    tensors are known by serial numbers, each dropped when its tensor dies (a later tensor may
    reuse the id); the expression graph outlives them, the tensors do not.
    """

    def __init__(self) -> None:
        self._serials: dict[int, int] = {}  # id of a live tensor → its serial
        self._objects: dict[int, weakref.ref[Any]] = {}  # serial → the tensor
        self._nodes: dict[int, _Node] = {}
        self._gates: dict[int, tuple[str, int]] = {}  # serial → (kind, source serial)

    def gate_before(self, op: str, args: tuple[Any, ...]) -> tuple[str, Any] | None:
        """Before a ``Mul`` call: (kind, x) when it completes a gate ``x · g(x)``."""
        if op != "Mul" or len(args) < 2 or not (_is_tensor(args[0]) and _is_tensor(args[1])):
            return None
        a, b = args[0], args[1]
        for gated, other in ((a, b), (b, a)):
            serial = self._serials.get(id(gated))
            if serial is None or serial not in self._gates or other is gated:
                continue
            kind, source = self._gates[serial]
            mine = self._serial(other)
            if self._function_of(source, mine, 0):
                return kind, other
            base, positive = self._unscaled(mine)
            if base != mine and self._function_of(source, base, 0):
                tensor = self._objects[base]() if base in self._objects else None
                if tensor is not None:
                    return kind, tensor
                if positive:  # x is gone, but a positive multiple of x has its signs
                    return kind, other
        return None

    def note(self, op: str, func: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
        """After a call: remember how ``out`` was computed."""
        if not _is_tensor(out):
            return
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.startswith("__"):  # in place: out is an argument
            self._forget(out)
            return
        parents = tuple(self._serial(arg) for arg in args if _is_tensor(arg))
        numbers = [arg for arg in args if not _is_tensor(arg)]
        self._forget(out)
        serial = self._serial(out)
        positive = all(isinstance(n, (int, float)) and n > 0 for n in numbers)
        self._nodes[serial] = _Node(op, parents, bool(args) and _is_tensor(args[0]), positive)
        if op in ANCHOR_KINDS and parents:
            source = parents[0]
            inner = self._nodes.get(source)
            kind, through = gate_kind(op, None if inner is None else inner.op)
            if through and inner is not None and inner.parents:
                source = inner.parents[0]
            elif through:  # Softplus of no tracked tensor: the plain Tanh rule
                kind = ANCHOR_KINDS[op]
            self._gates[serial] = (kind, source)
        elif (
            op in SHIFTS
            and len(parents) == 1
            and parents[0] in self._gates
            and numbers
            and all(isinstance(n, (int, float)) for n in numbers)
        ):
            self._gates[serial] = self._gates[parents[0]]  # 1 + g, 0.5 · g

    def _serial(self, tensor: Any) -> int:
        key = id(tensor)
        serial = self._serials.get(key)
        if serial is None:
            serial = len(self._objects) + 1
            self._serials[key] = serial

            def dead(_ref: object, key: int = key, serial: int = serial) -> None:
                if self._serials.get(key) == serial:
                    del self._serials[key]

            self._objects[serial] = weakref.ref(tensor, dead)
        return serial

    def _forget(self, tensor: Any) -> None:
        """``tensor`` is about to get a new meaning (in place, or a fresh output)."""
        self._serials.pop(id(tensor), None)

    def _function_of(self, tensor: int, x: int, depth: int) -> bool:
        """True when ``tensor`` is an elementwise expression of ``x`` and numbers alone."""
        if tensor == x:
            return True
        node = self._nodes.get(tensor)
        if node is None or node.op not in ELEMENTWISE or depth >= MAX_EXPRESSION_DEPTH:
            return False
        return bool(node.parents) and all(
            self._function_of(parent, x, depth + 1) for parent in node.parents
        )

    def _unscaled(self, tensor: int) -> tuple[int, bool]:
        """Follow multiplication or division by a number back (``0.5·x`` → x); whether every
        factor was positive."""
        positive = True
        for _ in range(MAX_EXPRESSION_DEPTH):
            node = self._nodes.get(tensor)
            if node is None or node.op not in ("Mul", "Div") or len(node.parents) != 1:
                break
            if node.op == "Div" and not node.first_is_tensor:
                break
            positive = positive and node.positive
            tensor = node.parents[0]
        return tensor, positive


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)
