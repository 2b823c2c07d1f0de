"""Closed-form parameter counts of the TransNAS-Bench-101 networks (no torch).

Why closed form: ``--reg auto`` sizes 1,000 sampled architectures and the tests check every
row of the tables; building a network even on torch's meta device takes ~0.1 s. Each count
mirrors a module of :mod:`swapprobe.searchspaces.tnb101.networks` (the tests hold the two equal
on built networks and both to NASLib's ``params`` column). BN has a weight and a bias per
channel; its running statistics are buffers, not parameters.
"""

from __future__ import annotations

from itertools import pairwise

from swapprobe.searchspaces.tnb101.encoding import (
    MICRO_EDGES,
    TASK_OUTPUTS,
    TNB101_BASE_CHANNELS,
    macro_doubles,
    macro_halves,
)

__all__ = ["network_params"]

_TILES = 9


def _relu_conv_bn(c_in: int, c_out: int, kernel: int) -> int:
    return kernel * kernel * c_in * c_out + 2 * c_out


def _micro_op(code: int, c_in: int, c_out: int, stride: int) -> int:
    if code == 0 or (code == 1 and stride == 1 and c_in == c_out):
        return 0  # none, identity
    if code == 1 or code == 2:  # factorized reduce (two 1×1 halves) or 1×1 conv, each + BN
        return c_in * c_out + 2 * c_out
    return _relu_conv_bn(c_in, c_out, 3)


def _micro_cell(cell: tuple[int, ...], c_in: int, c_out: int, stride: int) -> int:
    return sum(
        _micro_op(code, c_in, c_out, stride) if source == 0 else _micro_op(code, c_out, c_out, 1)
        for code, (_, source) in zip(cell, MICRO_EDGES, strict=True)
    )


def _basic_block(c_in: int, c_out: int, stride: int) -> int:
    total = _relu_conv_bn(c_in, c_out, 3) + _relu_conv_bn(c_out, c_out, 3)
    if stride != 1 or c_in != c_out:
        total += c_in * c_out + 2 * c_out
    return total


def _conv_layer(c_in: int, c_out: int, norm: bool = True) -> int:
    """Conv3×3 with bias, and BN."""
    return 9 * c_in * c_out + c_out + (2 * c_out if norm else 0)


def _generative_decoder(channels: int, out_channels: int) -> int:
    """A transposed 3×3 conv has as many weights as a conv, so the count is the same however
    many stages upsample."""
    widths = (channels, 1024, 1024, 512, 512, 256, 128, 64, 64, 32, 32, 16, 32, 16)
    total = sum(_conv_layer(a, b) for a, b in pairwise(widths))
    return total + _conv_layer(16, out_channels, norm=False)


def _segmentation_decoder(channels: int, classes: int) -> int:
    """Five layers halve the channels whichever of them upsample (convs then deconvs)."""
    total = _conv_layer(channels, 1024)
    width = 1024
    for _ in range(5):
        total += _conv_layer(width, width // 2)
        width //= 2
    return total + _conv_layer(width, width) + _conv_layer(width, classes, norm=False)


def network_params(task: str, stages: tuple[int, ...], cell: tuple[int, ...] | None) -> int:
    """Parameters of ``build_task_network(task, stages, cell)``: ``stages`` of basic blocks
    when ``cell`` is None, else of micro cells ``cell``."""
    base = TNB101_BASE_CHANNELS
    total = 9 * 3 * (base // 2) + 2 * (base // 2) + _relu_conv_bn(base // 2, base, 3)  # stem
    channels = base
    for code in stages:
        target = 2 * channels if macro_doubles(code) else channels
        stride = 2 if macro_halves(code) else 1
        if cell is None:
            total += _basic_block(channels, target, stride) + _basic_block(target, target, 1)
        else:
            total += _micro_cell(cell, channels, target, stride)
            total += _micro_cell(cell, target, target, 1)
        channels = target
    outputs = TASK_OUTPUTS[task]
    if isinstance(outputs, int):
        features = channels * (_TILES if task == "jigsaw" else 1)
        return total + features * outputs + outputs
    if task == "segmentsemantic":
        return total + _segmentation_decoder(channels, outputs[0])
    return total + _generative_decoder(channels, outputs[0])
