"""The AutoFormer ViT spaces (Tiny, Small, Base) behind the :class:`SearchSpace` protocol.

AutoFormer (Chen et al., "AutoFormer: Searching Transformers for Visual Recognition", ICCV
2021, https://arxiv.org/abs/2107.00651) searches a Vision Transformer's embedding dimension,
depth, and per layer its MLP ratio and head count, inside one of three supernets. L-SWAG
(Casarin et al., 2025) and Auto-Prox (Wei et al., AAAI 2024) rank zero-cost proxies on it;
``data/vit/autoformer_ti_autoprox_200.json`` holds 200 Tiny subnets with trained accuracies.

Everything follows ``SPEC.md`` ("AutoFormer ViT space"); no AutoFormer code is reused. The
text form is compact JSON (see :mod:`swapprobe.searchspaces.autoformer.encoding`).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from swapprobe.errors import DataError, UnknownArchitectureError
from swapprobe.searchspaces.autoformer.encoding import (
    AUTOFORMER_BASE,
    AUTOFORMER_SMALL,
    AUTOFORMER_TINY,
    IMAGENET_CLASSES,
    AutoFormerArch,
    AutoFormerChoices,
    arch_from_mapping,
    multiply_adds,
    param_count,
    parse_arch,
)
from swapprobe.searchspaces.base import SearchSpace, SizeUnit, SpaceDefaults, register_space

if TYPE_CHECKING:
    import torch.nn as nn

    from swapprobe.searchspaces.autoformer.networks import AutoFormerNetwork

__all__ = [
    "BASE_LARGEST",
    "BASE_SMALLEST",
    "IMAGE_SIZE",
    "PATCH_SIZE",
    "SMALL_LARGEST",
    "SMALL_SMALLEST",
    "TINY_LARGEST",
    "TINY_SMALLEST",
    "AutoFormerBaseSpace",
    "AutoFormerSmallSpace",
    "AutoFormerSpace",
    "AutoFormerTinySpace",
    "load_table",
]

#: AutoFormer scores at ImageNet's size: 224×224, patch 16, 14×14 patches and a class token
IMAGE_SIZE = 224
PATCH_SIZE = 16


def _extreme(choices: AutoFormerChoices, pick: Any) -> AutoFormerArch:
    depth = pick(choices.depths)
    return AutoFormerArch(
        pick(choices.embed_dims),
        (pick(choices.mlp_ratios),) * depth,
        (pick(choices.num_heads),) * depth,
    )


#: the smallest and the largest subnet of each supernet (every choice at its least or most)
TINY_SMALLEST = _extreme(AUTOFORMER_TINY, min)
TINY_LARGEST = _extreme(AUTOFORMER_TINY, max)
SMALL_SMALLEST = _extreme(AUTOFORMER_SMALL, min)
SMALL_LARGEST = _extreme(AUTOFORMER_SMALL, max)
BASE_SMALLEST = _extreme(AUTOFORMER_BASE, min)
BASE_LARGEST = _extreme(AUTOFORMER_BASE, max)


class AutoFormerSpace(SearchSpace):
    """One AutoFormer supernet's subnets (the registered classes below fix which).

    The scoring network is the subnet's ViT at 224×224 with patch 16 and the 1000-class
    ImageNet head (the table's ``imagenet_super_acc`` models; its CIFAR-100, Flowers and
    Chaoyang models were fine-tuned with their own heads, which SWAP never reads: the gates
    are the MLP GELUs, before any head).
    """

    choices: ClassVar[AutoFormerChoices]
    size_unit: ClassVar[SizeUnit] = "M"
    input_shape: ClassVar[tuple[int, ...]] = (3, IMAGE_SIZE, IMAGE_SIZE)
    #: the subnets' own task: ImageNet-1k (the table's other heads are fine-tuned ones)
    evaluation_default: ClassVar[str] = "imagenet"
    #: Chosen before looking at any accuracy, as the issue's own measurement scored: S=32
    #: (units per sample are 197 tokens × every MLP width, 1.3-2.4 M, so a smaller S would
    #: saturate at 2^S), one draw of PyTorch's default initialisation built under the
    #: Evaluator's seed (``keep``, 1 repeat), synthetic dead-leaves images at 224×224.
    #: Backend: torch, whose bits are those of the module run eagerly (tests); onnxruntime on
    #: the traced graph differs by rounding only (a GELU input within ~1e-6 of zero: SWAP ±2
    #: of 1.7 M on 1 of 3 subnets) and was no faster (3 subnets × 2 runs on a loaded 2-core
    #: machine: 18.3 s torch, 20.4 s onnx). P, C and mutants keep a default search to about
    #: 180 scorings. The ranking is the default rule's (:mod:`swapprobe.proxies.default_rule`)
    #: on 60 seeded subnets of the 200, every accuracy of the table a target.
    defaults: ClassVar[SpaceDefaults] = SpaceDefaults(
        batch_size=32,
        init="keep",
        repeats=1,
        population=20,
        cycles=40,
        mutation_times=3,
        proxies=("progressivity", "trainability", "zico"),
        fitness="aggregate",
        input_size=(IMAGE_SIZE, IMAGE_SIZE),
        backend="torch",
        chosen_by="SWAP + progressivity + trainability + ZiCo, over the table's 7 accuracies on "
        "60 seeded subnets (½(ρ+τw) 0.235 / 0.265; SWAP alone 0.191; the next sets within "
        "0.005): c100_kd ρ 0.829 / 0.856 (SWAP 0.723 / 0.754, params 0.635 / 0.612), "
        "flower_kd 0.683 / 0.702 (params 0.828 / 0.920), imagenet_super -0.286 / -0.019 "
        "(params -0.331 / -0.245)",
    )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # values ------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> AutoFormerArch:
        """Embedding and depth uniform, then each layer's ratio and heads uniform and
        independent (AutoFormer's uniform subnet sampling)."""
        c = self.choices
        depth = _pick(c.depths, rng)
        return AutoFormerArch(
            _pick(c.embed_dims, rng),
            tuple(_pick(c.mlp_ratios, rng) for _ in range(depth)),
            tuple(_pick(c.num_heads, rng) for _ in range(depth)),
        )

    def named_architectures(self) -> dict[str, AutoFormerArch]:
        """This supernet's smallest and largest subnets (``autoformer-ti:TINY_SMALLEST``)."""
        return {
            f"{self.choices.label.upper()}_{end}": _extreme(self.choices, pick)
            for end, pick in (("SMALLEST", min), ("LARGEST", max))
        }

    def mutate(self, arch: AutoFormerArch | str, rng: np.random.Generator) -> AutoFormerArch:
        """One change, never none: one layer's MLP ratio or head count, the depth (layers added
        at the end are drawn from the choices, removed ones taken from the end), or the
        embedding dimension."""
        a = self._coerce(arch)
        c = self.choices
        move = int(rng.integers(3))
        if move == 0:
            return AutoFormerArch(_other(c.embed_dims, a.embed_dim, rng), a.mlp_ratios, a.num_heads)
        if move == 1:
            depth = _other(c.depths, a.depth, rng)
            ratios = list(a.mlp_ratios[:depth])
            heads = list(a.num_heads[:depth])
            while len(ratios) < depth:
                ratios.append(_pick(c.mlp_ratios, rng))
                heads.append(_pick(c.num_heads, rng))
            return AutoFormerArch(a.embed_dim, tuple(ratios), tuple(heads))
        layer = int(rng.integers(a.depth))
        ratios, heads = list(a.mlp_ratios), list(a.num_heads)
        if rng.random() < 0.5:
            ratios[layer] = _other(c.mlp_ratios, ratios[layer], rng)
        else:
            heads[layer] = _other(c.num_heads, heads[layer], rng)
        return AutoFormerArch(a.embed_dim, tuple(ratios), tuple(heads))

    def crossover(
        self,
        first: AutoFormerArch | str,
        second: AutoFormerArch | str,
        rng: np.random.Generator,
    ) -> tuple[AutoFormerArch, AutoFormerArch]:
        """Uniform crossover: the embedding dimensions, and each aligned layer's ratio and
        heads, swapped with probability ½; each child keeps its parent's depth, so both stay
        in the space and together keep every parental choice."""
        a, b = self._coerce(first), self._coerce(second)
        ra, rb = list(a.mlp_ratios), list(b.mlp_ratios)
        ha, hb = list(a.num_heads), list(b.num_heads)
        for i in range(min(a.depth, b.depth)):
            if rng.random() < 0.5:
                ra[i], rb[i] = rb[i], ra[i]
            if rng.random() < 0.5:
                ha[i], hb[i] = hb[i], ha[i]
        ea, eb = (b.embed_dim, a.embed_dim) if rng.random() < 0.5 else (a.embed_dim, b.embed_dim)
        return (
            AutoFormerArch(ea, tuple(ra), tuple(ha)),
            AutoFormerArch(eb, tuple(rb), tuple(hb)),
        )

    def parse(self, text: str) -> AutoFormerArch:
        """The JSON text in either spelling (table or AutoFormer), checked against this
        supernet's choices."""
        return self.choices.check(parse_arch(text))

    def format(self, arch: AutoFormerArch | str) -> str:
        return self._coerce(arch).format()

    def _coerce(self, arch: object) -> AutoFormerArch:
        if isinstance(arch, AutoFormerArch):
            return self.choices.check(arch)
        if isinstance(arch, str):
            return self.parse(arch)
        if isinstance(arch, Mapping):
            return self.choices.check(arch_from_mapping(arch))
        raise UnknownArchitectureError(
            f"expected an AutoFormerArch or its JSON text, got {type(arch).__name__}"
        )

    # sizes -------------------------------------------------------------------------------
    def scoring_param_count(self, arch: AutoFormerArch | str) -> int:
        """Θ in parameters, in closed form (no module is built)."""
        return param_count(self._coerce(arch), patch_size=PATCH_SIZE, image_size=IMAGE_SIZE)

    def evaluation_param_count(self, arch: AutoFormerArch | str, dataset: str = "imagenet") -> int:
        return param_count(
            self._coerce(arch),
            patch_size=PATCH_SIZE,
            image_size=IMAGE_SIZE,
            num_classes=_classes(dataset),
        )

    def multiply_adds(self, arch: AutoFormerArch | str) -> int:
        """Multiply-accumulates of one 224×224 image through the scoring network."""
        return multiply_adds(self._coerce(arch), patch_size=PATCH_SIZE, image_size=IMAGE_SIZE)

    # networks ----------------------------------------------------------------------------
    def build_scoring_network(self, arch: AutoFormerArch | str) -> AutoFormerNetwork:
        from swapprobe.searchspaces.autoformer.networks import AutoFormerNetwork

        return AutoFormerNetwork(
            self._coerce(arch), patch_size=PATCH_SIZE, image_size=IMAGE_SIZE
        )

    def evaluation_flops(
        self,
        arch: Hashable,
        input_size: tuple[int, ...] | None = None,
        dataset: str | None = None,
    ) -> int:
        """Multiply-adds of the evaluation network (built for 224×224 whatever the batch):
        the closed form, which counts attention's two products (module hooks cannot see
        them) and the head of ``dataset``."""
        classes = _classes(dataset or self.evaluation_default)
        return multiply_adds(
            self._coerce(arch), patch_size=PATCH_SIZE, image_size=IMAGE_SIZE, num_classes=classes
        )

    def build_evaluation_network(
        self, arch: AutoFormerArch | str, dataset: str = "imagenet"
    ) -> AutoFormerNetwork:
        """The subnet with the head of ``dataset`` (``imagenet``, ``cifar100``, ``flowers``,
        ``chaoyang``: the table's targets)."""
        from swapprobe.searchspaces.autoformer.networks import AutoFormerNetwork

        return AutoFormerNetwork(
            self._coerce(arch),
            patch_size=PATCH_SIZE,
            image_size=IMAGE_SIZE,
            num_classes=_classes(dataset),
        )

    def proxy_blocks(self, network: nn.Module) -> list[nn.Module]:
        """The token embedding, then each Transformer layer."""
        return [network.embed, *network.blocks]  # type: ignore[attr-defined]


@register_space
class AutoFormerTinySpace(AutoFormerSpace):
    """AutoFormer-Tiny: embed {192, 216, 240}, depth {12, 13, 14}, ratio {3.5, 4}, heads {3, 4}."""

    name: ClassVar[str] = "autoformer-ti"
    choices: ClassVar[AutoFormerChoices] = AUTOFORMER_TINY


@register_space
class AutoFormerSmallSpace(AutoFormerSpace):
    """AutoFormer-Small: embed {320, 384, 448}, depth {12, 13, 14}, ratio {3, 3.5, 4},
    heads {5, 6, 7}."""

    name: ClassVar[str] = "autoformer-s"
    choices: ClassVar[AutoFormerChoices] = AUTOFORMER_SMALL


@register_space
class AutoFormerBaseSpace(AutoFormerSpace):
    """AutoFormer-Base: embed {528, 576, 624}, depth {14, 15, 16}, ratio {3, 3.5, 4},
    heads {9, 10}."""

    name: ClassVar[str] = "autoformer-b"
    choices: ClassVar[AutoFormerChoices] = AUTOFORMER_BASE


#: classifier widths of the table's targets (Flowers-102, Chaoyang's 4 classes)
_DATASET_CLASSES: dict[str, int] = {
    "imagenet": IMAGENET_CLASSES,
    "cifar100": 100,
    "flowers": 102,
    "chaoyang": 4,
}


def _classes(dataset: str) -> int:
    try:
        return _DATASET_CLASSES[dataset]
    except KeyError:
        known = ", ".join(_DATASET_CLASSES)
        raise UnknownArchitectureError(
            f"unknown dataset {dataset!r} for an AutoFormer head; known: {known}"
        ) from None


def load_table(
    path: str | Path, space: AutoFormerSpace | None = None
) -> list[tuple[AutoFormerArch, dict[str, Any]]]:
    """The ground-truth table: (subnet, record) per row, every row checked against ``space``'s
    choices (default Tiny); a bad row is refused in one line naming it."""
    checker = space if space is not None else AutoFormerTinySpace()
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read the AutoFormer table {path}: {error}") from None
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        raise DataError(f"the AutoFormer table {path} is not a JSON list of records")
    out = []
    for index, row in enumerate(rows):
        try:
            arch = checker._coerce(row)
        except UnknownArchitectureError as error:
            raise UnknownArchitectureError(f"{path} row {index}: {error}") from None
        out.append((arch, dict(row)))
    return out


def _pick(values: Sequence[Any], rng: np.random.Generator) -> Any:
    return values[int(rng.integers(len(values)))]


def _other(values: Sequence[Any], current: Any, rng: np.random.Generator) -> Any:
    """A value of ``values`` other than ``current``, uniformly."""
    return _pick([v for v in values if v != current], rng)
