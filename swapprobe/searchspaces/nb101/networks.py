"""The NAS-Bench-101 network as torch modules, as NASLib builds it for its zero-cost tables.

NASLib (``convert_spec_to_model``) builds ``nasbench_pytorch.model.Network(spec,
num_labels=10, in_channels=3, stem_out_channels=128, num_stacks=3,
num_modules_per_stack=3)``, a port of the benchmark's TensorFlow model: a 3×3
conv-BN-ReLU stem with 128 channels, three stacks of three cells with a 2×2 max pooling
(stride 2) between stacks that doubles the channel count, global average pooling and a
linear layer to 10 labels. Written here from that definition (the package is the tests'
oracle, not a dependency).

Inside a cell (the pruned one, :class:`~swapprobe.searchspaces.nb101.encoding.PrunedCell`):

* the output's channels are split over the vertices that feed it (the first
  ``out % fan_in`` of them get one more); every other interior vertex gets the largest width
  of the vertices it feeds (:func:`vertex_channels`);
* the cell input reaches a vertex only through a 1×1 conv-BN-ReLU projection to that
  vertex's width; an interior source wider than its destination is truncated to the
  destination's first channels;
* an interior vertex sums its inputs (interior sources in vertex order, then the projected
  cell input) and applies its op at constant width;
* the output concatenates the interior vertices that feed it, in vertex order, and adds the
  projected cell input when the input feeds it directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn

from swapprobe.searchspaces.nb101.channels import (
    NB101_CELLS_PER_STACK,
    NB101_STACKS,
    NB101_STEM_CHANNELS,
    vertex_channels,
)
from swapprobe.searchspaces.nb101.encoding import CONV1X1, CONV3X3, MAXPOOL3X3, PrunedCell

if TYPE_CHECKING:
    from swapprobe.capture.emit import GraphEmitter

__all__ = ["ConvBnRelu", "Nb101Cell", "Nb101Network"]

class ConvBnRelu(nn.Sequential):
    """k×k conv (no bias, 'same' padding), BN, ReLU: the benchmark's conv ops, projections
    and stem. The ReLU is a module, not in place, so hooks and the ONNX graph see each."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=False),
        )


def _make_op(op: str, channels: int) -> nn.Module:
    if op == CONV3X3:
        return ConvBnRelu(channels, channels, 3)
    if op == CONV1X1:
        return ConvBnRelu(channels, channels, 1)
    if op == MAXPOOL3X3:
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ValueError(f"not an interior NAS-Bench-101 op: {op!r}")  # guarded by Nb101Arch


class Nb101Cell(nn.Module):
    """One pruned cell from ``c_in`` to ``c_out`` channels (see the module docstring).

    ``ops[str(v)]`` is interior vertex v's op, ``projections[str(v)]`` the 1×1 projection of
    the cell input into vertex v (also v = output). The loops run over the fixed matrix,
    never over tensor values, so every trace records the same graph.
    """

    def __init__(self, cell: PrunedCell, c_in: int, c_out: int) -> None:
        super().__init__()
        self.matrix = cell.matrix
        self.channels = vertex_channels(c_in, c_out, cell.matrix)
        n = len(cell.matrix)
        self.ops = nn.ModuleDict(
            {str(v): _make_op(cell.ops[v], self.channels[v]) for v in range(1, n - 1)}
        )
        self.projections = nn.ModuleDict(
            {
                str(v): ConvBnRelu(c_in, self.channels[v], 1)
                for v in range(1, n)
                if cell.matrix[0][v]
            }
        )

    def _plan(self) -> tuple[list[list[int]], list[int]]:
        """Per interior vertex its interior sources; the interior vertices the output reads."""
        n = len(self.matrix)
        sources = [[s for s in range(1, t) if self.matrix[s][t]] for t in range(n - 1)]
        return sources, [t for t in range(1, n - 1) if self.matrix[t][n - 1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.matrix)
        sources, to_output = self._plan()
        tensors: list[torch.Tensor] = [x]
        for t in range(1, n - 1):
            inputs = [tensors[s][:, : self.channels[t]] for s in sources[t]]
            if self.matrix[0][t]:
                inputs.append(self.projections[str(t)](x))
            total = inputs[0]
            for more in inputs[1:]:
                total = total + more
            tensors.append(self.ops[str(t)](total))
        if not to_output:
            return self.projections[str(n - 1)](x)
        out = tensors[to_output[0]] if len(to_output) == 1 else torch.cat(
            [tensors[t] for t in to_output], dim=1
        )
        if self.matrix[0][n - 1]:
            out = out + self.projections[str(n - 1)](x)
        return out

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        """:meth:`forward` as ONNX nodes, in the same order (see :mod:`swapprobe.capture.emit`)."""
        n = len(self.matrix)
        sources, to_output = self._plan()
        tensors = [x]
        for t in range(1, n - 1):
            inputs = [
                _truncate(g, tensors[s], self.channels[s], self.channels[t]) for s in sources[t]
            ]
            if self.matrix[0][t]:
                inputs.append(g(self.projections[str(t)], x))
            total = inputs[0]
            for more in inputs[1:]:
                total = g.add(total, more)
            tensors.append(g(self.ops[str(t)], total))
        if not to_output:
            return g(self.projections[str(n - 1)], x)
        out = tensors[to_output[0]] if len(to_output) == 1 else g.concat(
            [tensors[t] for t in to_output], axis=1
        )
        if self.matrix[0][n - 1]:
            out = g.add(out, g(self.projections[str(n - 1)], x))
        return out


def _truncate(g: GraphEmitter, x: str, have: int, keep: int) -> str:
    """``x[:, :keep]`` (no node when nothing is dropped, as torch's slice is then a view)."""
    if have == keep:
        return x
    bounds = [np.asarray(v, np.int64) for v in ([0], [keep], [1])]
    return g.node("Slice", [x, *(g.constant(b) for b in bounds)])


class Nb101Network(nn.Module):
    """Stem, three stacks of three cells with max pooling between them, global average
    pooling, classifier; ``forward`` returns logits.

    ``layers`` holds the stem, cells and poolings in forward order (the proxies' blocks).
    """

    def __init__(self, cell: PrunedCell, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBnRelu(3, NB101_STEM_CHANNELS, 3)]
        c_in = c_out = NB101_STEM_CHANNELS
        for stack in range(NB101_STACKS):
            if stack > 0:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                c_out *= 2
            for _ in range(NB101_CELLS_PER_STACK):
                layers.append(Nb101Cell(cell, c_in, c_out))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.global_pool(self.layers(x)), 1))

    def emit_onnx(self, g: GraphEmitter, x: str) -> str:
        """:meth:`forward` written as ONNX nodes, so scoring need not trace it."""
        return g(self.classifier, g.flatten(g(self.global_pool, g(self.layers, x))))

