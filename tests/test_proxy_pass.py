"""The torch pass of AZ-NAS's proxies on tiny networks whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from swapprobe.capture.proxy_pass import (
    collect_block_stats,
    gaussian_inputs,
    init_kaiming_normal,
    proxy_values,
)


class Scale(nn.Module):
    """y = a·x with a fixed factor: its VJP is a·g, so σ is known exactly on one channel."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(factor), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Chain(nn.Module):
    def __init__(self, *blocks: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def _one_channel_chain() -> Chain:
    first = nn.Conv2d(1, 1, 1, bias=False)  # makes the features require grad
    return Chain(first, Scale(2.0), Scale(1.0), nn.AvgPool2d(2))


def test_sigma_of_known_maps() -> None:
    net = _one_channel_chain()
    stats = collect_block_stats(net, list(net.blocks), torch.randn(4, 1, 8, 8), seed=3)
    assert stats.crosses[0] is None  # the first block has no preceding feature
    # y = 2x on one channel: M = Σ 2·g² / n = 2 exactly (g = ±1)
    np.testing.assert_allclose(stats.crosses[1], [[2.0]])
    # y = 1·x gives its cotangent back unchanged: an identity block, left out
    assert stats.crosses[2] is None
    # 2×2 average pooling: each input pixel gets g/4; unshuffled to 4 channels, M = (¼ ¼ ¼ ¼)ᵀ
    np.testing.assert_allclose(stats.crosses[3], np.full((4, 1), 0.25))
    values = proxy_values(stats)
    # σ = 2 → −0.5, σ = ‖(¼,¼,¼,¼)‖ = ½ → −0.5; the identity block does not count
    assert values["trainability"] == pytest.approx(-0.5, abs=1e-5)


def test_a_block_that_flattens_is_left_out_and_a_linear_head_counts() -> None:
    """Conv features flattened into a Linear head (a common torch model's tail): the Flatten
    block's 4-D → 2-D map has no pixel-unshuffle match and is left out (it used to raise
    IndexError); the Linear block's map y = 3·x has the VJP 3·g."""
    head = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        head.weight.copy_(3.0 * torch.eye(4))
    net = Chain(nn.Conv2d(1, 1, 1, bias=False), nn.Flatten(), head)
    stats = collect_block_stats(net, list(net.blocks), torch.randn(8, 1, 2, 2), init=False)
    assert stats.crosses[1] is None
    # M = Σ_b (3 g_b)ᵀ g_b / B over ±1 cotangents g: its diagonal is 3 · mean(g²) = 3 exactly
    np.testing.assert_allclose(np.diag(stats.crosses[2]), np.full(4, 3.0))
    assert np.isfinite(proxy_values(stats)["trainability"])


def test_cotangents_drawn_in_float_are_the_integer_draw() -> None:
    """The pass draws its ±1 cotangents directly in the feature's dtype; trainability's
    values rest on that being the integer draw cast (the same stream, the same numbers)."""
    for dtype in (torch.float32, torch.float64):
        ints, floats = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
        for shape in [(4, 3, 5, 5), (16, 16, 32, 32), (7, 11)]:
            want = torch.randint(0, 2, shape, generator=ints).to(dtype) * 2 - 1
            got = torch.randint(0, 2, shape, generator=floats, dtype=dtype) * 2 - 1
            assert got.dtype == dtype and torch.equal(got, want)


def test_covariances_match_numpy() -> None:
    torch.manual_seed(0)
    net = Chain(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(4, 5, 1))
    x = torch.randn(6, 3, 5, 5)
    stats = collect_block_stats(net, list(net.blocks), x, seed=0)
    # recompute the features with the weights the pass left, plainly
    with torch.no_grad():
        features = [net.blocks[0](x)]
        features.append(net.blocks[1](features[0]))
        features.append(net.blocks[2](features[1]))
    for got, feature in zip(stats.covariances, features, strict=True):
        rows = feature.permute(0, 2, 3, 1).reshape(-1, feature.shape[1]).double().numpy()
        np.testing.assert_allclose(got, np.cov(rows, rowvar=False, bias=True), atol=1e-10)


def test_macs_and_params_by_hand() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    stats = collect_block_stats(net, [net[0], net[3]], torch.randn(2, 3, 8, 8), trainability=False)
    assert stats.macs == 4 * 8 * 8 * 3 * 9 + 2 * 4
    assert stats.params == 4 * 3 * 9 + 4 * 2 + 2


def test_kaiming_normal_init_statistics() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3)
    bn = nn.BatchNorm2d(4)
    init_kaiming_normal(nn.Sequential(conv, bn))
    assert conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.02)
    assert torch.all(conv.bias == 0) and torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_blocks_must_run() -> None:
    net = nn.Sequential(nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="did not run"):
        collect_block_stats(net, [net[0], nn.Conv2d(1, 1, 1)], torch.randn(2, 1, 4, 4))


