"""The torch pass behind AZ-NAS's proxies: per-block covariances, VJP cross matrices, FLOPs.

The pure formulas live in :mod:`swapprobe.proxies`; this module only runs the network and
returns small matrices. It follows AZ-NAS (CVPR 2024, cvlab-yonsei/AZ-NAS,
``NB201/ZeroShotProxy/compute_az_nas_score.py``; re-derived, not copied):

- weights: Kaiming-normal (fan-in, ReLU gain) for every conv and linear weight, biases 0,
  norm layers' affine 1 and 0 (:func:`init_kaiming_normal`);
- inputs: B Gaussian-noise images N(0, 1) (AZ-NAS uses B = 64); the batch is the caller's, so
  other inputs can be compared (with CIFAR images progressivity collapses, see the issue);
- the module in **train mode**: BN normalises with the batch's own statistics;
- token models (int64 ids (B, T)): the inputs are the run's own first B sequences, there being
  no noise in token space; a block's output (B, T, C) is read as B·T positions (rows) of C
  channels, so Σ_l is the covariance of the token positions' hidden vectors and M_l is taken
  over the same B·T rows (no resolution change along a sequence: no unshuffle). A Transformer
  whose blocks are its embeddings and encoder layers, each fed by the one before, so gets all
  three views;
- blocks: a list of submodules whose outputs F_0, F_1, … are the features. The forward is the
  module's own (forward hooks read the outputs), so any network works. For trainability,
  block l must be fed by block l−1's output (the same tensor object, checked by a forward
  pre-hook); a block that is not (or whose VJP gives back its cotangent unchanged, i.e. an
  identity map) gets no σ and is left out of the mean.

Trainability's estimator, per block l ≥ 1 in reverse order: G_out = a random ±1 tensor of F_l's
shape, G_in = the VJP of F_l with respect to F_{l−1} (``torch.autograd.grad``, so only block
l's graph is traversed — block-local backward), pixel-unshuffled by H_in/H_out when the block
changes resolution, then M_l = G_inᵀ G_out / (B·H·W) over the B·H·W positions (rows) and
channels (columns), transposed to be tall. σ_l is M_l's largest singular value.

Which network and which blocks are a search space's knowledge, not this pass's: each space
names them (``SearchSpace.proxy_network`` and ``proxy_blocks``, written in its ``networks``
module); this module never imports a space.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from swapprobe.proxies import azproxies, naslib

__all__ = [
    "BlockStats",
    "collect_block_stats",
    "counting_macs",
    "gaussian_inputs",
    "init_kaiming_normal",
    "module_macs",
    "naslib_pass",
    "proxy_values",
]


@dataclass
class BlockStats:
    """What one pass hands to the pure proxies (all numpy, all small).

    Attributes:
        covariances: per block, the C_l×C_l centred channel covariance of F_l (float64).
        crosses: per block, M_l (see the module docstring) or None where left out; entry 0 is
            always None (the first block has no preceding feature).
        macs: multiply-accumulates per sample of every Conv2d and Linear that ran.
        params: parameters of the module (all of them, used or not).
        timings: seconds of the ``forward`` (with covariances) and ``backward`` (the VJPs).
    """

    covariances: list[np.ndarray]
    crosses: list[np.ndarray | None]
    macs: int
    params: int
    timings: dict[str, float] = field(default_factory=dict)


def init_kaiming_normal(module: nn.Module) -> None:
    """AZ-NAS's default init: conv/linear weights ~ Kaiming normal (fan-in, ReLU), biases 0,
    BN/GroupNorm weight 1 and bias 0. Draws from torch's global generator (seed it first).
    A token model's 1-D convolutions count as convolutions; embeddings and LayerNorms keep
    the network's own draw."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Conv1d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def gaussian_inputs(
    batch_size: int, shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0
) -> torch.Tensor:
    """B images of i.i.d. N(0, 1) pixels (AZ-NAS's inputs), reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch_size, *shape), generator=gen)


def _channel_covariance(feature: torch.Tensor) -> np.ndarray:
    """Centred C×C covariance of an (B, C, H, W), (B, T, C) or (B, C) feature, rows =
    positions (B·H·W pixels, B·T tokens, B samples)."""
    f = feature.detach()
    if f.dim() not in (2, 3, 4):
        raise ValueError(
            f"block features must be (B, C, H, W), (B, T, C) or (B, C), got {tuple(f.shape)}"
        )
    f = _positions64(f)
    f = f - f.mean(dim=0, keepdim=True)
    return (f.T @ f / f.shape[0]).numpy()


def _positions64(t: torch.Tensor) -> torch.Tensor:
    """Rows = positions, columns = channels, in float64 and contiguous: a (B, C, H, W) tensor
    becomes (B·H·W, C) in one copy that also converts (not a float32 copy, then another); a
    token model's (B, T, C) becomes (B·T, C)."""
    if t.dim() == 4:
        b, c, h, w = t.shape
        rows = torch.empty((b, h, w, c), dtype=torch.float64)
        rows.copy_(t.permute(0, 2, 3, 1))
        return rows.view(-1, c)
    if t.dim() == 3:
        return t.reshape(-1, t.shape[-1]).double()
    return t.reshape(t.shape[0], -1).double()


