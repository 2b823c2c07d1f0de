"""LIBRA's entropies, information gain, size bias and choice, against hand-made tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from swapprobe.errors import SettingsError
from swapprobe.proxies.libra import (
    conditional_entropy,
    entropy,
    information_gain,
    libra_halves,
    libra_score,
    libra_select,
    quantile_bins,
    size_bias,
)
from swapprobe.proxies.selection import split_halves


def test_quantile_bins_by_hand() -> None:
    assert quantile_bins([10, 20, 30, 40], 2).tolist() == [0, 0, 1, 1]
    assert quantile_bins([40, 10, 30, 20], 4).tolist() == [3, 0, 2, 1]
    assert quantile_bins([5.0, float("nan"), 7.0], 3).tolist() == [1, 0, 2]  # NaN lowest
    with pytest.raises(SettingsError):
        quantile_bins([1, 2], 0)


def test_entropies_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    z = np.array([0, 1, 0, 1])
    assert entropy(y) == pytest.approx(1.0)
    assert entropy(y, z) == pytest.approx(2.0)
    assert conditional_entropy(y, z) == pytest.approx(1.0)  # z says nothing about y
    assert conditional_entropy(y, y) == pytest.approx(0.0)
    # y = (0,0,0,1): H = -(3/4 log 3/4 + 1/4 log 1/4)
    assert entropy(np.array([0, 0, 0, 1])) == pytest.approx(
        -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    )


def test_information_gain_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    blind = np.zeros(4, dtype=np.int64)  # z1 tells nothing: H(y | z1) = 1
    assert information_gain(y, blind, y) == pytest.approx(1.0)
    assert information_gain(y, blind, np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    assert information_gain(y, y, np.array([0, 1, 0, 1])) == pytest.approx(0.0)  # nothing left


def test_size_bias_by_hand() -> None:
    assert size_bias([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    # ranks (1,3,2,4) vs (1,2,3,4): covariance 4, variances 5 -> 0.8
    assert size_bias([1, 3, 2, 4], [10, 20, 30, 40]) == pytest.approx(0.8)


def _table() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Eight rows, accuracy 1..8; ρ = 1 − 6 Σd² / 504 for each proxy."""
    acc = np.arange(1.0, 9.0)
    table = {
        # one swap across the halves: ρ 0.976 (the best), codes (0,0,0,1,0,1,1,1)
        "A": np.array([1, 2, 3, 5, 4, 6, 7, 8], dtype=float),
        # swaps inside the halves: ρ 0.952, codes equal y's -> IG = H(y | A) = 0.811
        "B": np.array([2, 1, 3, 4, 5, 6, 8, 7], dtype=float),
        # codes equal A's -> IG 0; ρ 0.952
        "C": np.array([1, 3, 2, 5, 4, 6, 7, 8], dtype=float),
        # codes equal y's -> IG 0.811; ρ 0.952
        "D": np.array([1, 2, 3, 4, 6, 5, 8, 7], dtype=float),
        # reversed: ρ −1, outside the band
        "E": np.arange(8.0, 0.0, -1.0),
    }
    # params (2,1,3,4,5,6,7,8): bias of y 0.976, of B 0.976 (Σd² 2), of D 0.929 (Σd² 6)
    params = np.array([2, 1, 3, 4, 5, 6, 7, 8], dtype=float)
    return table, acc, params


def test_libra_choice_by_hand() -> None:
    table, acc, params = _table()
    choice = libra_select(table, acc, params, bins=2)
    assert choice.rho["A"] == pytest.approx(1 - 12 / 504)
    assert choice.rho["B"] == pytest.approx(1 - 24 / 504)
    assert choice.band[0] == "A" and set(choice.band) == {"A", "B", "C", "D"}
    assert choice.z1 == "A"
    h_y_given_a = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert choice.information_gain["B"] == pytest.approx(h_y_given_a)
    assert choice.information_gain["C"] == pytest.approx(0.0)
    assert choice.information_gain["D"] == pytest.approx(h_y_given_a)
    assert choice.z2 == "C"
    assert choice.accuracy_bias == pytest.approx(1 - 12 / 504)
    assert choice.bias["B"] == pytest.approx(1 - 12 / 504)
    assert choice.bias["D"] == pytest.approx(1 - 36 / 504)
    assert choice.z3 == "B"
    assert choice.proxies == ("A", "C", "B")


def test_a_narrow_band_gives_fewer_proxies() -> None:
    table, acc, params = _table()
    choice = libra_select({"A": table["A"], "E": table["E"]}, acc, params, bins=2)
    assert choice.proxies == ("A",) and choice.z2 is None and choice.z3 is None


def test_libra_score_sums_ranks() -> None:
    table = {"A": np.array([1.0, 2.0, 3.0]), "B": np.array([3.0, 2.0, 1.0]),
             "C": np.array([0.0, 0.0, 5.0])}
    assert libra_score(table, ["A", "B"]).tolist() == [4.0, 4.0, 4.0]
    assert libra_score(table, ["A", "C"]).tolist() == [2.5, 3.5, 6.0]


def test_halves_report_on_the_other_half() -> None:
    rng = np.random.default_rng(0)
    acc = rng.normal(size=60)
    table = {f"p{i}": acc + rng.normal(scale=0.3 + 0.2 * i, size=60) for i in range(5)}
    params = acc + rng.normal(size=60)
    first, second = libra_halves(table, acc, params, seed=4)
    half_a, half_b = split_halves(60, 4)
    for fold, inside, outside in ((first, half_a, half_b), (second, half_b, half_a)):
        chosen = fold.choice.proxies
        assert fold.choice == libra_select(
            {k: v[inside] for k, v in table.items()}, acc[inside], params[inside]
        )
        combined = sum(stats.rankdata(table[name][outside]) for name in chosen)
        expected = stats.spearmanr(combined, acc[outside]).statistic
        assert fold.rho_outside == pytest.approx(expected)
