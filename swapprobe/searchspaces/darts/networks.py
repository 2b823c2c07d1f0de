"""The DARTS networks as torch modules: the scoring network of the reference, the evaluation
networks (CIFAR, ImageNet), and the network and blocks of the AZ-NAS proxies.

Kept apart from :mod:`.space` so that parsing, sampling and counting parameters never import
torch: a driver that only hands architectures to pool workers starts a second faster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn

from swapprobe.searchspaces.darts.encoding import (
    KERNEL_SIZE,
    SCORING_CHANNELS,
    SCORING_CLASSES,
    STEPS,
    CellEdges,
    CellName,
    Genotype,
    reduction_positions,
)

if TYPE_CHECKING:
    from swapprobe.capture.emit import GraphEmitter

__all__ = [
    "Cell",
    "DilConv",
    "EvaluationNetworkCIFAR",
    "EvaluationNetworkImageNet",
    "FactorizedReduce",
    "ReLUConvBN",
    "ScoringNetwork",
    "SepConv",
    "Zero",
    "proxy_blocks",
    "proxy_network",
]

# --- building blocks ----------------------------------------------------------------------
# Every ReLU is its own non-inplace nn.ReLU module: the scorer hooks nn.ReLU outputs and the
# ONNX capture reads Relu nodes, so a functional or in-place ReLU would hide units.
# forward() methods only branch on construction-time settings, so tracing sees one graph.


class Zero(nn.Module):
    """``none``: zeros of the output shape; no units, no parameters."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        if self.stride != 1:
            x = g.slice(x, starts=[0, 0], axes=[2, 3], steps=[self.stride, self.stride])
        return g.zeros_like(x)


