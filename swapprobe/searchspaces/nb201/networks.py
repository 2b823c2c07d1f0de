"""The NAS-Bench-201 network as torch modules, and the blocks of the AZ-NAS proxies (kept apart
from :mod:`.space` so that parsing, sampling and counting parameters never import torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from swapprobe.errors import UnknownArchitectureError
from swapprobe.searchspaces.nb201.encoding import NB201_EDGES, NODE_EDGES, NUM_NODES, Nb201Arch

if TYPE_CHECKING:
    from swapprobe.capture.emit import GraphEmitter

__all__ = [
    "Nb201Cell",
    "Nb201Network",
    "ReLUConvBN",
    "ResidualReduction",
    "Zero",
    "proxy_blocks",
]


# --- building blocks -------------------------------------------------------------------------
class Zero(nn.Module):
    """The ``none`` op: an all-zero tensor of the input's shape.

    ``x.mul(0.)`` rather than ``torch.zeros_like`` so the graph keeps its data dependence (the
    exported ONNX graph stays connected and the op adds no activation units).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        return g.zeros_like(x)


class ReLUConvBN(nn.Sequential):
    """ReLU, k×k conv (no bias), BN: the benchmark's ``nor_conv`` and its reduction-block halves.

    The ReLU is an ``nn.ReLU`` module and not in place: SWAP reads activations through ReLU
    outputs, and an in-place ReLU would also overwrite a node tensor that other edges read.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


def _make_op(op: str, channels: int) -> nn.Module:
    """One cell edge; every op keeps the channel count and the spatial size."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, padding=0)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, padding=1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise UnknownArchitectureError(f"unknown NAS-Bench-201 op {op!r}")  # guarded by Nb201Arch


class ResidualReduction(nn.Module):
    """The block between stages: halves the resolution, doubles the channels, with a shortcut.

    Main path ReLU-Conv3×3(stride 2)-BN, ReLU-Conv3×3-BN; shortcut 2×2 average pooling (stride 2)
    then a 1×1 conv without bias or BN, as SPEC.md fixes (that detail is what makes the
    all-``nor_conv_3x3`` network exactly 1,531,546 parameters).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, padding=1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, stride=1, padding=1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        main = g(self.conv_b, g(self.conv_a, x))
        return g.add(main, g(self.shortcut, x))


class Nb201Cell(nn.Module):
    """One searched cell: node j = sum of op(node i) over its incoming edges; output node 3.

    The loop runs over the fixed edge table, never over tensor values, so tracing (ONNX export
    with ``dynamo=False``) records the same graph for every input.
    """

    def __init__(self, arch: Nb201Arch, channels: int) -> None:
        super().__init__()
        self.arch = arch
        self.edges = nn.ModuleList(_make_op(op, channels) for op in arch.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, NUM_NODES):
            outs = [self.edges[e](nodes[NB201_EDGES[e][1]]) for e in NODE_EDGES[node]]
            total = outs[0]
            for out in outs[1:]:
                total = total + out
            nodes.append(total)
        return nodes[-1]

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        """:meth:`forward` as ONNX nodes, same order (see :mod:`swapprobe.capture.emit`)."""
        nodes = [x]
        for node in range(1, NUM_NODES):
            outs = [g(self.edges[e], nodes[NB201_EDGES[e][1]]) for e in NODE_EDGES[node]]
            total = outs[0]
            for out in outs[1:]:
                total = g.add(total, out)
            nodes.append(total)
        return nodes[-1]


class Nb201Network(nn.Module):
    """The NAS-Bench-201 macro skeleton around one cell; ``forward`` returns logits.

    Stem (3×3 conv, BN) → ``cells_per_stage`` cells at C → reduction → cells at 2C → reduction
    → cells at 4C → BN, ReLU → global average pooling → linear classifier.
    """

    def __init__(
        self,
        arch: Nb201Arch,
        num_classes: int = 10,
        channels: int = 16,
        cells_per_stage: int = 5,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(Nb201Cell(arch, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.global_pool(x), 1))

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        """:meth:`forward` written as ONNX nodes, so scoring need not trace it."""
        x = g(self.lastact, g(self.cells, g(self.stem, x)))
        return g(self.classifier, g.flatten(g(self.global_pool, x)))


def proxy_blocks(network: nn.Module) -> list[nn.Module]:
    """AZ-NAS's blocks of NAS-Bench-201 (its ``extract_cell_features``): the stem, then the 15
    cells and the 2 residual reduction blocks (``cells``), each fed by the previous one's
    output: 18 features, 17 VJPs."""
    return [network.stem, *network.cells]  # type: ignore[attr-defined]