def _cross_matrix(
    f_in: torch.Tensor, f_out: torch.Tensor, gen: torch.Generator
) -> np.ndarray | None:
    """M_l of one block, or None for an identity block (its VJP returns the cotangent)."""
    # drawn in the feature's dtype: the same 0/1 values from the same generator stream as an
    # integer draw cast afterwards, without the int64 tensor and the cast
    g_out = torch.randint(0, 2, f_out.shape, generator=gen, dtype=f_out.dtype) * 2 - 1
    (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=False, allow_unused=True)
    if g_in is None:
        g_in = torch.zeros_like(f_in)
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return None
    if g_in.dim() == 4 and g_out.dim() == 4 and g_in.shape[2:] != g_out.shape[2:]:
        stride = g_in.shape[2] // g_out.shape[2]
        g_in = nn.functional.pixel_unshuffle(g_in, stride)
    rows_in, rows_out = _positions64(g_in), _positions64(g_out)
    if rows_in.shape[0] != rows_out.shape[0]:
        return None  # shapes that pixel-unshuffle cannot match: leave the block out
    m = rows_in.T @ rows_out / rows_out.shape[0]
    if m.shape[0] < m.shape[1]:
        m = m.T
    return m.numpy()


class _PoolAsConv(nn.Module):
    """An ``nn.AvgPool2d`` written as a depthwise convolution with a ones kernel, divided by
    the count of summed inputs at each output position (the padded ones too when the pool
    counts them). The same function; kept apart from the scoring network and used only by this
    pass because torch's CPU average pooling ran 2-3× slower than the convolution here, forward
    and backward (NAS-Bench-201's 3×3 pools at B = 16: about a quarter of the pass)."""

    def __init__(self, pool: nn.AvgPool2d) -> None:
        super().__init__()
        self.kernel = _pair(pool.kernel_size)
        self.stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
        self.padding = _pair(pool.padding)
        self.count_include_pad = pool.count_include_pad
        self._counts: dict[tuple[int, int, torch.dtype], torch.Tensor] = {}
        self._kernels: dict[tuple[int, torch.dtype], torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, height, width = x.shape[-3:]
        key = (channels, x.dtype)
        if key not in self._kernels:
            self._kernels[key] = torch.ones((channels, 1, *self.kernel), dtype=x.dtype)
        ones = self._kernels[key]
        summed = nn.functional.conv2d(x, ones, None, self.stride, self.padding, 1, channels)
        return summed / self._count(height, width, x.dtype)

    def _count(self, height: int, width: int, dtype: torch.dtype) -> torch.Tensor | float:
        if self.count_include_pad:
            return float(self.kernel[0] * self.kernel[1])
        key = (height, width, dtype)
        if key not in self._counts:
            plane = torch.ones((1, 1, height, width), dtype=dtype)
            window = torch.ones((1, 1, *self.kernel), dtype=dtype)
            conv = nn.functional.conv2d(plane, window, None, self.stride, self.padding)
            self._counts[key] = conv
        return self._counts[key]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@contextmanager
def _pools_as_convs(module: nn.Module, keep: Sequence[nn.Module]) -> Iterator[None]:
    """Swap every plain ``nn.AvgPool2d`` (no ceil mode, no divisor override) of ``module``
    for :class:`_PoolAsConv` while the pass runs, except those in ``keep`` (blocks, whose hooks
    read the features); the module is restored afterwards."""
    kept = {id(m) for m in keep}
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in module.modules():
        for name, child in parent.named_children():
            plain = (
                type(child) is nn.AvgPool2d
                and id(child) not in kept
                and not child.ceil_mode
                and child.divisor_override is None
            )
            if plain:
                swapped.append((parent, name, child))
    try:
        for parent, name, child in swapped:
            setattr(parent, name, _PoolAsConv(child))
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


@contextmanager
def counting_macs(module: nn.Module, *, every_position: bool = True) -> Iterator[list[int]]:
    """Count the multiply-accumulates per sample of every ``Conv2d`` and ``Linear`` of
    ``module`` that runs inside the block: yields a one-item list whose value grows.

    One forward hook per layer, each adding :func:`~swapprobe.proxies.azproxies.conv_macs`
    of the layer at the size its output had. ``every_position`` counts a ``Linear`` once per
    position of its output (a token model's (S, T, D) counts T times): the network's real
    cost, what a budget needs. AZ-NAS's FLOPs proxy counts it once per sample, as its
    published values do (``every_position=False``; the same for (S, D) outputs).
    Functional ops (``torch.matmul`` in attention) are not modules and are not counted.
    """
    macs = [0]

    def count(m: nn.Module, _args: tuple, out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            macs[0] += azproxies.conv_macs(
                m.out_channels, out.shape[2], out.shape[3], m.in_channels, m.kernel_size, m.groups
            )
        else:
            positions = out.numel() // (out.shape[0] * m.out_features) if every_position else 1
            macs[0] += positions * azproxies.conv_macs(m.out_features, 1, 1, m.in_features, (1, 1))

    handles = [
        m.register_forward_hook(count)
        for m in module.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        yield macs
    finally:
        for handle in handles:
            handle.remove()


def module_macs(module: nn.Module, sample: torch.Tensor) -> int:
    """Multiply-accumulates per sample of one forward of ``module`` on ``sample`` (a batch;
    the hooks count one sample's cost), counted by :func:`counting_macs` at every position.

    Runs in eval mode without gradients; a module built on the ``meta`` device with a
    ``meta`` sample is counted from shapes alone, without computing anything (a DARTS
    ImageNet network at 224×224 in milliseconds).
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), counting_macs(module) as macs:
            module(sample)
    finally:
        module.train(was_training)
    return macs[0]


def collect_block_stats(
    module: nn.Module,
    blocks: Sequence[nn.Module],
    inputs: torch.Tensor,
    *,
    seed: int = 0,
    init: bool = True,
    trainability: bool = True,
) -> BlockStats:
    """One forward (train mode) and, if asked, one block-local VJP per block.

    Args:
        module: the network; its ``forward(inputs)`` must run every block.
        blocks: the feature-producing submodules, in forward order (a space's
            ``proxy_blocks``).
        inputs: the batch, e.g. :func:`gaussian_inputs` (B = 64 in AZ-NAS).
        seed: seeds the init (global torch generator) and the ±1 cotangents.
        init: re-initialise with :func:`init_kaiming_normal` first (False keeps the weights).
        trainability: also compute the VJP cross matrices (the costly part).
    """
    if init:
        torch.manual_seed(seed)
        init_kaiming_normal(module)
    module.train()
    outputs: dict[int, torch.Tensor] = {}
    fed_by_previous: dict[int, bool] = {}
    handles = []
    for index, block in enumerate(blocks):

        def keep(_m: nn.Module, _args: tuple, out: torch.Tensor, index: int = index) -> None:
            outputs[index] = out

        def check(_m: nn.Module, args: tuple, index: int = index) -> None:
            previous = outputs.get(index - 1)
            fed_by_previous[index] = previous is not None and any(a is previous for a in args)

        handles.append(block.register_forward_hook(keep))
        handles.append(block.register_forward_pre_hook(check))

    t0 = time.perf_counter()
    try:
        with (
            torch.enable_grad(),
            _pools_as_convs(module, blocks),
            counting_macs(module, every_position=False) as macs,
        ):
            module(inputs)
    finally:
        for handle in handles:
            handle.remove()
    missing = [i for i in range(len(blocks)) if i not in outputs]
    if missing:
        raise ValueError(f"blocks {missing} did not run in the module's forward")
    features = [outputs[i] for i in range(len(blocks))]
    covariances = [_channel_covariance(f) for f in features]
    t1 = time.perf_counter()
    crosses: list[np.ndarray | None] = [None] * len(features)
    if trainability:
        gen = torch.Generator().manual_seed(seed + 1)
        for index in reversed(range(1, len(features))):
            f_out, f_in = features[index], features[index - 1]
            if fed_by_previous.get(index) and f_out.requires_grad and f_in.requires_grad:
                crosses[index] = _cross_matrix(f_in, f_out, gen)
    t2 = time.perf_counter()
    return BlockStats(
        covariances=covariances,
        crosses=crosses,
        macs=macs[0],
        params=sum(p.numel() for p in module.parameters()),
        timings={"forward": t1 - t0, "backward": t2 - t1},
    )


def proxy_values(stats: BlockStats) -> dict[str, float]:
    """E, P, T and complexity (MACs, params) from one pass's statistics, all bigger-is-better."""
    h = azproxies.block_entropies(stats.covariances)
    sigmas = [None if c is None else azproxies.largest_singular_value(c) for c in stats.crosses[1:]]
    return {
        "expressivity": azproxies.expressivity(h),
        "progressivity": azproxies.progressivity(h),
        "trainability": azproxies.trainability(sigmas),
        "flops": float(stats.macs),
        "params": float(stats.params),
    }


def _weight_layers(module: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _weights_and_grads(layers: Sequence[nn.Module]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    weights, grads = [], []
    for m in layers:
        w = m.weight  # type: ignore[union-attr]
        weights.append(w.detach().double().numpy())
        g = w.grad if w.grad is not None else torch.zeros_like(w)
        grads.append(g.detach().double().numpy())
    return weights, grads


def naslib_pass(
    module: nn.Module,
    inputs: torch.Tensor,
    *,
    num_classes: int,
    seed: int = 0,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """grad_norm, snip, synflow and jacob_cov as NASLib computes them (bigger is better).

    Three backward passes through the whole network (these proxies are not block-local):
    cross-entropy on ``labels`` (random ones from ``seed`` when None, as the noise inputs
    have none) for grad_norm and snip; Σ outputs with respect to the inputs for jacob_cov;
    synflow on a float64 copy with every parameter replaced by its absolute value, eval mode
    (BN's initial running statistics, i.e. no batch coupling) and a single all-ones input.
    Weights are AZ-NAS's Kaiming-normal draw from ``seed`` (:func:`init_kaiming_normal`).
    """
    torch.manual_seed(seed)
    init_kaiming_normal(module)
    module.train()
    layers = _weight_layers(module)
    if labels is None:
        gen = torch.Generator().manual_seed(seed + 2)
        labels = torch.randint(0, num_classes, (inputs.shape[0],), generator=gen)
    module.zero_grad()
    with torch.enable_grad():
        loss = nn.functional.cross_entropy(module(inputs), labels)
        loss.backward()
    weights, grads = _weights_and_grads(layers)
    values = {"grad_norm": naslib.grad_norm(grads), "snip": naslib.snip(weights, grads)}
    module.zero_grad()
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = module(x)
        out.backward(torch.ones_like(out))
    assert x.grad is not None
    values["jacob_cov"] = naslib.jacob_cov(x.grad.reshape(len(x), -1).numpy())
    module.zero_grad()
    linear = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        for p in linear.parameters():
            p.abs_()
    linear_layers = _weight_layers(linear)
    with torch.enable_grad():
        total = linear(torch.ones((1, *inputs.shape[1:]), dtype=torch.float64)).sum()
        total.backward()
    weights, grads = _weights_and_grads(linear_layers)
    values["synflow"] = naslib.synflow(weights, grads)
    return values
