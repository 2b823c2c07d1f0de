"""ZiCo, L-SWAG's Λ and Ψ, the interval rule, VKDNW and nDCG against hand-computed values.

The two-layer MLP's gradients are written out with numpy (softmax cross-entropy backpropagated
by hand), independently of torch's autograd, and the pass's statistics are held to them.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn as nn

from swapprobe.capture.gradients import fisher_eigenvalues, gradient_pass, gradient_statistics
from swapprobe.errors import SettingsError
from swapprobe.metrics import swap
from swapprobe.patterns import PatternMatrix
from swapprobe.proxies.gradients import (
    interval_swap,
    layer_gradient_stats,
    lswag,
    lswag_lambda,
    zico,
)
from swapprobe.proxies.interval import (
    DepthProfile,
    LayerInterval,
    depth_bin,
    depth_profile,
    plot_depth_profile,
    spike_interval,
)
from swapprobe.proxies.ranking import ndcg
from swapprobe.proxies.vkdnw import fisher_matrix, smoothed_probabilities, vkdnw

# --- per-layer statistics, ZiCo and Λ on hand-made gradients ------------------------------


def test_layer_stats_by_hand() -> None:
    # two batches, three weights: g = (1, -3, 2) and (3, -1, 2)
    # mean|g| = (2, 2, 2); std(g) = (1, 1, 0); |g| = (1,3,2),(3,1,2): std|g| = (1, 1, 0)
    stats = layer_gradient_stats("fc", np.array([[1.0, -3.0, 2.0], [3.0, -1.0, 2.0]]))
    assert stats.weights == 3 and stats.batches == 2
    assert stats.zico_sum == pytest.approx(4.0)  # 2/1 + 2/1, the zero-std weight left out
    assert stats.zico_weights == 2
    assert stats.inv_std_sum == pytest.approx(2.0)  # 1/1 + 1/1
    assert stats.inv_std_weights == 2
    assert stats.std_mean == pytest.approx(2.0 / 3.0)
    assert stats.abs_mean == pytest.approx(2.0)


def test_zico_and_lambda_differ_where_the_sign_flips() -> None:
    # g = (+2, -2) for one weight: std(g) = 2 but |g| is constant, so Λ leaves it out
    flip = layer_gradient_stats("a", np.array([[2.0, 1.0], [-2.0, 3.0]]))
    # weight 0: mean|g| 2, std(g) 2 -> 1; weight 1: mean|g| 2, std(g) 1 -> 2; ZiCo sum 3
    assert flip.zico_sum == pytest.approx(3.0)
    # |g|: weight 0 constant (left out); weight 1 std 1 -> Λ sum 1
    assert flip.inv_std_sum == pytest.approx(1.0) and flip.inv_std_weights == 1
    dead = layer_gradient_stats("b", np.zeros((2, 4)))
    assert dead.zico_sum == 0 and dead.inv_std_sum == 0
    third = layer_gradient_stats("c", np.array([[0.0, 0.5], [0.5, 0.0]]))
    # both weights: mean|g| 0.25, std 0.25 -> ZiCo 2; std|g| 0.25 -> Λ 8
    layers = [flip, dead, third]
    assert zico(layers) == pytest.approx(math.log(3.0) + math.log(2.0))
    assert lswag_lambda(layers) == pytest.approx(math.log(1.0) + math.log(8.0))
    assert lswag_lambda(layers, 2, 3) == pytest.approx(math.log(8.0))
    assert lswag_lambda(layers, 0, 1) == pytest.approx(0.0)


def test_one_batch_is_refused() -> None:
    with pytest.raises(SettingsError, match="at least 2"):
        layer_gradient_stats("fc", np.ones((1, 3)))


# --- Ψ over an interval ---------------------------------------------------------------


def _patterns() -> PatternMatrix:
    # S = 4 samples; rows are samples, columns units
    a = np.array([[1, 1], [0, 1], [1, 0], [0, 0]], dtype=bool)  # units (1010), (1100)
    b = np.array([[1, 0], [0, 0], [1, 0], [0, 1]], dtype=bool)  # units (1010), (0001)
    c = np.array([[1], [1], [0], [0]], dtype=bool)  # unit (1100)
    return PatternMatrix.from_layers([("a", "Relu", a), ("b", "Relu", b), ("c", "Relu", c)])


def test_interval_swap_by_hand() -> None:
    pm = _patterns()
    assert interval_swap(pm, 0, 1) == 2
    assert interval_swap(pm, 0, 2) == 3  # b's first unit repeats a's first
    assert interval_swap(pm, 0, 3) == 3  # c repeats a's second
    assert interval_swap(pm, 1, 3) == 3  # 1010, 0001, 1100
    assert interval_swap(pm, 2, 3) == 1
    assert interval_swap(pm, 3, 3) == 0
    assert interval_swap(pm) == swap(pm)


def test_lswag_is_the_product() -> None:
    assert lswag(2.5, 4) == 10.0
    assert lswag(-1.0, 3) == -3.0  # not clipped


# --- the interval rule -------------------------------------------------------------------


def test_depth_bins_by_hand() -> None:
    assert [depth_bin(layer, 10) for layer in range(10)] == list(range(10))
    # L = 4: 0 %, 25 %, 50 %, 75 %
    assert [depth_bin(layer, 4) for layer in range(4)] == [0, 2, 5, 7]
    with pytest.raises(SettingsError):
        depth_bin(4, 4)


def test_profile_normalises_each_network() -> None:
    # two networks of 2 layers (bins 0 and 5): profiles (1, 3) and (100, 100)
    profile = depth_profile([[1.0, 3.0], [100.0, 100.0]])
    # normalised: (0.5, 1.5) and (1, 1) -> bin 0: 0.75, bin 5: 1.25
    assert profile.means[0] == pytest.approx(0.75)
    assert profile.means[5] == pytest.approx(1.25)
    assert np.isnan(profile.means[1]) and profile.counts[0] == 2 and profile.networks == 2


def test_spike_interval_by_hand() -> None:
    means = np.array([1.0, 1.1, 0.9, 1.0, 5.0, 6.0, 1.0, 1.05, 0.95, 1.0])
    # median 1.0, |dev| median 0.05 -> MAD 0.07413, cut 1.14826: bins 4 and 5
    interval = spike_interval(DepthProfile(means, np.ones(10, np.int64), 1))
    assert (interval.first_bin, interval.last_bin) == (4, 5)
    assert interval.threshold == pytest.approx(1.0 + 2 * 1.4826 * 0.05)
    # a 20-layer network: layers 8, 9 (40 %, 45 %) and 10, 11 (50 %, 55 %)
    assert interval.layer_slice(20) == (8, 12)
    assert interval.psi_stop(20) == 12


def test_flat_baseline_and_flat_profile() -> None:
    spike = np.ones(10)
    spike[7] = 2.0  # MAD 0: the cut is the median, bin 7 alone is above it
    got = spike_interval(DepthProfile(spike, np.ones(10, np.int64), 1))
    assert (got.first_bin, got.last_bin) == (7, 7)
    flat = spike_interval(DepthProfile(np.ones(10), np.ones(10, np.int64), 1))
    assert (flat.first_bin, flat.last_bin) == (0, 9)


def test_interval_on_a_shallow_network() -> None:
    interval = LayerInterval(1, 1)  # bin 1: no layer of a 4-layer network falls in it
    assert interval.layer_slice(4) == (0, 0)
    assert interval.psi_stop(4) == 1  # layer 0 (bin 0) only


def test_plot_writes_a_png(tmp_path) -> None:
    profile = depth_profile([[1.0, 2.0, 5.0, 1.0, 1.0]] * 3)
    out = plot_depth_profile(profile, spike_interval(profile), tmp_path / "fig.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the gradient pass on a two-layer MLP, against hand-written backpropagation -----------


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _hand_gradients(
    w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """∂(mean cross-entropy)/∂W1 and ∂/∂W2, backpropagated by hand."""
    h = x @ w1.T + b1
    a = np.maximum(h, 0.0)
    z = a @ w2.T + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(z.shape[1])[y]
    dz = (p - onehot) / len(x)
    dw2 = dz.T @ a
    dh = (dz @ w2) * (h > 0)
    dw1 = dh.T @ x
    return dw1, dw2


def _mlp_and_batches() -> tuple[_Mlp, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(3)
    net = _Mlp().double()
    rng = np.random.default_rng(5)
    batches = [
        (torch.from_numpy(rng.normal(size=(6, 4))), torch.from_numpy(rng.integers(0, 3, 6)))
        for _ in range(3)
    ]
    return net, batches


def test_pass_matches_hand_backpropagation() -> None:
    net, batches = _mlp_and_batches()
    params = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    hand1, hand2 = [], []
    for x, y in batches:
        g1, g2 = _hand_gradients(
            params["fc1.weight"], params["fc1.bias"], params["fc2.weight"], params["fc2.bias"],
            x.numpy(), y.numpy(),
        )
        hand1.append(g1.ravel())
        hand2.append(g2.ravel())
    got = gradient_statistics(net, batches)
    assert [s.name for s in got] == ["fc1", "fc2"]
    for stats, hand in zip(got, (np.array(hand1), np.array(hand2)), strict=True):
        expected_zico = np.sum(np.abs(hand).mean(0)[hand.std(0) > 0] / hand.std(0)[hand.std(0) > 0])
        sd = np.abs(hand).std(0)
        expected_inv = np.sum(1.0 / sd[sd > 0])
        assert stats.zico_sum == pytest.approx(expected_zico, rel=1e-9)
        assert stats.inv_std_sum == pytest.approx(expected_inv, rel=1e-9)
        assert stats.std_mean == pytest.approx(sd.mean(), rel=1e-9)
    hand_zico = sum(
        math.log(np.sum(np.abs(h).mean(0)[h.std(0) > 0] / h.std(0)[h.std(0) > 0]))
        for h in (np.array(hand1), np.array(hand2))
    )
    assert zico(got) == pytest.approx(hand_zico, rel=1e-9)


def test_pass_leaves_the_module_as_it_was() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 5))
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 3, 8, 8, generator=gen), torch.tensor([0, 1, 2, 3]))
               for _ in range(2)]
    first = gradient_pass(net, batches)
    second = gradient_pass(net, batches)
    assert not net.training
    assert all(p.grad is None for p in net.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # BN running statistics too
    assert first.layers == second.layers  # deterministic
    assert np.array_equal(first.fisher_eigenvalues, second.fisher_eigenvalues)
    assert [s.name for s in first.layers] == ["0", "4"]


def test_pass_needs_two_batches() -> None:
    net, batches = _mlp_and_batches()
    with pytest.raises(SettingsError, match="at least 2"):
        gradient_statistics(net, batches[:1])


# --- VKDNW ------------------------------------------------------------------------------


def test_vkdnw_of_a_flat_spectrum_is_log_nine() -> None:
    assert vkdnw(np.full(50, 3.0)) == pytest.approx(math.log(9.0))


def test_vkdnw_deciles_by_hand() -> None:
    # eigenvalues 1..11: the k-th decile sits at position k (linear), value k + 1
    q = np.arange(2.0, 11.0)
    t = q / q.sum()
    assert vkdnw(np.arange(1.0, 12.0)) == pytest.approx(float(-np.sum(t * np.log(t))))
    assert vkdnw(np.zeros(5)) == 0.0


def test_fisher_matrix_against_the_explicit_sum() -> None:
    rng = np.random.default_rng(1)
    jac = rng.normal(size=(5, 3, 4))
    logits = rng.normal(size=(5, 3))
    expected = np.zeros((4, 4))
    for n in range(5):
        z = np.exp(logits[n] - logits[n].max())
        p = 0.95 * z / z.sum() + 0.05 / 3
        sigma = np.diag(p) - np.outer(p, p)
        expected += jac[n].T @ sigma @ jac[n]
    assert np.allclose(fisher_matrix(jac, logits), expected / 5)
    assert np.allclose(smoothed_probabilities(logits).sum(axis=1), 1.0)


def test_fisher_eigenvalues_of_a_linear_model_by_hand() -> None:
    # logits = W x + b. The sampled entries are W[0, 0] and b[0]: ∂z_c/∂W00 = δ_c0 x_0 and
    # ∂z_c/∂b_0 = δ_c0, so F = mean_n s_n [[x0², x0], [x0, 1]], s_n = p̃_0 (1 − p̃_0).
    torch.manual_seed(0)
    net = nn.Linear(2, 3).double()
    x = torch.randn(7, 2, dtype=torch.float64)
    with torch.no_grad():
        z = net(x).numpy()
    p = smoothed_probabilities(z)[:, 0]
    s = p * (1 - p)
    x0 = x[:, 0].numpy()
    f = np.array([[np.mean(s * x0**2), np.mean(s * x0)], [np.mean(s * x0), np.mean(s)]])
    got = fisher_eigenvalues(net, x)
    assert np.allclose(got, np.linalg.eigvalsh(f))


# --- nDCG -------------------------------------------------------------------------------


def test_ndcg_by_hand() -> None:
    acc = [1.0, 3.0, 2.0]
    score = [3.0, 1.0, 2.0]  # ranks rows 0, 2, 1: gains 1, 3, 7
    dcg = 1 + 3 / math.log2(3) + 7 / 2
    ideal = 7 + 3 / math.log2(3) + 1 / 2
    assert ndcg(score, acc, 3) == pytest.approx(dcg / ideal)
    assert ndcg(score, acc, 1) == pytest.approx(1 / 7)
    assert ndcg(acc, acc, 3) == pytest.approx(1.0)


def test_ndcg_with_percent_accuracies() -> None:
    acc = [91.0, 93.0, 92.0]
    score = [0.1, 0.2, 0.3]  # rows 2, 1, 0
    gain = {a: Fraction(2**int(a) - 1) for a in acc}
    dcg = float(gain[92.0]) + float(gain[93.0]) / math.log2(3) + float(gain[91.0]) / 2
    ideal = float(gain[93.0]) + float(gain[92.0]) / math.log2(3) + float(gain[91.0]) / 2
    assert ndcg(score, acc, 3) == pytest.approx(dcg / ideal, rel=1e-12)
    with pytest.raises(SettingsError):
        ndcg(score, acc, 4)
