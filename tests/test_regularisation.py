"""``--reg auto``: the calibration rule on made-up scores with a known size relation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from swapprobe.errors import SettingsError
from swapprobe.regularisation import TARGET_SIZE_RHO, auto_regularisation, calibrate


def _scores(size_weight: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = rng.gamma(2.0, 0.3, 300)
    swap = np.exp(size_weight * np.log(theta) + rng.normal(0, 0.5, 300)) * 1000
    return swap, theta


def test_weakly_size_following_swap_is_pushed_to_the_target() -> None:
    swap, theta = _scores(0.4)
    plain = stats.spearmanr(swap, theta).statistic
    mu, sigma, reported = calibrate(swap, theta)
    assert reported == pytest.approx(plain)
    assert plain < TARGET_SIZE_RHO
    assert mu == pytest.approx(np.quantile(theta, 0.99))
    regularised = swap * np.exp(-((theta - mu) ** 2) / sigma)
    assert stats.spearmanr(regularised, theta).statistic == pytest.approx(TARGET_SIZE_RHO, abs=0.01)


def test_swap_that_already_follows_size_is_left_alone() -> None:
    swap, theta = _scores(3.0)
    assert stats.spearmanr(swap, theta).statistic >= TARGET_SIZE_RHO
    mu, sigma, _ = calibrate(swap, theta)
    factor = np.exp(-((theta - mu) ** 2) / sigma)
    assert factor.min() > 0.999  # f ≈ 1: the ranking is plain SWAP's
    assert stats.spearmanr(swap * factor, swap).statistic == pytest.approx(1.0)


def test_calibration_is_unit_free() -> None:
    """Counting Θ in thousands instead of millions scales μ and √σ alike, not the ranking."""
    swap, theta = _scores(0.4)
    mu_m, sigma_m, _ = calibrate(swap, theta)
    mu_k, sigma_k, _ = calibrate(swap, theta * 1000)
    assert mu_k == pytest.approx(mu_m * 1000)
    assert sigma_k == pytest.approx(sigma_m * 1e6, rel=1e-3)


def test_too_few_or_equal_sizes_are_refused() -> None:
    with pytest.raises(SettingsError):
        calibrate([1.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(SettingsError):
        calibrate(list(range(20)), [1.0] * 20)


def test_auto_regularisation_scores_seeded_random_architectures() -> None:
    class Space:
        size_unit = "K"

        def sample(self, rng: np.random.Generator) -> int:
            return int(rng.integers(100, 3000))

    class Scored:
        def __init__(self, arch: int) -> None:
            self.param_count = arch
            self.swap = float(arch) ** 0.3 * (1 + (arch * 7919 % 13) / 10)

    seen: list[list[int]] = []

    def score(archs: list[int]) -> list[Scored]:
        seen.append(archs)
        return [Scored(a) for a in archs]

    first = auto_regularisation(Space(), score, samples=50, seed=3)
    second = auto_regularisation(Space(), score, samples=50, seed=3)
    assert seen[0] == seen[1] and len(seen[0]) == 50
    assert (first.mu, first.sigma) == (second.mu, second.sigma)
    assert first.unit == "K" and "μ=" in first.describe()
