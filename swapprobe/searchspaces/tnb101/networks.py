"""TransNAS-Bench-101's networks as torch modules: the micro and macro encoders and the seven
task heads, written from the definitions of NASLib's ``naslib/search_spaces/transbench101/
tnb101`` (the benchmark's own ``model_builder.py``) so that the layers, their order and their
parameters are those NAS-Bench-Suite-Zero scored.

Kept apart from :mod:`swapprobe.searchspaces.tnb101.space` so that parsing, sampling and search
moves never import torch. Takes plain tuples (micro op codes, macro stage codes) and a task name.

Layout of every network: ``encoder`` (``stem`` then ``layers``, each a stage of two cells or
blocks) and ``decoder`` (the task's head); :class:`TaskNetwork` runs the jigsaw task's encoder
on each of 9 tiles cut from the image, as the benchmark's Siamese network does.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from swapprobe.searchspaces.tnb101.encoding import (
    MICRO_EDGES,
    TASK_OUTPUTS,
    TNB101_BASE_CHANNELS,
    TNB101_TILE_SIZE,
    macro_doubles,
    macro_halves,
)

__all__ = [
    "BasicBlock",
    "ConvLayer",
    "DeconvLayer",
    "Encoder",
    "FactorizedReduce",
    "GenerativeDecoder",
    "LinearHead",
    "MicroCell",
    "ReLUConvBN",
    "SegmentationDecoder",
    "TaskNetwork",
    "Zero",
    "build_task_network",
]

_NUM_TILES = 9


# --- cell ops --------------------------------------------------------------------------------
class ReLUConvBN(nn.Sequential):
    """ReLU, k×k conv (no bias), BN: the micro space's convolutions and the blocks' halves.

    ``nn.ReLU`` modules, not in place: SWAP reads the ReLUs, and an in-place one would
    overwrite a node tensor that other edges still read.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
            ),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the edge's output shape, computed from the input.

    The benchmark slices ``x[:, :, ::s, ::s] * 0`` where the channels stay, and allocates new
    zeros where they double; here both are the sliced product, repeated along the channels when
    they double: the same values, with a data dependence that keeps the exported graph
    connected and free of batch-size constants.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if c_out % c_in:
            raise ValueError(f"Zero maps {c_in} to a multiple of it, got {c_out}")
        self.stride = stride
        self.repeat = c_out // c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        zeros = x.mul(0.0)
        return zeros.repeat(1, self.repeat, 1, 1) if self.repeat > 1 else zeros


class FactorizedReduce(nn.Module):
    """The skip op where the resolution halves: ReLU, two 1×1 convs of stride 2 on the input
    and on it shifted by one pixel, concatenated, BN."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        half = c_out // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c, 1, stride=stride, padding=0, bias=False)
            for c in (half, c_out - half)
        )
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.bn = nn.BatchNorm2d(c_out, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = self.pad(x)[:, :, 1:, 1:]
        return self.bn(torch.cat([self.convs[0](x), self.convs[1](shifted)], dim=1))


def _micro_op(code: int, c_in: int, c_out: int, stride: int) -> nn.Module:
    if code == 0:
        return Zero(c_in, c_out, stride)
    if code == 1:
        if stride == 1 and c_in == c_out:
            return nn.Identity()
        return FactorizedReduce(c_in, c_out, stride)
    if code == 2:
        return ReLUConvBN(c_in, c_out, 1, stride)
    if code == 3:
        return ReLUConvBN(c_in, c_out, 3, stride)
    raise ValueError(f"micro op code {code} is not 0-3")  # guarded by the space's parse


class MicroCell(nn.Module):
    """One micro cell: node j = sum of op(node i) over its incoming edges; output node 3.

    Edges leaving the input node map C_in → C_out at the cell's stride, the others C_out →
    C_out at stride 1 (the benchmark's rule). The loop runs over the fixed edge table, so a
    trace records the same graph for every input.
    """

    def __init__(self, codes: tuple[int, ...], c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            _micro_op(code, c_in, c_out, stride)
            if source == 0
            else _micro_op(code, c_out, c_out, 1)
            for code, (_, source) in zip(codes, MICRO_EDGES, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, 4):
            total: torch.Tensor | None = None
            for edge, (target, source) in enumerate(MICRO_EDGES):
                if target == node:
                    out = self.edges[edge](nodes[source])
                    total = out if total is None else total + out
            assert total is not None
            nodes.append(total)
        return nodes[-1]


class BasicBlock(nn.Module):
    """The macro space's ResNet basic block: ReLU-Conv3×3-BN twice, plus the input, through a
    1×1 conv (stride s, no bias) and BN where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, padding=0, bias=False),
                nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


