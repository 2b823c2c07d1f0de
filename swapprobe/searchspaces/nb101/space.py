"""The NAS-Bench-101 search space behind the :class:`SearchSpace` protocol (``nb101``).

Architectures are :class:`~swapprobe.searchspaces.nb101.encoding.Nb101Arch` values in NASLib's
encoding (the keys of NAS-Bench-Suite-Zero's ``zc_nasbench101.json``); the scoring network is
the benchmark network NASLib scores its zero-cost proxies on
(:class:`~swapprobe.searchspaces.nb101.networks.Nb101Network`, about 0.2-9 M parameters), so
Θ is counted in millions as the SWAP-NAS paper does for NAS-Bench-101.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from swapprobe.errors import DataError, SettingsError, UnknownArchitectureError
from swapprobe.searchspaces.base import SearchSpace, SizeUnit, SpaceDefaults, register_space
from swapprobe.searchspaces.nb101.encoding import (
    INPUT,
    INTERIOR_OPS,
    NUM_VERTICES,
    OUTPUT,
    Nb101Arch,
)

if TYPE_CHECKING:
    import torch.nn as nn

    from swapprobe.searchspaces.nb101.networks import Nb101Network

__all__ = ["NB101_DATASET_CLASSES", "Nb101Space"]

#: the benchmark trains on CIFAR-10 only
NB101_DATASET_CLASSES: dict[str, int] = {"cifar10": 10}

# the 21 entries above the diagonal, row by row: the bits a sampler draws and a mutation flips
_UPPER: tuple[tuple[int, int], ...] = tuple(
    (i, j) for i in range(NUM_VERTICES) for j in range(i + 1, NUM_VERTICES)
)
_INTERIOR = range(1, NUM_VERTICES - 1)
# a crossover draw that leaves a child invalid is redrawn this many times before the parents
# are returned unchanged (measured: most pairs succeed on the first few draws)
_CROSSOVER_TRIES = 32


def _try_arch(matrix: list[list[int]], ops: list[str]) -> Nb101Arch | None:
    """The cell if it is one of the space (valid after pruning), else ``None``."""
    try:
        return Nb101Arch(tuple(map(tuple, matrix)), tuple(ops))
    except UnknownArchitectureError:
        return None


@register_space
class Nb101Space(SearchSpace):
    """NAS-Bench-101: one cell of ≤ 7 vertices and ≤ 9 edges, stacked 3 × 3 in the benchmark
    network. Methods that take an architecture also accept its text form (NASLib's tuple)."""

    name: ClassVar[str] = "nb101"
    size_unit: ClassVar[SizeUnit] = "M"
    input_shape: ClassVar[tuple[int, int, int]] = (3, 32, 32)
    #: The SWAP-NAS paper's protocol as SPEC.md states it (16 CIFAR-10 images, N(0, 1)
    #: re-initialisation, mean over 32 repeats), chosen before any NAS-Bench-101 score was
    #: seen and not tuned on the table. Search sizes as NAS-Bench-201's. onnxruntime: 2-5×
    #: faster than the torch backend here, patterns equal up to bits within float rounding of
    #: zero. Measured after choosing (30 dev rows, 2 repeats): these networks have 0.8-3.6 M
    #: units, so at S=16 SWAP sits at its bound 2^16 (63,101-65,536; Spearman 0.54 against
    #: val_accuracy); at S=32 it is 0.86-0.97 × V (0.48, one draw). So the ranking is the
    #: default rule's (:mod:`swapprobe.proxies.default_rule`), applied to 80 seeded rows of
    #: NAS-Bench-Suite-Zero's table scored at one draw (the paper's 32 repeats cost 25-40 s an
    #: architecture on a CPU and every one of them sits at the bound): SWAP with AZ-NAS's
    #: expressivity, trainability and FLOPs, ZiCo and L-SWAG (docs/benchmarks.md).
    defaults: ClassVar[SpaceDefaults] = SpaceDefaults(
        batch_size=16,
        init="gaussian",
        repeats=1,
        population=40,
        cycles=200,
        mutation_times=4,
        proxies=("expressivity", "trainability", "flops", "zico", "lswag"),
        fitness="aggregate",
        data="cifar10",
        chosen_by="AZ-style set with ZiCo and L-SWAG (SWAP saturates at 2^16 here): "
        "½(ρ+τw) 0.751 / 0.712 on the halves of 80 NAS-Bench-Suite-Zero rows, ρ 0.814 / 0.692; "
        "SWAP alone 0.272 / 0.380, LIBRA 0.719 / 0.763 held out, FLOPs alone ρ 0.741-0.764",
    )

    def __init__(self, num_classes: int = 10) -> None:
        if num_classes < 1:
            raise SettingsError(f"Nb101Space needs num_classes >= 1, got {num_classes}")
        self.num_classes = num_classes

    def __repr__(self) -> str:
        return f"Nb101Space(num_classes={self.num_classes})"

    # values ------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Nb101Arch:
        """Uniform over valid encodings, as NASLib and the benchmark's own sampler draw: every
        bit above the diagonal and every interior op uniform, redrawn until the cell is valid.

        Uniform over encodings, not over distinct networks: a network with pruned-away
        vertices has several encodings and is drawn that much more often.
        """
        while True:
            bits = rng.integers(0, 2, size=len(_UPPER))
            codes = rng.integers(0, len(INTERIOR_OPS), size=len(_INTERIOR))
            matrix = [[0] * NUM_VERTICES for _ in range(NUM_VERTICES)]
            for (i, j), bit in zip(_UPPER, bits, strict=True):
                matrix[i][j] = int(bit)
            ops = [INPUT, *(INTERIOR_OPS[int(c)] for c in codes), OUTPUT]
            arch = _try_arch(matrix, ops)
            if arch is not None:
                return arch

    def mutate(self, arch: Nb101Arch | str, rng: np.random.Generator) -> Nb101Arch:
        """Flip one edge or give one interior vertex another op, so the child is valid.

        The 31 single changes (21 edge flips, 5 vertices × 2 other ops) are tried in a random
        order; the first valid one that changes the built network wins, else the first valid
        one (a flip among pruned-away vertices, which always exists).
        """
        parent = _coerce(arch)
        moves: list[tuple[str, int, int]] = [("edge", i, j) for i, j in _UPPER]
        moves += [("op", v, k) for v in _INTERIOR for k in range(1, len(INTERIOR_OPS))]
        fallback: Nb101Arch | None = None
        for index in rng.permutation(len(moves)):
            kind, a, b = moves[int(index)]
            matrix = [list(row) for row in parent.matrix]
            ops = list(parent.ops)
            if kind == "edge":
                matrix[a][b] = 1 - matrix[a][b]
            else:
                ops[a] = INTERIOR_OPS[(INTERIOR_OPS.index(ops[a]) + b) % len(INTERIOR_OPS)]
            child = _try_arch(matrix, ops)
            if child is None:
                continue
            if child.pruned != parent.pruned:
                return child
            fallback = fallback or child
        if fallback is None:  # unreachable: removing an edge off the pruned cell is valid
            raise UnknownArchitectureError(f"no valid NAS-Bench-101 mutation of {parent}")
        return fallback

    def crossover(
        self, first: Nb101Arch | str, second: Nb101Arch | str, rng: np.random.Generator
    ) -> tuple[Nb101Arch, Nb101Arch]:
        """Uniform crossover over vertices: each of vertices 1..6 brings its op and its
        incoming edges (its matrix column) from one parent to the first child and from the
        other to the second. A draw that leaves a child invalid is redrawn; after
        ``_CROSSOVER_TRIES`` failures the parents are returned as they are.
        """
        a, b = _coerce(first), _coerce(second)
        for _ in range(_CROSSOVER_TRIES):
            take_b = rng.random(NUM_VERTICES) < 0.5
            children = []
            for left, right in ((a, b), (b, a)):
                matrix = [[0] * NUM_VERTICES for _ in range(NUM_VERTICES)]
                ops = list(left.ops)
                for v in range(1, NUM_VERTICES):
                    donor = right if take_b[v] else left
                    for i in range(v):
                        matrix[i][v] = donor.matrix[i][v]
                    ops[v] = donor.ops[v]
                children.append(_try_arch(matrix, ops))
            if children[0] is not None and children[1] is not None:
                return children[0], children[1]
        return a, b

    def parse(self, text: str) -> Nb101Arch:
        return Nb101Arch.parse(text)

    def format(self, arch: Nb101Arch | str) -> str:
        return _coerce(arch).format()

    # networks ----------------------------------------------------------------------------
    def build_scoring_network(self, arch: Nb101Arch | str) -> Nb101Network:
        from swapprobe.searchspaces.nb101.networks import Nb101Network

        return Nb101Network(_coerce(arch).pruned, self.num_classes)

    def build_evaluation_network(
        self, arch: Nb101Arch | str, dataset: str = "cifar10"
    ) -> Nb101Network:
        """The same network: NAS-Bench-101 trains and scores one network, on CIFAR-10."""
        from swapprobe.searchspaces.nb101.networks import Nb101Network

        return Nb101Network(_coerce(arch).pruned, _dataset_classes(dataset))

    def proxy_blocks(self, network: nn.Module) -> list[nn.Module]:
        """The stem, the nine cells and the two poolings, each fed by the previous one."""
        return list(network.layers)  # type: ignore[attr-defined]

    def scoring_param_count(self, arch: Nb101Arch | str) -> int:
        """Θ in parameters, in closed form (no module is built)."""
        from swapprobe.searchspaces.nb101.channels import network_param_count

        return network_param_count(_coerce(arch).pruned, self.num_classes)

    def evaluation_param_count(self, arch: Nb101Arch | str, dataset: str = "cifar10") -> int:
        from swapprobe.searchspaces.nb101.channels import network_param_count

        return network_param_count(_coerce(arch).pruned, _dataset_classes(dataset))


def _coerce(arch: object) -> Nb101Arch:
    """Accept an :class:`Nb101Arch` or its text form; anything else is a user error."""
    if isinstance(arch, Nb101Arch):
        return arch
    if isinstance(arch, str):
        return Nb101Arch.parse(arch)
    raise UnknownArchitectureError(
        f"expected an Nb101Arch or NASLib's NAS-Bench-101 tuple, got {type(arch).__name__}"
    )


def _dataset_classes(dataset: str) -> int:
    try:
        return NB101_DATASET_CLASSES[dataset]
    except KeyError:
        raise DataError(
            f"unknown NAS-Bench-101 dataset {dataset!r}; NAS-Bench-101 is trained on cifar10"
        ) from None
