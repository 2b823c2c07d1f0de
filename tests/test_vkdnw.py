"""VKDNW's zeros against hand-computed values: which zero eigenvalues belong to the network
(a weight that cannot move the logits) and which only to a small batch (refused), and that a
run's Fisher matrix is the mean over all of its S images, not over one mini-batch of the
gradient pass (which capped the rank at 8·(C − 1) and put structural zeros into every
full-size network's lower deciles: issue 25's VKDNW at ρ 0.42)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import swapprobe
from swapprobe.capture import proxy_pass
from swapprobe.capture.gradients import fisher_eigenvalues
from swapprobe.data import Batch
from swapprobe.errors import SettingsError
from swapprobe.evaluate import torch_seed
from swapprobe.proxies.vkdnw import vkdnw


class _DeadBranch(nn.Module):
    """logits = fc(x) + 0 · dead(x): ``dead``'s weights cannot move the logits, as an NB201
    op whose output reaches no later node, or a conv behind ReLU(0) on an all-zero node."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.dead = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + self.dead(x) * 0.0


def _softmax_smoothed(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return 0.95 * e / e.sum(axis=1, keepdims=True) + 0.05 / z.shape[1]


def _decile(sorted_values: list[float], k: int) -> float:
    """The k-th decile by linear interpolation between order statistics, written out."""
    pos = k / 10 * (len(sorted_values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (pos - low) * (sorted_values[high] - sorted_values[low])


def test_a_weight_that_cannot_move_the_logits_is_a_zero_eigenvalue_by_hand() -> None:
    # Sampled entries, in registration order: fc.weight[0, 0], fc.bias[0], dead.weight[0, 0],
    # dead.bias[0]. ∂z_c/∂W00 = δ_c0 x_0 and ∂z_c/∂b_0 = δ_c0, so with s_n = p̃_0 (1 − p̃_0)
    # F = [[A, 0], [0, 0]], A = mean_n s_n [[x0², x0], [x0, 1]]: two zero eigenvalues.
    torch.manual_seed(2)
    net = _DeadBranch().double()
    x = torch.randn(7, 2, dtype=torch.float64)
    with torch.no_grad():
        z = net(x).numpy()
    p0 = _softmax_smoothed(z)[:, 0]
    s = p0 * (1 - p0)
    x0 = x[:, 0].numpy()
    a = np.array([[np.mean(s * x0**2), np.mean(s * x0)], [np.mean(s * x0), np.mean(s)]])
    # the 2×2 eigenvalues in closed form
    tr, det = a[0, 0] + a[1, 1], a[0, 0] * a[1, 1] - a[0, 1] ** 2
    root = math.sqrt(tr * tr / 4 - det)
    lam = [0.0, 0.0, tr / 2 - root, tr / 2 + root]

    got = fisher_eigenvalues(net, x)
    assert np.allclose(got, lam, atol=1e-14)
    assert np.abs(got[:2]).max() <= 1e-15 * got[-1]  # the dead rows are exactly zero

    q = [_decile(lam, k) for k in range(1, 10)]  # positions 0.3, 0.6, …, 2.7
    t = [v / sum(q) for v in q if v > 0]  # the three deciles at 0.3-0.9 are 0: 0 log 0 = 0
    assert len(t) == 6
    assert vkdnw(got) == pytest.approx(-sum(v * math.log(v) for v in t), rel=1e-9)


def test_a_spectrum_with_every_decile_zero_scores_zero() -> None:
    # ≥ 90 % of the sampled weights dead: deciles all 0, λ̃ = 0/0; the authors' code gives 0
    # (its + 1e-10), the lowest score, which a network whose logits ignore its input should get
    spectrum = np.r_[np.zeros(19), [5.0]]
    assert vkdnw(spectrum) == 0.0
    # one more live eigenvalue puts the 90 % decile above 0 (position 17.1 of 0..19)
    assert vkdnw(np.r_[np.zeros(18), [4.0, 5.0]]) == pytest.approx(0.0)  # only q9 > 0: −1 log 1
    # five live of twenty: the 80 % and 90 % deciles (positions 15.2, 17.1) are 1.2 and 3.1
    t = np.array([1.2, 3.1]) / 4.3
    expected = float(-np.sum(t * np.log(t)))
    assert vkdnw(np.r_[np.zeros(15), [1.0, 2.0, 3.0, 4.0, 5.0]]) == pytest.approx(expected)


def _mlp(classes: int, hidden: int = 6) -> nn.Module:
    torch.manual_seed(5)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(4, 8), nn.ReLU()]
    for _ in range(hidden - 2):
        layers += [nn.Linear(8, 8), nn.ReLU()]
    layers.append(nn.Linear(8, classes))
    return nn.Sequential(*layers)


def test_too_few_images_for_the_fisher_matrix_are_refused() -> None:
    # 6 linear layers: 12 sampled tensors; 2 classes add at most 1 each to the rank: 11 images
    # could only give 11 non-zero eigenvalues of 12, a zero that is the batch's, not the net's
    net = _mlp(classes=2)
    with pytest.raises(SettingsError, match="at least 12 images"):
        fisher_eigenvalues(net, torch.randn(11, 4))
    assert len(fisher_eigenvalues(net, torch.randn(12, 4))) == 12


def test_a_run_takes_the_fisher_matrix_over_all_its_images() -> None:
    # S = 16 images of 2 classes, 12 sampled tensors. The gradient pass's mini-batches are 8
    # images each: one alone would be refused (8 < 12); all 16 give a full-rank matrix.
    rng = np.random.default_rng(4)
    inputs = rng.standard_normal((16, 4)).astype(np.float32)
    batch = Batch(inputs, "test array", "1" * 16, labels=rng.integers(0, 2, 16))
    module = _mlp(classes=2)
    result = swapprobe.score(
        module, batch, proxies=("vkdnw",), backend="torch", repeats=1, init="kaiming"
    )
    copy = _mlp(classes=2)
    copy.load_state_dict(module.state_dict())
    torch.manual_seed(torch_seed(0, result.key) % 2**31)
    proxy_pass.init_kaiming_normal(copy)
    expected = fisher_eigenvalues(copy, torch.from_numpy(inputs))
    assert np.allclose(result.fisher_eigenvalues, expected, rtol=1e-10, atol=0)
    assert result.fisher_eigenvalues.min() > 1e-12 * result.fisher_eigenvalues.max()
    assert result.proxies["vkdnw"] == pytest.approx(vkdnw(expected), rel=1e-12)
    with pytest.raises(SettingsError, match="raise the batch size"):
        fisher_eigenvalues(copy, torch.from_numpy(inputs[:8]))


def test_the_fisher_pass_normalises_with_the_batch_statistics_by_hand() -> None:
    # logits z = γ ⊙ (h − m) / sqrt(v + eps) + β, h = W x + b, with m and v the batch's mean
    # and unbiased variance (BN's running statistics estimated from the batch), not BN's
    # initial 0 and 1. Sampled: W00, b0, γ0, β0; each moves logit 0 only, with gradient
    # g_n = (k x_n0, k, u_n, 1), k = γ0 / sqrt(v0 + eps), u_n = (h_n0 − m0) / sqrt(v0 + eps),
    # so F = mean_n s_n g_n g_nᵀ, s_n = p̃_n0 (1 − p̃_n0).
    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).double()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([1.7, 0.6, 1.1]))
        net[1].bias.copy_(torch.tensor([0.3, -0.2, 0.5]))
    net.eval()
    momentum = net[1].momentum
    x = torch.randn(9, 2, dtype=torch.float64) * 3.0 + 1.0
    w, b = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    gamma, beta = net[1].weight.detach().numpy(), net[1].bias.detach().numpy()
    xn = x.numpy()
    h = xn @ w.T + b
    m, v = h.mean(axis=0), h.var(axis=0, ddof=1)
    root = np.sqrt(v + net[1].eps)
    z = gamma * (h - m) / root + beta
    p0 = _softmax_smoothed(z)[:, 0]
    s = p0 * (1 - p0)
    k = gamma[0] / root[0]
    u = (h[:, 0] - m[0]) / root[0]
    g = np.stack([k * xn[:, 0], np.full(9, k), u, np.ones(9)], axis=1)
    f = np.einsum("n,np,nq->pq", s, g, g) / 9

    got = fisher_eigenvalues(net, x)
    assert np.allclose(got, np.linalg.eigvalsh(f), rtol=1e-10, atol=1e-14)
    # the module is left as found: initial running statistics, momentum, eval mode
    assert torch.equal(net[1].running_mean, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(net[1].running_var, torch.ones(3, dtype=torch.float64))
    assert net[1].momentum == momentum and not net.training
