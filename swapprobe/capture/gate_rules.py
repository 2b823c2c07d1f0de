"""The gate rules: which units count and how a unit's bit is defined, for both backends.

Every counted unit is a *gate*: its output's sign is its input's sign, so the bit is
``1[pre-activation > 0]`` (SPEC, "Beyond ReLU"). Gates arrive as one op (``Relu``, ``Gelu``,
``HardSwish``, ``Elu``...) or written out: a gating function ``g`` (Sigmoid, HardSigmoid, Tanh,
Erf; Tanh of Softplus is Mish) of an elementwise expression of ``x`` alone, shifted or scaled
by constants (``1 + g``, ``0.5·g``), multiplied back onto ``x`` (or a scaled ``x``).

The ONNX pattern matcher (:mod:`swapprobe.capture.activations`) applies these rules to a graph,
the torch backend (:mod:`swapprobe.capture.torch_backend`,
:mod:`swapprobe.capture.torch_gates`) to the calls of one forward pass; both read them here,
so a rule changed once changes for both. Pure data and one small function: no onnx, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping

from swapprobe.errors import SettingsError

__all__ = [
    "ANCHOR_KINDS",
    "ELEMENTWISE",
    "GATE_KINDS",
    "MAX_EXPRESSION_DEPTH",
    "READ_OUTPUT",
    "RELU_KINDS",
    "SHIFTS",
    "gate_kind",
    "select_kinds",
    "summary_line",
]

#: the ReLU family: what swapprobe counted before gates (``activations="relu"``)
RELU_KINDS = ("Relu", "LeakyRelu", "PRelu", "Clip")
#: every gate kind (``activations="gates"``)
GATE_KINDS = (*RELU_KINDS, "Gelu", "Silu", "HardSwish", "Mish", "Elu", "Selu", "Celu")

#: kinds whose bit is read as ``output > 0`` (the same bits as the input's sign; in ONNX it
#: keeps Conv+Relu fusable, in torch it survives the in-place forms). Every other kind reads
#: its input.
READ_OUTPUT = ("Relu", "Clip")

#: gating functions of written-out gates → the gate's kind (Tanh of Softplus: see gate_kind)
ANCHOR_KINDS: Mapping[str, str] = {
    "Erf": "Gelu",
    "Tanh": "Gelu",
    "Sigmoid": "Silu",
    "HardSigmoid": "HardSwish",
}
#: ops an exporter (or a hand-written forward) puts between ``x`` and its gating function
ELEMENTWISE = ("Mul", "Div", "Add", "Sub", "Pow", "Neg", "Identity")
#: ops that shift or scale the gating function by a constant before it multiplies ``x``
SHIFTS = ("Mul", "Add", "Sub", "Div")
#: how deep an elementwise expression of ``x`` is followed (GPT-2's tanh GELU needs 5)
MAX_EXPRESSION_DEPTH = 8

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


def gate_kind(anchor: str, inner: str | None) -> tuple[str, bool]:
    """The kind of a written-out gate whose gating function is ``anchor`` applied to the
    output of ``inner`` (None: not computed by a known op), and whether its ``x`` is
    ``inner``'s input rather than ``anchor``'s (Tanh of Softplus is Mish, gating
    Softplus's input)."""
    if anchor == "Tanh" and inner == "Softplus":
        return "Mish", True
    return ANCHOR_KINDS[anchor], False


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
    counted: Mapping[str, int | None],
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
