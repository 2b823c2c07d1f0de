"""FlexiBERT values that the space and its networks share: the operations, the embedding sizes
and the validated :class:`FlexiLayer` and :class:`FlexiBertArch` (with their text form).

Its own module so that :mod:`.space` (sampling, variation, counts, modes) and
:mod:`.networks` (torch modules) both import it and neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from swapprobe.errors import UnknownArchitectureError

__all__ = [
    "EMBEDDING_SIZE",
    "FF_DIMS",
    "FLEXIBERT_OPS",
    "HEADS",
    "HIDDEN_SIZES",
    "MAX_POSITIONS",
    "NUM_FF",
    "NUM_LAYERS",
    "REFERENCE_HIDDEN",
    "REFERENCE_INTERMEDIATE",
    "TYPE_VOCAB",
    "VOCAB_SIZE",
    "BuildMode",
    "FlexiBertArch",
    "FlexiLayer",
    "dsc_sizes",
    "from_table_entry",
]

#: token mixers as (operation type, operation parameter), the order of the text form's docs
FLEXIBERT_OPS: tuple[tuple[str, str | int], ...] = (
    ("SA", "SDP"),
    ("SA", "WMA"),
    ("LT", "DFT"),
    ("LT", "DCT"),
    ("DSC", 5),
    ("DSC", 9),
)
HIDDEN_SIZES: tuple[int, ...] = (128, 256)
HEADS: tuple[int, ...] = (2, 4)
FF_DIMS: tuple[int, ...] = (512, 1024)
NUM_FF: tuple[int, ...] = (1, 2, 3)
NUM_LAYERS: tuple[int, ...] = (2, 3, 4)

#: ELECTRA-small's embedding sizes (word vocabulary of the ELECTRA/BERT uncased tokenizer)
VOCAB_SIZE = 30522
EMBEDDING_SIZE = 128
MAX_POSITIONS = 512
TYPE_VOCAB = 2
#: what the authors' scoring code builds for every model and layer (SPEC, "FlexiBERT space")
REFERENCE_HIDDEN = 256
REFERENCE_INTERMEDIATE = 1024

BuildMode = Literal["reference", "faithful"]
_OP_TEXT = {op: f"{op[0]}-{op[1]}" for op in FLEXIBERT_OPS}
_TEXT_OP = {text: op for op, text in _OP_TEXT.items()}


# --- values ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FlexiLayer:
    """One encoder layer: token mixer, its heads, and the feed-forward stack.

    ``op_param`` is ``"SDP"``/``"WMA"`` for SA, ``"DFT"``/``"DCT"`` for LT, the kernel size
    5 or 9 (an int, as in the table) for DSC. The constructor validates.
    """

    op_type: str
    op_param: str | int
    heads: int
    ff_dim: int
    num_ff: int

    def __post_init__(self) -> None:
        if (self.op_type, self.op_param) not in _OP_TEXT:
            known = ", ".join(_OP_TEXT.values())
            raise UnknownArchitectureError(
                f"unknown FlexiBERT operation {self.op_type}-{self.op_param}; known: {known}"
            )
        for field, value, allowed in (
            ("heads", self.heads, HEADS),
            ("feed-forward dimension", self.ff_dim, FF_DIMS),
            ("number of feed-forward layers", self.num_ff, NUM_FF),
        ):
            if isinstance(value, bool) or value not in allowed:
                raise UnknownArchitectureError(
                    f"FlexiBERT {field} must be one of {', '.join(map(str, allowed))}, "
                    f"got {value!r}"
                )

    @property
    def op(self) -> str:
        """``SA-SDP``, ``LT-DCT``, ``DSC-5``, ...: the mixer's name in the text form."""
        return _OP_TEXT[(self.op_type, self.op_param)]

    def format(self) -> str:
        return f"{self.op}.h{self.heads}.{self.ff_dim}x{self.num_ff}"

    @classmethod
    def parse(cls, text: str) -> FlexiLayer:
        """Read ``OP-PARAM.hHEADS.FFDIMxNUMFF`` (``DSC-9.h2.512x1``)."""
        parts = text.strip().split(".")
        if len(parts) != 3:
            raise UnknownArchitectureError(
                f"FlexiBERT layer {text!r} is not of the form OP-PARAM.hHEADS.FFxN "
                "(e.g. SA-SDP.h4.1024x3)"
            )
        op_text, heads_text, ff_text = parts
        op = _TEXT_OP.get(op_text)
        if op is None:
            known = ", ".join(_TEXT_OP)
            raise UnknownArchitectureError(
                f"unknown FlexiBERT operation {op_text!r} in {text!r}; known: {known}"
            )
        dim_text, sep, num_text = ff_text.partition("x")
        if not heads_text.startswith("h") or not sep:
            raise UnknownArchitectureError(
                f"FlexiBERT layer {text!r} needs heads as hN and the feed-forward as DIMxN"
            )
        try:
            heads, ff_dim, num_ff = int(heads_text[1:]), int(dim_text), int(num_text)
        except ValueError:
            raise UnknownArchitectureError(
                f"FlexiBERT layer {text!r}: heads, width and count must be whole numbers"
            ) from None
        return cls(op[0], op[1], heads, ff_dim, num_ff)

    def to_entry(self) -> dict[str, Any]:
        """The table's layer dict (``operation_type``, ``operation_parameter``, ...)."""
        return {
            "feed_forward_dimension": self.ff_dim,
            "num_feed_forward": self.num_ff,
            "num_operation_heads": self.heads,
            "operation_parameter": self.op_param,
            "operation_type": self.op_type,
        }