def test_nb201_blocks_and_values() -> None:
    from swapprobe.searchspaces import get_space

    space = get_space("nb201")
    conv = "nor_conv_3x3"
    text = f"|{conv}~0|+|{conv}~0|{conv}~1|+|{conv}~0|{conv}~1|{conv}~2|"
    net = space.build_scoring_network(space.parse(text))
    blocks = space.proxy_blocks(net)
    assert len(blocks) == 18  # stem, 15 cells, 2 reduction blocks
    stats = collect_block_stats(net, blocks, gaussian_inputs(4), seed=0)
    assert [c.shape[0] for c in stats.covariances] == [16] * 6 + [32] * 6 + [64] * 6
    assert all(c is not None for c in stats.crosses[1:])  # no identity cell here
    # the reduction block halves H, W: its M is (4·16)×32 after pixel-unshuffle
    assert stats.crosses[6] is not None and stats.crosses[6].shape == (64, 32)
    assert stats.params == space.scoring_param_count(space.parse(text))
    values = proxy_values(stats)
    assert all(np.isfinite(v) for v in values.values())


def test_nb201_zero_cell_ranks_last() -> None:
    from swapprobe.searchspaces import get_space

    space = get_space("nb201")
    text = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    net = space.build_scoring_network(space.parse(text))
    values = proxy_values(collect_block_stats(net, space.proxy_blocks(net), gaussian_inputs(4)))
    assert values["expressivity"] == -np.inf  # constant cell outputs: no eigenvalue spread
    assert values["trainability"] < -1e5  # σ = 0 through an all-zero cell


def test_naslib_pass_on_a_linear_map() -> None:
    from swapprobe.capture.proxy_pass import naslib_pass

    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False))
    x = torch.randn(5, 1, 2, 2)
    labels = torch.tensor([0, 1, 2, 0, 1])
    values = naslib_pass(net, x, num_classes=3, seed=4, labels=labels)
    w = net[1].weight.detach().double().numpy()  # the init the pass drew
    xs = x.reshape(5, 4).double().numpy()
    z = xs @ w.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(3)[labels.numpy()]
    grad = (p - onehot).T @ xs / 5  # ∂ mean CE / ∂W
    assert values["grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert values["snip"] == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)
    # linearised: R = Σ_ij |W_ij| · 1, so ∂R/∂W = 1 and synflow = Σ |W|
    assert values["synflow"] == pytest.approx(np.abs(w).sum(), rel=1e-9)
    # ∂Σ out/∂x = Σ_i W_i for every sample: identical rows, a near-singular correlation
    assert values["jacob_cov"] < -1e4


@pytest.mark.parametrize(
    "kernel, stride, padding, include_pad",
    [
        (3, 1, 1, False),
        (3, 1, 1, True),
        (2, 2, 0, True),
        (3, 2, 1, False),
        ((3, 2), 1, (1, 0), False),
    ],
)
def test_pools_written_as_convolutions_are_the_same_function(
    kernel, stride, padding, include_pad
) -> None:  # type: ignore[no-untyped-def]
    from swapprobe.capture.proxy_pass import _PoolAsConv

    pool = nn.AvgPool2d(kernel, stride, padding, count_include_pad=include_pad)
    x = torch.randn(4, 5, 9, 7, dtype=torch.float64, requires_grad=True)
    fast = _PoolAsConv(pool)
    torch.testing.assert_close(fast(x), pool(x), rtol=0, atol=1e-12)
    g = torch.randn_like(pool(x))
    (expected,) = torch.autograd.grad(pool(x), x, g)
    (got,) = torch.autograd.grad(fast(x), x, g)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    # a corner output of a 3x3 pool without padded counts averages the 4 inputs it covers
    if kernel == 3 and stride == 1 and not include_pad:
        assert fast(x)[0, 0, 0, 0].item() == pytest.approx(x[0, 0, :2, :2].mean().item())


def test_the_pass_restores_the_pools_and_keeps_a_pool_that_is_a_block() -> None:
    inner = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    block_pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), inner)
    net = Chain(nn.Conv2d(3, 3, 1), body, block_pool)
    x = gaussian_inputs(4, (3, 8, 8), seed=0)
    stats = collect_block_stats(net, list(net.blocks), x)
    assert body[2] is inner and net.blocks[2] is block_pool  # restored, and the block untouched
    assert len(stats.covariances) == 3  # the pool block's hook still saw its output
    # the same statistics as with torch's own pooling
    from contextlib import nullcontext
    from unittest import mock

    with mock.patch("swapprobe.capture.proxy_pass._pools_as_convs", lambda *_: nullcontext()):
        plain = collect_block_stats(net, list(net.blocks), x)
    for a, b in zip(stats.covariances, plain.covariances, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)
    assert proxy_values(stats)["trainability"] == pytest.approx(
        proxy_values(plain)["trainability"], rel=1e-5
    )