# --- encoder ---------------------------------------------------------------------------------
class Encoder(nn.Module):
    """The benchmark's backbone (``MacroNet(..., structure='backbone')``).

    Stem: Conv3×3 3→32 stride 2 (no bias), BN, ReLU-Conv3×3 32→64 stride 2-BN; then one stage
    per stage code, each two cells (micro) or two basic blocks (macro), the first of which
    halves the resolution and/or doubles the channels as the code says.
    """

    def __init__(self, stages: tuple[int, ...], cell: tuple[int, ...] | None) -> None:
        super().__init__()
        base = TNB101_BASE_CHANNELS
        self.stem = nn.Sequential(
            nn.Conv2d(3, base // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(base // 2, affine=True, track_running_stats=True),
            ReLUConvBN(base // 2, base, 3, 2),
        )
        layers: list[nn.Module] = []
        channels = base
        for code in stages:
            target = 2 * channels if macro_doubles(code) else channels
            stride = 2 if macro_halves(code) else 1
            first: nn.Module
            second: nn.Module
            if cell is None:
                first, second = BasicBlock(channels, target, stride), BasicBlock(target, target, 1)
            else:
                first = MicroCell(cell, channels, target, stride)
                second = MicroCell(cell, target, target, 1)
            layers.append(nn.Sequential(first, second))
            channels = target
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels
        #: resolution halvings after the stem's two: the decoders undo 2 + this many
        self.downsamples = sum(macro_halves(code) for code in stages)
        self._kaiming_init()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))

    def _kaiming_init(self) -> None:
        """The benchmark's initialisation (matters only where the weights are kept)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1.0)
                nn.init.constant_(module.bias, 0.0)


# --- task heads ------------------------------------------------------------------------------
class LinearHead(nn.Sequential):
    """Global average pooling and a linear layer: the classification, room-layout and jigsaw
    heads (jigsaw's takes the 9 tiles' features side by side)."""

    def __init__(self, channels: int, outputs: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, outputs))


class ConvLayer(nn.Sequential):
    """Conv3×3 (with bias), BN, activation: the decoders' layers (the last has neither BN nor
    activation, or only a Tanh)."""

    def __init__(
        self, c_in: int, c_out: int, activation: nn.Module | None, norm: bool = True
    ) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=1, padding=1)]
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        if activation is not None:
            layers.append(activation)
        super().__init__(*layers)


class DeconvLayer(nn.Sequential):
    """Transposed Conv3×3 of stride 2 (with bias, output padding 1: doubles the size), BN,
    LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2, inplace=False),
        )


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=False)


class GenerativeDecoder(nn.Sequential):
    """The pix2pix decoder of the autoencoder and surface-normal tasks: 14 layers from
    1024 to 16 channels, of which the last ``upsamples`` double the size, and a Conv-Tanh to
    3 channels. ``upsamples`` is 2 + the encoder's halvings (back to the input's size)."""

    def __init__(self, channels: int, upsamples: int, out_channels: int = 3) -> None:
        if not 2 <= upsamples <= 6:
            raise ValueError(f"the generative decoder upsamples 2-6 times, got {upsamples}")

        def stage(c_in: int, c_out: int, up: bool) -> nn.Module:
            return DeconvLayer(c_in, c_out) if up else ConvLayer(c_in, c_out, _leaky())

        super().__init__(
            ConvLayer(channels, 1024, _leaky()),
            ConvLayer(1024, 1024, _leaky()),
            stage(1024, 512, upsamples == 6),
            ConvLayer(512, 512, _leaky()),
            stage(512, 256, upsamples >= 5),
            ConvLayer(256, 128, _leaky()),
            stage(128, 64, upsamples >= 4),
            ConvLayer(64, 64, _leaky()),
            stage(64, 32, upsamples >= 3),
            ConvLayer(32, 32, _leaky()),
            DeconvLayer(32, 16),
            ConvLayer(16, 32, _leaky()),
            DeconvLayer(32, 16),
            ConvLayer(16, out_channels, nn.Tanh(), norm=False),
        )


