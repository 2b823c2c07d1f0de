"""AutoFormer subnets as values: the choices of each supernet, the JSON text form, and sizes.

No torch here: parsing, sampling, counting parameters and FLOPs must stay cheap (a budgeted
search counts every child). Definitions: ``SPEC.md``, "AutoFormer ViT space".

Two spellings of one subnet are read:

* the ground-truth table's (Auto-Prox, ``autoformer_ti_autoprox_200.json``): ``hidden_dim``,
  ``depth``, per-layer ``mlp_ratio`` and ``num_heads``;
* AutoFormer's own sampled configurations (``embed_dim`` as one number or one per layer,
  ``layer_num``, per-layer ``mlp_ratio`` and ``num_heads``).

The canonical text is the table's spelling as compact JSON in that key order, ratios as
floats: ``{"hidden_dim":192,"depth":12,"mlp_ratio":[3.5,4.0,...],"num_heads":[4,3,...]}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swapprobe.errors import UnknownArchitectureError

__all__ = [
    "AUTOFORMER_BASE",
    "AUTOFORMER_SMALL",
    "AUTOFORMER_TINY",
    "HEAD_DIM",
    "IMAGENET_CLASSES",
    "AutoFormerArch",
    "AutoFormerChoices",
    "arch_from_mapping",
    "mlp_width",
    "multiply_adds",
    "param_count",
    "parse_arch",
    "token_count",
]

#: width of one attention head: q/k/v are heads × 64 wide whatever the embedding
HEAD_DIM = 64
#: the classifier AutoFormer's supernets (and the table's ImageNet column) use
IMAGENET_CLASSES = 1000


@dataclass(frozen=True, slots=True)
class AutoFormerChoices:
    """What one AutoFormer supernet lets a subnet choose (SPEC, "AutoFormer ViT space")."""

    label: str
    embed_dims: tuple[int, ...]
    depths: tuple[int, ...]
    mlp_ratios: tuple[float, ...]
    num_heads: tuple[int, ...]

    def check(self, arch: AutoFormerArch) -> AutoFormerArch:
        """``arch`` when every choice of it is one of this supernet's, else the first that is
        not, in one line."""
        if arch.embed_dim not in self.embed_dims:
            raise UnknownArchitectureError(
                f"AutoFormer-{self.label} embedding dimension must be one of "
                f"{_listed(self.embed_dims)}, got {arch.embed_dim}"
            )
        if arch.depth not in self.depths:
            raise UnknownArchitectureError(
                f"AutoFormer-{self.label} depth must be one of {_listed(self.depths)}, "
                f"got {arch.depth}"
            )
        for layer, (ratio, heads) in enumerate(zip(arch.mlp_ratios, arch.num_heads, strict=True)):
            if ratio not in self.mlp_ratios:
                raise UnknownArchitectureError(
                    f"AutoFormer-{self.label} layer {layer}: MLP ratio must be one of "
                    f"{_listed(self.mlp_ratios)}, got {ratio}"
                )
            if heads not in self.num_heads:
                raise UnknownArchitectureError(
                    f"AutoFormer-{self.label} layer {layer}: heads must be one of "
                    f"{_listed(self.num_heads)}, got {heads}"
                )
        return arch


AUTOFORMER_TINY = AutoFormerChoices("Tiny", (192, 216, 240), (12, 13, 14), (3.5, 4.0), (3, 4))
AUTOFORMER_SMALL = AutoFormerChoices(
    "Small", (320, 384, 448), (12, 13, 14), (3.0, 3.5, 4.0), (5, 6, 7)
)
AUTOFORMER_BASE = AutoFormerChoices("Base", (528, 576, 624), (14, 15, 16), (3.0, 3.5, 4.0), (9, 10))


@dataclass(frozen=True, slots=True)
class AutoFormerArch:
    """One subnet: the embedding dimension and, per layer, the MLP ratio and the head count.

    The depth is the number of layers. A frozen value (hashable); the constructor checks the
    shapes and types, the supernet's choices are checked by :meth:`AutoFormerChoices.check`.
    """

    embed_dim: int
    mlp_ratios: tuple[float, ...]
    num_heads: tuple[int, ...]

    def __post_init__(self) -> None:
        if not _is_int(self.embed_dim) or self.embed_dim < 1:
            raise UnknownArchitectureError(
                f"AutoFormer embedding dimension must be a positive whole number, "
                f"got {self.embed_dim!r}"
            )
        ratios = tuple(self.mlp_ratios)
        heads = tuple(self.num_heads)
        if len(ratios) != len(heads) or not ratios:
            raise UnknownArchitectureError(
                f"AutoFormer needs one MLP ratio and one head count per layer, got "
                f"{len(ratios)} ratios and {len(heads)} head counts"
            )
        if not all(isinstance(r, int | float) and not isinstance(r, bool) for r in ratios):
            raise UnknownArchitectureError(f"AutoFormer MLP ratios must be numbers, got {ratios}")
        if not all(_is_int(h) and h >= 1 for h in heads):
            raise UnknownArchitectureError(
                f"AutoFormer head counts must be positive whole numbers, got {heads}"
            )
        object.__setattr__(self, "embed_dim", int(self.embed_dim))
        object.__setattr__(self, "mlp_ratios", tuple(float(r) for r in ratios))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in heads))

    @property
    def depth(self) -> int:
        return len(self.mlp_ratios)

    def to_record(self) -> dict[str, Any]:
        """The table's ``arch`` dict (``hidden_dim``, ``depth``, ``mlp_ratio``, ``num_heads``)."""
        return {
            "hidden_dim": self.embed_dim,
            "depth": self.depth,
            "mlp_ratio": list(self.mlp_ratios),
            "num_heads": list(self.num_heads),
        }

    def to_autoformer_config(self) -> dict[str, Any]:
        """AutoFormer's own spelling (``embed_dim`` per layer, ``layer_num``)."""
        return {
            "embed_dim": [self.embed_dim] * self.depth,
            "layer_num": self.depth,
            "mlp_ratio": list(self.mlp_ratios),
            "num_heads": list(self.num_heads),
        }

    def format(self) -> str:
        """The canonical text: the table's spelling as compact JSON, keys in a fixed order."""
        return json.dumps(self.to_record(), separators=(",", ":"))

    def __str__(self) -> str:
        return self.format()