@dataclass(frozen=True, slots=True)
class FlexiBertArch:
    """A FlexiBERT model: hidden size and its encoder layers (a frozen, hashable value)."""

    hidden: int
    layers: tuple[FlexiLayer, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.layers, tuple):
            object.__setattr__(self, "layers", tuple(self.layers))
        if isinstance(self.hidden, bool) or self.hidden not in HIDDEN_SIZES:
            raise UnknownArchitectureError(
                f"FlexiBERT hidden size must be one of {', '.join(map(str, HIDDEN_SIZES))}, "
                f"got {self.hidden!r}"
            )
        if len(self.layers) not in NUM_LAYERS:
            raise UnknownArchitectureError(
                f"a FlexiBERT model has {NUM_LAYERS[0]}-{NUM_LAYERS[-1]} layers, "
                f"got {len(self.layers)}"
            )
        for layer in self.layers:
            if not isinstance(layer, FlexiLayer):
                raise UnknownArchitectureError(
                    f"FlexiBERT layers must be FlexiLayer values, got {type(layer).__name__}"
                )

    def format(self) -> str:
        """The canonical text form; ``FlexiBertArch.parse(a.format()) == a``."""
        return f"H{self.hidden}:" + ",".join(layer.format() for layer in self.layers)

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, text: str) -> FlexiBertArch:
        """Read the text form, or a table entry's JSON (see :func:`from_table_entry`)."""
        if not isinstance(text, str):
            raise UnknownArchitectureError(
                f"FlexiBERT architecture must be text, got {type(text).__name__}"
            )
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                entry = json.loads(stripped)
            except json.JSONDecodeError as error:
                raise UnknownArchitectureError(
                    f"FlexiBERT architecture JSON does not parse: {error.msg}"
                ) from None
            return from_table_entry(entry)
        head, sep, body = stripped.partition(":")
        if not sep or not head.startswith("H"):
            raise UnknownArchitectureError(
                f"FlexiBERT text {stripped[:60]!r} must start with the hidden size, as in "
                "'H256:SA-SDP.h4.1024x3,LT-DFT.h2.512x1'"
            )
        try:
            hidden = int(head[1:])
        except ValueError:
            raise UnknownArchitectureError(
                f"FlexiBERT hidden size {head!r} is not H followed by a number"
            ) from None
        return cls(hidden, tuple(FlexiLayer.parse(part) for part in body.split(",")))

    def to_entry(self) -> dict[str, Any]:
        """The table's ``model_hparam_overrides`` dict of this model."""
        return {
            "hidden_size": self.hidden,
            "nas_config": {"encoder_layers": [layer.to_entry() for layer in self.layers]},
        }


def from_table_entry(entry: Mapping[str, Any]) -> FlexiBertArch:
    """The model of one table entry: a whole entry (``hparams.model_hparam_overrides``), the
    overrides dict (``hidden_size``, ``nas_config``), or ``nas_config`` alone (hidden 256)."""
    if not isinstance(entry, Mapping):
        raise UnknownArchitectureError(
            f"a FlexiBERT table entry is a JSON object, got {type(entry).__name__}"
        )
    node: Any = entry
    if "hparams" in node:
        node = node["hparams"]
    if isinstance(node, Mapping) and "model_hparam_overrides" in node:
        node = node["model_hparam_overrides"]
    hidden = node.get("hidden_size", REFERENCE_HIDDEN) if isinstance(node, Mapping) else None
    config = node.get("nas_config", node) if isinstance(node, Mapping) else None
    layers = config.get("encoder_layers") if isinstance(config, Mapping) else None
    if not isinstance(layers, Sequence) or isinstance(layers, str):
        raise UnknownArchitectureError(
            "a FlexiBERT table entry needs nas_config.encoder_layers (a list of layers)"
        )
    keys = (
        "operation_type",
        "operation_parameter",
        "num_operation_heads",
        "feed_forward_dimension",
        "num_feed_forward",
    )
    parsed = []
    for index, layer in enumerate(layers):
        missing = [k for k in keys if not isinstance(layer, Mapping) or k not in layer]
        if missing:
            raise UnknownArchitectureError(f"FlexiBERT layer {index} lacks {', '.join(missing)}")
        parsed.append(FlexiLayer(*(layer[k] for k in keys)))
    return FlexiBertArch(hidden, tuple(parsed))


def dsc_sizes(hidden: int, heads: int) -> tuple[int, int, int]:
    """(attention heads, head size, all-head size) of a DSC mixer: half the heads (at least
    one) of size hidden / heads, so that attention and convolution halves each fill H / 2."""
    attention_heads = max(1, heads // 2)
    head_size = hidden // heads
    return attention_heads, head_size, attention_heads * head_size
