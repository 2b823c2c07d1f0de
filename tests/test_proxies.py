"""AZ-NAS proxies and the rank aggregate against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from swapprobe.proxies import (
    aggregate,
    ascending_ranks,
    block_entropies,
    conv_macs,
    covariance_entropy,
    expressivity,
    largest_singular_value,
    progressivity,
    trainability,
    trainability_term,
)


def _rotation(n: int, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q


def test_entropy_of_known_spectrum() -> None:
    # eigenvalues 1, 1, 2 → p = 1/4, 1/4, 1/2 → H = 1.5 ln 2, in any basis
    q = _rotation(3)
    cov = q @ np.diag([1.0, 1.0, 2.0]) @ q.T
    assert covariance_entropy(cov) == pytest.approx(1.5 * math.log(2), abs=1e-12)


def test_entropy_of_isotropic_and_rank_one() -> None:
    assert covariance_entropy(np.eye(5) * 3.0) == pytest.approx(math.log(5))
    v = np.array([[1.0], [2.0], [2.0]])
    assert covariance_entropy(v @ v.T) == pytest.approx(0.0, abs=1e-12)


def test_entropy_of_zero_covariance_is_nan() -> None:
    assert math.isnan(covariance_entropy(np.zeros((4, 4))))


def test_entropy_rejects_non_square() -> None:
    with pytest.raises(ValueError, match="square"):
        covariance_entropy(np.zeros((2, 3)))


def test_expressivity_and_progressivity_by_hand() -> None:
    h = [1.0, 3.0, 2.5]
    assert expressivity(h) == pytest.approx(6.5)
    assert progressivity(h) == pytest.approx(-0.5)  # min(3 − 1, 2.5 − 3)


def test_degenerate_block_sinks_e_and_p() -> None:
    h = block_entropies([np.eye(2), np.zeros((2, 2))])
    assert math.isnan(h[1])
    assert expressivity(h) == -math.inf
    assert progressivity(h) == -math.inf


def test_singular_value_by_hand() -> None:
    assert largest_singular_value(np.diag([3.0, -4.0])) == pytest.approx(4.0)
    u, v = np.array([[1.0], [2.0], [2.0]]), np.array([[3.0, 4.0]])
    assert largest_singular_value(u @ v) == pytest.approx(3.0 * 5.0)  # |u|·|v|


def test_trainability_terms() -> None:
    assert trainability_term(1.0) == pytest.approx(0.0, abs=1e-5)  # an isometry is ideal
    assert trainability_term(2.0) == pytest.approx(-0.5, abs=1e-5)  # −2 − 1/2 + 2
    assert trainability_term(0.5) == pytest.approx(-0.5, abs=1e-5)  # symmetric in σ ↔ 1/σ
    # None blocks are left out: mean of 0 and −0.5
    assert trainability([1.0, None, 2.0]) == pytest.approx(-0.25, abs=1e-5)
    assert trainability([None, None]) == -math.inf
    assert trainability([0.0]) < -1e5  # a block passing no gradient


def test_conv_macs_by_hand() -> None:
    assert conv_macs(32, 8, 8, 16, (3, 3)) == 32 * 64 * 16 * 9
    assert conv_macs(16, 4, 4, 16, (3, 3), groups=16) == 16 * 16 * 9  # depthwise
    assert conv_macs(10, 1, 1, 64, (1, 1)) == 640  # a linear layer
    with pytest.raises(ValueError, match="divisible"):
        conv_macs(4, 1, 1, 6, (1, 1), groups=4)


def test_ranks_ascending_with_ties_and_nan() -> None:
    np.testing.assert_allclose(ascending_ranks([5.0, 1.0, 5.0, 3.0]), [3.5, 1.0, 3.5, 2.0])
    np.testing.assert_allclose(ascending_ranks([np.nan, 0.0, -np.inf]), [1.5, 3.0, 1.5])


def test_aggregate_by_hand() -> None:
    got = aggregate({"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0]})
    third, two_thirds = math.log(1 / 3), math.log(2 / 3)
    np.testing.assert_allclose(got, [third, 2 * two_thirds, third])


def test_aggregate_prefers_balanced_candidates() -> None:
    # AZ-NAS's point: ranks (2, 2) beat (1, 3) under Σ log(rank/N), though the rank sums tie
    got = aggregate({"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0]})
    assert got[1] > got[0]


def test_aggregate_rejects_ragged() -> None:
    with pytest.raises(ValueError, match="same length"):
        aggregate({"a": [1.0, 2.0], "b": [1.0]})


def test_naslib_proxies_by_hand() -> None:
    from swapprobe.proxies import naslib

    w = [np.array([[1.0, -2.0]]), np.array([3.0])]
    g = [np.array([[0.5, 0.5]]), np.array([-1.0])]
    assert naslib.grad_norm(g) == pytest.approx(math.sqrt(0.5) + 1.0)
    assert naslib.snip(w, g) == pytest.approx(0.5 + 1.0 + 3.0)
    assert naslib.synflow(w, g) == pytest.approx(0.5 - 1.0 - 3.0)


def test_jacob_cov_uncorrelated_and_identical() -> None:
    from swapprobe.proxies import naslib

    # orthogonal zero-mean rows: correlation I, λ = 1 → −B (log(1 + k) + 1/(1 + k))
    rows = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]])
    k = naslib.JACOB_K
    assert naslib.jacob_cov(rows) == pytest.approx(-3 * (math.log(1 + k) + 1 / (1 + k)))
    # identical rows: λ = (3, 0, 0) — the near-zero eigenvalues cost ≈ 1/k each
    same = np.tile(rows[:1], (3, 1))
    assert naslib.jacob_cov(same) < -1e5


def test_jacob_cov_of_constant_jacobian_is_neg_inf() -> None:
    from swapprobe.proxies import naslib

    assert naslib.jacob_cov(np.zeros((3, 4))) == -math.inf