class ReLUConvBN(nn.Sequential):
    """ReLU → k×k conv (no bias) → BN: cell preprocessing (1×1)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=True),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing every other pixel: two shifted 1×1 stride-2 convs.

    The second conv sees the input shifted by one pixel (padded right/bottom, first row and
    column dropped), which also keeps the output size right for odd input sizes.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, padding=0, bias=False)
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.bn = nn.BatchNorm2d(c_out, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = self.pad(x)[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        x = g(self.relu, x)
        pads = g.constant(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64))  # right/bottom by 1
        padded = g.node("Pad", [x, pads], mode="constant")
        shifted = g.slice(padded, starts=[1, 1], axes=[2, 3], steps=[1, 1])
        return g(self.bn, g.concat([g(self.conv_1, x), g(self.conv_2, shifted)]))


class SepConv(nn.Sequential):
    """``sep_conv_k×k``: the depthwise-separable block, applied twice (stride on the first)."""

    def __init__(self, c: int, kernel: int, stride: int) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=stride, padding=pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=True),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=1, padding=pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=True),
        )


class DilConv(nn.Sequential):
    """``dil_conv_k×k``: ReLU, depthwise k×k conv with dilation 2, 1×1 conv, BN."""

    def __init__(self, c: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c, c, kernel, stride=stride, padding=kernel - 1, dilation=2, groups=c, bias=False
            ),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=True),
        )


def _make_op(op: str, c: int, stride: int) -> nn.Module:
    """One edge's module, C channels in and out, as in SPEC.md's op table."""
    if op == "none":
        return Zero(stride)
    if op == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if op == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if op.startswith("sep_conv"):
        return SepConv(c, KERNEL_SIZE[op], stride)
    return DilConv(c, KERNEL_SIZE[op], stride)


class Cell(nn.Module):
    """A DARTS cell: preprocess both inputs to C channels, 4 summing nodes, concat.

    In a reduction cell the edges from the cell inputs (states 0 and 1) have stride 2. Input 0
    comes from two cells back; after a reduction cell it has twice the resolution of input 1,
    so it is preprocessed by a :class:`FactorizedReduce` instead of ReLU-conv-BN.
    """

    def __init__(
        self,
        edges: CellEdges,
        concat: tuple[int, ...],
        c_prev_prev: int,
        c_prev: int,
        c: int,
        *,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c)
        )
        self.preprocess1 = ReLUConvBN(c_prev, c)
        self.ops = nn.ModuleList(
            _make_op(op, c, 2 if reduction and index < 2 else 1) for op, index in edges
        )
        self.indices: tuple[int, ...] = tuple(index for _, index in edges)
        self.concat = concat
        self.multiplier = len(concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(STEPS):
            a, b = 2 * node, 2 * node + 1
            states.append(
                self.ops[a](states[self.indices[a]]) + self.ops[b](states[self.indices[b]])
            )
        return torch.cat([states[i] for i in self.concat], dim=1)

    def emit_onnx(self, g: GraphEmitter, s0: str, s1: str) -> str:
        """:meth:`forward` as ONNX nodes, same order (see :mod:`swapprobe.capture.emit`)."""
        states = [g(self.preprocess0, s0), g(self.preprocess1, s1)]
        for node in range(STEPS):
            a, b = 2 * node, 2 * node + 1
            out_a = g(self.ops[a], states[self.indices[a]])
            out_b = g(self.ops[b], states[self.indices[b]])
            states.append(g.add(out_a, out_b))
        return g.concat([states[i] for i in self.concat])


# --- networks -----------------------------------------------------------------------------


class ScoringNetwork(nn.Module):
    """The network SWAP-NAS scores a DARTS genotype on: one reduction cell, nothing else.

    No stem: the image feeds both cell inputs, so both preprocessing ReLUs see the raw
    normalised image (2 × 3072 shared units). The cell is the genotype's *reduction* cell (C
    doubles from 3 to 6). ``forward`` returns the globally pooled features (N, 4·6); the
    classifier exists only because its parameters count in Θ, exactly as the reference.
    """

    def __init__(self, genotype: Genotype) -> None:
        super().__init__()
        c_in, c = SCORING_CHANNELS, 2 * SCORING_CHANNELS
        self.cell = Cell(
            genotype.reduce,
            genotype.reduce_concat,
            c_in,
            c_in,
            c,
            reduction=True,
            reduction_prev=False,
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.cell.multiplier * c, SCORING_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_pooling(self.cell(x, x)).flatten(1)

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        """:meth:`forward` written as ONNX nodes, so scoring need not trace it."""
        return g.flatten(g(self.global_pooling, g(self.cell, x, x)))


class EvaluationNetworkCIFAR(nn.Module):
    """The DARTS CIFAR evaluation network (no auxiliary head, no drop-path).

    Stem 3×3 conv to 3·C channels + BN, then ``layers`` cells, reduction cells (channels
    doubled) at ``layers // 3`` and ``2 * layers // 3``, global average pooling, classifier.
    """

    def __init__(
        self, genotype: Genotype, *, num_classes: int = 10, layers: int = 20, channels: int = 36
    ) -> None:
        super().__init__()
        c_curr = 3 * channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr)
        )
        self.cells, c_prev = _cell_stack(
            genotype, layers, c_curr, c_curr, channels, reduction_prev=False
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


class EvaluationNetworkImageNet(nn.Module):
    """The DARTS ImageNet (mobile setting) evaluation network, for 224×224 inputs.

    Two stems bring the image to 1/4 and 1/8 resolution (so the first cell's input 0 is
    factorised-reduced); then cells as in the CIFAR network, global average pooling (the
    reference's 7×7 average pooling at 224×224, written so that smaller ImageNet-sized
    inputs work too), classifier. No auxiliary head.
    """

    def __init__(
        self, genotype: Genotype, *, num_classes: int = 1000, layers: int = 14, channels: int = 48
    ) -> None:
        super().__init__()
        c = channels
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, c // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=False),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.cells, c_prev = _cell_stack(genotype, layers, c, c, c, reduction_prev=True)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


# --- the network and blocks of the AZ-NAS proxies --------------------------------------------
#: the proxies' network: the CIFAR evaluation network shrunk to this many cells and channels
PROXY_LAYERS = 8
PROXY_CHANNELS = 8


def proxy_network(genotype: Genotype, *, num_classes: int = 10) -> EvaluationNetworkCIFAR:
    """The network the block-wise proxies run on: the genotype's CIFAR network shrunk to 8
    cells of 8 base channels (reductions at layers/3 and 2·layers/3).

    The scoring network's single cell on the raw image is too shallow for per-block entropies
    to progress. 8 cells of 8 channels was fixed for cost before any correlation was seen:
    0.37 s per genotype at B = 32 on one core, against 4.7 s for 8 cells of 16 channels at
    B = 64.
    """
    return EvaluationNetworkCIFAR(
        genotype, num_classes=num_classes, layers=PROXY_LAYERS, channels=PROXY_CHANNELS
    )


def proxy_blocks(network: nn.Module) -> list[nn.Module]:
    """The stem, then every cell; cell l is fed (s0, s1) with s1 = cell l−1's output, so its
    VJP is taken with respect to that input only."""
    return [network.stem, *network.cells]  # type: ignore[attr-defined]


def _cell_stack(
    genotype: Genotype, layers: int, c_pp: int, c_p: int, c: int, *, reduction_prev: bool
) -> tuple[nn.ModuleList, int]:
    """The evaluation networks' ``layers`` cells, reduction cells (channels doubled) at a third
    and two thirds of the depth; returns them and the last cell's output channels."""
    cells = nn.ModuleList()
    for i in range(layers):
        reduction = i in reduction_positions(layers)
        if reduction:
            c *= 2
        cell = _cell_for(genotype, c_pp, c_p, c, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        c_pp, c_p = c_p, cell.multiplier * c
    return cells, c_p


def _cell_for(
    genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool
) -> Cell:
    which: CellName = "reduce" if reduction else "normal"
    return Cell(
        genotype.cell(which),
        genotype.concat(which),
        c_pp,
        c_p,
        c,
        reduction=reduction,
        reduction_prev=reduction_prev,
    )