class SegmentationDecoder(nn.Sequential):
    """The semantic-segmentation decoder: Conv to 1024, 6 - ``upsamples`` Convs halving the
    channels, ``upsamples`` - 1 Deconvs halving them, one Deconv keeping them, and a plain Conv
    to the classes."""

    def __init__(self, channels: int, upsamples: int, classes: int) -> None:
        if not 2 <= upsamples <= 6:
            raise ValueError(f"the segmentation decoder upsamples 2-6 times, got {upsamples}")
        layers: list[nn.Module] = [ConvLayer(channels, 1024, _leaky())]
        width = 1024
        for _ in range(6 - upsamples):
            layers.append(ConvLayer(width, width // 2, _leaky()))
            width //= 2
        for _ in range(upsamples - 1):
            layers.append(DeconvLayer(width, width // 2))
            width //= 2
        layers.append(DeconvLayer(width, width))
        layers.append(ConvLayer(width, classes, None, norm=False))
        super().__init__(*layers)


# --- the task network ------------------------------------------------------------------------
class TaskNetwork(nn.Module):
    """Encoder and task head; ``forward`` takes (S, 3, H, W) images.

    Jigsaw (``tiles=True``): the image is cut into a 3×3 grid and the central
    :data:`TNB101_TILE_SIZE` square of each cell taken (the benchmark crops each tile at a random
    place of its cell: the centre is that crop made deterministic); the encoder runs on each
    tile in turn, as the benchmark's Siamese network does (so batch statistics are per tile), and
    the head reads the 9 feature maps concatenated along the channels.
    """

    def __init__(self, encoder: Encoder, decoder: nn.Module, tiles: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.tiles = tiles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.tiles:
            return self.decoder(self.encoder(x))
        features = [self.encoder(tile) for tile in _tiles(x)]
        return self.decoder(torch.cat(features, dim=1))


def _tiles(x: torch.Tensor) -> list[torch.Tensor]:
    """The 9 jigsaw tiles of (S, C, H, W) images, row by row."""
    height, width = int(x.shape[-2]) // 3, int(x.shape[-1]) // 3
    size_h, size_w = min(TNB101_TILE_SIZE, height), min(TNB101_TILE_SIZE, width)
    top, left = (height - size_h) // 2, (width - size_w) // 2
    rows = [r * height + top for r in range(3)]
    columns = [c * width + left for c in range(3)]
    return [x[:, :, r : r + size_h, c : c + size_w] for r in rows for c in columns]


def build_task_network(
    task: str, stages: tuple[int, ...], cell: tuple[int, ...] | None = None
) -> TaskNetwork:
    """The network NASLib builds for ``task``: stages coded as the macro space codes them
    (the micro space's are its fixed ``41414``) of basic blocks, or of micro cells with op
    codes ``cell``."""
    encoder = Encoder(stages, cell)
    channels = encoder.out_channels
    upsamples = 2 + encoder.downsamples
    outputs = TASK_OUTPUTS[task]
    decoder: nn.Module
    if isinstance(outputs, int):
        tiles = task == "jigsaw"
        decoder = LinearHead(channels * (_NUM_TILES if tiles else 1), outputs)
        return TaskNetwork(encoder, decoder, tiles=tiles)
    elif task == "segmentsemantic":
        decoder = SegmentationDecoder(channels, upsamples, outputs[0])
    else:
        decoder = GenerativeDecoder(channels, upsamples, outputs[0])
    return TaskNetwork(encoder, decoder)