def parse_arch(text: str) -> AutoFormerArch:
    """A subnet from its JSON text in either spelling (or a whole table record)."""
    if not isinstance(text, str):
        raise UnknownArchitectureError(
            f"an AutoFormer architecture is JSON text, got {type(text).__name__}"
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UnknownArchitectureError(
            f"AutoFormer architecture text is not JSON ({error.msg}): {text.strip()[:60]!r}"
        ) from None
    return arch_from_mapping(value)


def arch_from_mapping(value: object) -> AutoFormerArch:
    """A subnet from a table record, its ``arch`` dict, or an AutoFormer configuration.

    The stated depth must match the per-layer lists, and a per-layer ``embed_dim`` must be
    one number repeated (a subnet has one embedding dimension).
    """
    if isinstance(value, Mapping) and isinstance(value.get("arch"), Mapping):
        value = value["arch"]
    if not isinstance(value, Mapping):
        raise UnknownArchitectureError(
            f"an AutoFormer architecture is a JSON object, got {type(value).__name__}"
        )
    embed = _first_key(value, ("hidden_dim", "embed_dim"))
    depth = _first_key(value, ("depth", "layer_num"))
    ratios = _per_layer(value, "mlp_ratio")
    heads = _per_layer(value, "num_heads")
    if isinstance(embed, Sequence) and not isinstance(embed, str):
        if len(set(embed)) != 1:
            raise UnknownArchitectureError(
                f"AutoFormer embed_dim per layer must be one value repeated, got {list(embed)}"
            )
        if len(embed) != len(ratios):
            raise UnknownArchitectureError(
                f"AutoFormer embed_dim lists {len(embed)} layers but mlp_ratio {len(ratios)}"
            )
        embed = embed[0]
    if not _is_int(depth):
        raise UnknownArchitectureError(f"AutoFormer depth must be a whole number, got {depth!r}")
    if len(ratios) != depth or len(heads) != depth:
        raise UnknownArchitectureError(
            f"AutoFormer depth {depth} disagrees with the per-layer lists "
            f"({len(ratios)} MLP ratios, {len(heads)} head counts)"
        )
    return AutoFormerArch(embed, tuple(ratios), tuple(heads))  # type: ignore[arg-type]


def _first_key(value: Mapping[str, Any], keys: tuple[str, str]) -> Any:
    present = [k for k in keys if k in value]
    if len(present) != 1:
        raise UnknownArchitectureError(
            f"an AutoFormer architecture needs exactly one of {' or '.join(keys)}, "
            f"got {', '.join(sorted(value)) or 'no keys'}"
        )
    return value[present[0]]


def _per_layer(value: Mapping[str, Any], key: str) -> list[Any]:
    found = value.get(key)
    if not isinstance(found, Sequence) or isinstance(found, str):
        raise UnknownArchitectureError(f"an AutoFormer architecture needs {key} as a list")
    return list(found)


# --- sizes -----------------------------------------------------------------------------------
def mlp_width(embed_dim: int, ratio: float) -> int:
    """The MLP's hidden width, ``int(embed · ratio)`` as AutoFormer rounds it."""
    return int(embed_dim * ratio)


def token_count(image_size: int, patch_size: int) -> int:
    """Tokens per image: the patches and the class token."""
    return (image_size // patch_size) ** 2 + 1


def param_count(
    arch: AutoFormerArch, *, patch_size: int = 16, image_size: int = 224, num_classes: int = 1000
) -> int:
    """Parameters of the network, in closed form.

    Patch embedding (conv with bias), class token, position embedding (one row per token);
    per layer two LayerNorms, q/k/v (E → 3·64·h, bias), the projection (64·h → E, bias), the
    MLP (E → M → E, biases); the final LayerNorm and the head (E → classes, bias; none when
    ``num_classes`` is 0).
    """
    e = arch.embed_dim
    total = 3 * patch_size * patch_size * e + e  # patch embedding
    total += e + token_count(image_size, patch_size) * e  # class token, position embedding
    for ratio, heads in zip(arch.mlp_ratios, arch.num_heads, strict=True):
        inner = heads * HEAD_DIM
        hidden = mlp_width(e, ratio)
        total += 2 * e + (e * 3 * inner + 3 * inner) + (inner * e + e)
        total += 2 * e + (e * hidden + hidden) + (hidden * e + e)
    total += 2 * e
    if num_classes:
        total += e * num_classes + num_classes
    return total


def multiply_adds(
    arch: AutoFormerArch, *, patch_size: int = 16, image_size: int = 224, num_classes: int = 1000
) -> int:
    """Multiply-accumulates of one image's forward (what FLOP counters call FLOPs).

    The patch embedding, every linear layer on every token, and attention's two products
    (q·kᵀ and the weighted sum of v: 2·h·T²·64 per layer); the head on the class token only.
    Norms, softmax, GELU, additions and biases are not counted (FLOP counters' convention).
    """
    e = arch.embed_dim
    tokens = token_count(image_size, patch_size)
    total = (tokens - 1) * 3 * patch_size * patch_size * e
    for ratio, heads in zip(arch.mlp_ratios, arch.num_heads, strict=True):
        inner = heads * HEAD_DIM
        hidden = mlp_width(e, ratio)
        total += tokens * (e * 3 * inner + inner * e + 2 * e * hidden)
        total += 2 * heads * tokens * tokens * HEAD_DIM
    return total + e * num_classes


def _is_int(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer() and math.isfinite(value)


def _listed(values: Sequence[object]) -> str:
    return ", ".join(str(v) for v in values)
