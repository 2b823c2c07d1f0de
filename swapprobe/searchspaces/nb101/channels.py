"""Widths and sizes of the NAS-Bench-101 network, without building it (no torch).

The channel-splitting rule is the benchmark's (``compute_vertex_channels`` of
google-research/nasbench, kept by ``nasbench_pytorch``); the parameter count is the sum over
the modules of :class:`~swapprobe.searchspaces.nb101.networks.Nb101Network`, so the search
can size thousands of cells cheaply.
"""

from __future__ import annotations

from collections.abc import Iterator

from swapprobe.searchspaces.nb101.encoding import CONV1X1, CONV3X3, Matrix, PrunedCell

__all__ = [
    "NB101_CELLS_PER_STACK",
    "NB101_IMAGE_SIDE",
    "NB101_STACKS",
    "NB101_STEM_CHANNELS",
    "network_flops",
    "network_param_count",
    "vertex_channels",
]

#: NASLib's settings of the benchmark network
NB101_STEM_CHANNELS = 128
NB101_STACKS = 3
NB101_CELLS_PER_STACK = 3
#: CIFAR-10's image side, the only input the benchmark was trained on
NB101_IMAGE_SIDE = 32


def vertex_channels(in_channels: int, out_channels: int, matrix: Matrix) -> list[int]:
    """Channels of every vertex of a pruned cell (the benchmark's splitting rule).

    The vertices feeding the output share its channels, the first ``out % k`` of the k
    getting one more; the others take the maximum over the vertices they feed, computed
    backwards. Vertex 0 has the cell's input channels, the output ``out_channels``.
    """
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[n - 1] = in_channels, out_channels
    if n == 2:  # input straight to output
        return channels
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    share, extra = divmod(out_channels, len(feeding))
    for rank, v in enumerate(feeding):
        channels[v] = share + (1 if rank < extra else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[d] for d in range(v + 1, n - 1) if matrix[v][d])
    return channels


def _cells() -> Iterator[tuple[int, int, int]]:
    """``(c_in, c_out, side)`` of the nine cells in forward order (32×32 images: sides 32,
    16, 8; the pooling between stacks halves the side, the first cell of a stack doubles
    the channels)."""
    c_in = c_out = NB101_STEM_CHANNELS
    side = NB101_IMAGE_SIDE
    for stack in range(NB101_STACKS):
        if stack > 0:
            c_out *= 2
            side //= 2
        for _ in range(NB101_CELLS_PER_STACK):
            yield c_in, c_out, side
            c_in = c_out


def _op_params(op: str, c: int) -> int:
    """Parameters of one interior op at width c: conv weight plus BN weight and bias."""
    if op == CONV3X3:
        return 9 * c * c + 2 * c
    if op == CONV1X1:
        return c * c + 2 * c
    return 0


def network_param_count(cell: PrunedCell, num_classes: int = 10) -> int:
    """Parameters of :class:`Nb101Network` in closed form: stem 27·128 + 2·128; per cell its
    ops and one projection c_in·c_v + 2·c_v per vertex the cell input feeds; classifier
    512·K + K. (``nasbench_pytorch`` adds one scalar per placeholder module, which NASLib's
    ``params`` column does not count, and neither does this.)"""
    n = len(cell.matrix)
    total = 27 * NB101_STEM_CHANNELS + 2 * NB101_STEM_CHANNELS
    c_out = NB101_STEM_CHANNELS
    for c_in, c_out, _ in _cells():
        channels = vertex_channels(c_in, c_out, cell.matrix)
        total += sum(_op_params(cell.ops[v], channels[v]) for v in range(1, n - 1))
        total += sum(
            c_in * channels[v] + 2 * channels[v] for v in range(1, n) if cell.matrix[0][v]
        )
    return total + c_out * num_classes + num_classes


def _conv_bn_relu_flops(c_in: int, c_out: int, kernel: int, area: int) -> int:
    """k²·c_in·c_out multiply-adds per output position, 2 per BN output, 1 per ReLU output."""
    return (kernel * kernel * c_in * c_out + 3 * c_out) * area


def network_flops(cell: PrunedCell, num_classes: int = 10) -> int:
    """FLOPs of one 32×32 image as NASLib's ``flops`` column counts them (tensorwatch's
    per-layer rule): conv multiply-adds, 2 per BN and 1 per ReLU output element, k² per
    max-pooling output element, the classifier's in·out; additions of vertex inputs, the
    concatenation and the global average are not counted."""
    n = len(cell.matrix)
    area = NB101_IMAGE_SIDE * NB101_IMAGE_SIDE
    total = _conv_bn_relu_flops(3, NB101_STEM_CHANNELS, 3, area)
    c_out = NB101_STEM_CHANNELS
    previous_side = NB101_IMAGE_SIDE
    for c_in, c_out, side in _cells():
        area = side * side
        if side != previous_side:  # the 2×2 pooling before the stack: 4 per output element
            total += 4 * c_in * area
            previous_side = side
        channels = vertex_channels(c_in, c_out, cell.matrix)
        for v in range(1, n - 1):
            if cell.ops[v] == CONV3X3:
                total += _conv_bn_relu_flops(channels[v], channels[v], 3, area)
            elif cell.ops[v] == CONV1X1:
                total += _conv_bn_relu_flops(channels[v], channels[v], 1, area)
            else:
                total += 9 * channels[v] * area
        total += sum(
            _conv_bn_relu_flops(c_in, channels[v], 1, area)
            for v in range(1, n)
            if cell.matrix[0][v]
        )
    return total + c_out * num_classes
