"""Scores from hand-made pattern matrices whose values are counted by hand.

Notation as in SPEC.md: B is the S×V binary matrix (rows = samples, columns = units).
SWAP = distinct columns of B, standard AP = distinct rows, NWOT = log|det K| with
K = B·Bᵀ + (1−B)·(1−B)ᵀ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from swapprobe import metrics
from swapprobe.errors import SettingsError
from swapprobe.patterns import (
    LayerInfo,
    PatternMatrix,
    count_distinct_rows,
    pack_sample_bits,
    transpose_bits,
    unique_rows,
    unpack_rows,
    words_for,
)


def matrix(b: np.ndarray | list[list[int]]) -> PatternMatrix:
    """A PatternMatrix from the paper's S×V matrix B (one layer)."""
    b = np.asarray(b, dtype=bool)
    return PatternMatrix.from_layers([("layer", "Relu", b)])


def histogram(columns: np.ndarray, counts: np.ndarray) -> dict[tuple[bool, ...], int]:
    """{pattern as a tuple of S bools: multiplicity}, independent of the order of patterns."""
    return {tuple(bool(v) for v in col): int(c) for col, c in zip(columns, counts, strict=True)}


# S = 4 samples × V = 6 units. Samples 0 and 2 are identical.
#               u0 u1 u2 u3 u4 u5
B_4x6 = [
    [1, 0, 1, 1, 0, 1],  # sample 0
    [0, 1, 0, 0, 1, 1],  # sample 1
    [1, 0, 1, 1, 0, 1],  # sample 2 (= sample 0)
    [1, 1, 0, 1, 1, 0],  # sample 3
]
# Columns (sample-wise patterns): u0 = 1011, u1 = 0101, u2 = 1010, u3 = 1011 (= u0),
# u4 = 0101 (= u1), u5 = 1110  ->  4 distinct: {1011, 0101, 1010, 1110}.
SWAP_4x6 = 4
# Rows: 101101, 010011, 101101 (= row 0), 110110  ->  3 distinct.
STANDARD_AP_4x6 = 3

# S = 3 × V = 4 with all samples distinct.
B_3x4 = [
    [1, 1, 0, 0],
    [1, 0, 1, 0],
    [0, 0, 0, 1],
]
# K[i, j] = number of units on which samples i and j agree:
#   (0, 1): u0 (1,1) and u3 (0,0) -> 2;  (0, 2): u2 (0,0) -> 1;  (1, 2): u1 (0,0) -> 1.
K_3x4 = [
    [4, 2, 1],
    [2, 4, 1],
    [1, 1, 4],
]
# det = 4·(16 − 1) − 2·(8 − 1) + 1·(2 − 4) = 60 − 14 − 2 = 44
DET_3x4 = 44.0


# --- hand-counted values ------------------------------------------------------------
def test_swap_counts_distinct_columns_by_hand() -> None:
    assert metrics.swap(matrix(B_4x6)) == SWAP_4x6


def test_standard_ap_counts_distinct_rows_by_hand() -> None:
    assert metrics.standard_activation_patterns(matrix(B_4x6)) == STANDARD_AP_4x6


def test_duplicate_samples_make_nwot_minus_infinity() -> None:
    # Samples 0 and 2 are equal, so rows 0 and 2 of K are equal and det K = 0.
    patterns = matrix(B_4x6)
    assert metrics.nwot(patterns) == float("-inf")
    assert metrics.scores(patterns).nwot == float("-inf")


def test_nwot_kernel_and_logdet_by_hand() -> None:
    patterns = matrix(B_3x4)
    np.testing.assert_array_equal(metrics.nwot_kernel(patterns), np.array(K_3x4, float))
    assert metrics.nwot(patterns) == pytest.approx(math.log(DET_3x4), rel=1e-12)
    # The same matrix: SWAP = 4 distinct columns (110, 100, 010, 001), all rows distinct.
    assert metrics.swap(patterns) == 4
    assert metrics.standard_activation_patterns(patterns) == 3


def test_nwot_kernel_equals_its_definition_on_random_patterns() -> None:
    rng = np.random.default_rng(1)
    for samples, units in ((5, 40), (16, 300), (70, 129)):
        b = rng.random((samples, units)) < 0.4
        b[:, units // 2 :] = b[:, : units - units // 2]  # duplicated units: counts matter
        f = b.astype(np.float64)
        expected = f @ f.T + (1 - f) @ (1 - f).T
        np.testing.assert_array_equal(metrics.nwot_kernel(matrix(b)), expected)
        sign, logdet = np.linalg.slogdet(expected)
        assert sign > 0
        assert metrics.nwot(matrix(b)) == pytest.approx(logdet, rel=1e-9)


def test_scores_agrees_with_the_single_metrics() -> None:
    rng = np.random.default_rng(2)
    for samples, units in ((4, 6), (16, 500), (65, 80)):
        b = rng.random((samples, units)) < 0.5
        b[1] = b[0]  # one duplicate sample
        patterns = matrix(b)
        found = metrics.scores(patterns)
        assert found.swap == metrics.swap(patterns) == np.unique(b.T, axis=0).shape[0]
        assert (
            found.standard_ap
            == metrics.standard_activation_patterns(patterns)
            == np.unique(b, axis=0).shape[0]
        )
        assert found.nwot == metrics.nwot(patterns) == float("-inf")
    bare = metrics.scores(matrix(B_4x6), baselines=False)
    assert (bare.swap, bare.standard_ap, bare.nwot) == (SWAP_4x6, None, None)
    full = metrics.scores(matrix(B_4x6))
    assert (full.swap, full.standard_ap) == (SWAP_4x6, STANDARD_AP_4x6)


def test_all_equal_and_all_distinct_extremes() -> None:
    # Every unit on for every sample: one pattern, one sample class.
    ones = np.ones((8, 50), bool)
    assert metrics.swap(matrix(ones)) == 1
    assert metrics.standard_activation_patterns(matrix(ones)) == 1
    # All 2^3 = 8 patterns of S = 3 samples over V = 8 units: SWAP reaches its bound.
    every = np.array([[(u >> s) & 1 for u in range(8)] for s in range(3)], bool)
    assert metrics.swap(matrix(every)) == 8
    assert metrics.saturation(8, 8, 3) == 1.0


# --- bounds ---------------------------------------------------------------------------
@pytest.mark.parametrize(("samples", "units"), [(2, 30), (3, 5), (4, 100), (8, 10), (20, 64)])
def test_bounds(samples: int, units: int) -> None:
    rng = np.random.default_rng(samples * 1000 + units)
    for density in (0.1, 0.5, 0.9):
        patterns = matrix(rng.random((samples, units)) < density)
        assert 1 <= metrics.swap(patterns) <= min(units, 2**samples)
        assert 1 <= metrics.standard_activation_patterns(patterns) <= samples


# --- packing --------------------------------------------------------------------------
@pytest.mark.parametrize("samples", [2, 16, 63, 64, 65, 100, 256])
def test_packing_and_counting_against_numpy_unique(samples: int) -> None:
    rng = np.random.default_rng(samples)
    units = 700
    pool = rng.random((samples, 90)) < 0.5  # 90 candidate patterns, each unit takes one
    b = pool[:, rng.integers(0, 90, units)]
    b[:, :5] = False  # an all-off pattern and ...
    b[:, 5:8] = True  # ... an all-on one
    b[samples // 2] = b[0]  # a duplicate sample
    patterns = matrix(b)

    # Bit layout: sample s is bit s % 64 of word s // 64 (little-endian per unit).
    assert patterns.words.shape == (units, words_for(samples)) == (units, -(-samples // 64))
    for unit in (0, 6, 9, units - 1):
        value = sum(1 << s for s in range(samples) if b[s, unit])
        words = [int(w) for w in patterns.words[unit]]
        assert sum(w << (64 * i) for i, w in enumerate(words)) == value
    np.testing.assert_array_equal(patterns.to_bool(), b)

    assert metrics.swap(patterns) == np.unique(b.T, axis=0).shape[0]
    assert metrics.standard_activation_patterns(patterns) == np.unique(b, axis=0).shape[0]

    distinct, counts = unique_rows(patterns.words)
    assert counts.sum() == units
    assert len(distinct) == len(counts) == np.unique(b.T, axis=0).shape[0]
    want_cols, want_counts = np.unique(b.T, axis=0, return_counts=True)
    assert histogram(unpack_rows(distinct, samples).T, counts) == histogram(want_cols, want_counts)


def test_counting_fast_path_for_many_units_and_few_samples() -> None:
    # V > 4096 and S ≤ 22 takes the bincount path; it must count exactly like the sort.
    rng = np.random.default_rng(7)
    samples, units = 16, 6000
    b = rng.random((samples, units)) < 0.15
    patterns = matrix(b)
    want_cols, want_counts = np.unique(b.T, axis=0, return_counts=True)
    assert count_distinct_rows(patterns.words) == len(want_cols)
    distinct, counts = unique_rows(patterns.words)
    assert counts.sum() == units
    assert histogram(unpack_rows(distinct, samples).T, counts) == histogram(want_cols, want_counts)
    # 1-D input: distinct values.
    assert count_distinct_rows(np.array([3, 1, 3, 7, 1], np.uint64)) == 3
    assert count_distinct_rows(np.zeros((0, 1), np.uint64)) == 0


@pytest.mark.parametrize(
    ("samples", "units"),
    [
        (2, 1),
        (5, 13),
        (8, 8),
        (16, 21504),
        (31, 4099),
        (32, 40960),
        (33, 77),
        (64, 9),
        (70, 1001),
        (129, 300),
    ],
)
def test_sample_rows_by_bit_transpose_equal_packing_b_along_the_units(
    samples: int, units: int
) -> None:
    """The per-sample V-bit rows (what NWOT and the standard patterns read) are B's rows packed
    little-endian into words, whatever S and V (not multiples of 8 or 64), with duplicates."""
    rng = np.random.default_rng(samples * 1000 + units)
    b = rng.random((samples, units)) < rng.uniform(0.05, 0.95)
    b[:, units // 2 :] = b[:, : units - units // 2]  # duplicate units
    b[-1] = b[0]  # a duplicate sample
    patterns = matrix(b)
    packed = np.packbits(b, axis=1, bitorder="little")  # oracle: numpy's own packing of B
    width = words_for(units) * 8
    want = np.zeros((samples, width), np.uint8)
    want[:, : packed.shape[1]] = packed
    np.testing.assert_array_equal(patterns.sample_words(), want.view("<u8"))
    np.testing.assert_array_equal(transpose_bits(patterns.words, samples), want.view("<u8"))
    distinct_samples = np.unique(b, axis=0).shape[0]
    assert metrics.standard_activation_patterns(patterns) == distinct_samples
    found = metrics.scores(patterns)
    assert found.standard_ap == distinct_samples
    assert found.swap == np.unique(b.T, axis=0).shape[0]
    bf = b.astype(np.float64)
    kernel = bf @ bf.T + (1 - bf) @ (1 - bf).T
    np.testing.assert_array_equal(metrics.nwot_kernel(patterns), kernel)


def test_counting_32_bit_patterns_of_many_units() -> None:
    """V > 4096 and 22 < S ≤ 32: counted on 32-bit values; exact against numpy's unique."""
    rng = np.random.default_rng(11)
    for samples in (23, 32):
        b = rng.random((samples, 9000)) < 0.5
        b[:, 4500:] = b[:, :4500]  # every pattern twice
        b[:, 100:200] = True  # and one a hundred times
        patterns = matrix(b)
        assert count_distinct_rows(patterns.words) == np.unique(b.T, axis=0).shape[0]


def test_pack_sample_bits_treats_positive_floats_as_active() -> None:
    values = np.array([[0.5, 0.0, -1.0], [0.0, 2.0, 1e-30]], np.float32)  # S = 2, V = 3
    words = pack_sample_bits(values)
    # unit 0: sample 0 only -> 0b01; unit 1: sample 1 only -> 0b10; unit 2: sample 1 -> 0b10
    np.testing.assert_array_equal(words[:, 0], np.array([1, 2, 2], np.uint64))


def test_layers_offsets_and_layer_views() -> None:
    rng = np.random.default_rng(3)
    first = rng.random((5, 2, 3)) < 0.5  # 6 units
    second = rng.random((5, 4)) < 0.5  # 4 units
    patterns = PatternMatrix.from_layers([("a", "Relu", first), ("b", "Clip", second)])
    assert patterns.units == 10
    assert patterns.layers == (
        LayerInfo("a", "Relu", (2, 3), 0, 6),
        LayerInfo("b", "Clip", (4,), 6, 4),
    )
    np.testing.assert_array_equal(patterns.layer("b").to_bool(), second)
    np.testing.assert_array_equal(patterns.layer("a").to_bool(), first.reshape(5, 6))
    with pytest.raises(KeyError):
        patterns.layer("c")
    with pytest.raises(ValueError, match="samples"):
        PatternMatrix.from_layers([("a", "Relu", first), ("b", "Relu", second[:4])])
    with pytest.raises(ValueError, match="shape"):
        PatternMatrix(np.zeros((3, 2), np.uint64), samples=64)


# --- regularisation -------------------------------------------------------------------
def test_regularisation_factor_by_hand() -> None:
    assert metrics.regularisation_factor(2.5, 2.5, 0.7) == 1.0  # Θ = μ
    assert metrics.regularisation_factor(3.0, 2.0, 1.0) == pytest.approx(math.exp(-1))
    assert metrics.regularisation_factor(1.0, 2.0, 1.0) == pytest.approx(math.exp(-1))
    # (Θ − μ)² / σ = 4 / 2 = 2
    assert metrics.regularisation_factor(0.5, 2.5, 2.0) == pytest.approx(math.exp(-2))
    # the exponent divides by σ, not σ²: (1)² / 0.5 = 2
    assert metrics.regularisation_factor(1.5, 0.5, 0.5) == pytest.approx(math.exp(-2))


def test_size_units_and_regularised_swap() -> None:
    assert metrics.parameters_in_unit(2500, "K") == 2.5
    assert metrics.parameters_in_unit(1_531_546, "M") == pytest.approx(1.531546)
    # Θ = 1.5 M = μ: no penalty.
    assert metrics.regularised_swap(100.0, 1_500_000, 1.5, 1.5, "M") == pytest.approx(100.0)
    # Θ = 5.67 K, μ = 4.67, σ = 1: factor e^-1.
    assert metrics.regularised_swap(100.0, 5670, 4.67, 1.0, "K") == pytest.approx(
        100 * math.exp(-1)
    )
    # the same count in the other unit is a different Θ: 0.00567 M, far from μ = 4.67
    assert metrics.regularised_swap(100.0, 5670, 4.67, 1.0, "M") == pytest.approx(
        100 * math.exp(-((0.00567 - 4.67) ** 2))
    )
    with pytest.raises(SettingsError):
        metrics.parameters_in_unit(10, "G")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mu", "sigma"),
    [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0), (1.0, -1.0), (math.nan, 1.0), (1.0, math.inf)],
)
def test_non_positive_mu_or_sigma_is_a_settings_error(mu: float, sigma: float) -> None:
    with pytest.raises(SettingsError):
        metrics.regularisation_factor(1.0, mu, sigma)
    with pytest.raises(SettingsError):
        metrics.regularised_swap(10.0, 1000, mu, sigma, "K")


# --- saturation -----------------------------------------------------------------------
def test_saturation() -> None:
    assert metrics.saturation(4, 6, 2) == 1.0  # bound min(6, 2²) = 4
    assert metrics.saturation(3, 6, 4) == 0.5  # bound min(6, 16) = 6
    assert metrics.saturation(8, 100, 3) == 1.0  # bound 2³ = 8
    assert metrics.saturation(10, 100, 100) == pytest.approx(0.1)  # 2^100 > V: bound V
    assert metrics.saturation(10, 40, 64) == pytest.approx(0.25)
    assert metrics.saturation(0, 0, 16) == 0.0


@pytest.mark.parametrize(("samples", "words"), [(2, 1), (16, 336), (17, 3), (32, 700)])
def test_hamming_distances_are_the_bit_counts(samples: int, words: int) -> None:
    rng = np.random.default_rng(samples + words)
    rows = rng.integers(0, 2**63, size=(samples, words), dtype=np.uint64)
    rows[-1] = rows[0]  # a pair at distance 0
    bits = np.unpackbits(rows.view(np.uint8), axis=1).astype(np.int64)
    want = (bits[:, None, :] != bits[None, :, :]).sum(axis=2).astype(np.float64)
    found = metrics.hamming_matrix(rows)
    assert found.dtype == np.float64
    np.testing.assert_array_equal(found, want)


def test_scores_of_many_matrices_are_each_ones_scores() -> None:
    """The repeats' scores counted together equal those counted one by one, bit for bit
    (NWOT's log-determinants included), with matrices of two shapes interleaved."""
    rng = np.random.default_rng(5)
    mats = []
    for index in range(9):
        units = 300 if index % 3 else 200
        b = rng.random((16, units)) < rng.uniform(0.1, 0.9)
        if index == 4:
            b[3] = b[1]  # two equal samples: a singular-free but duplicated kernel row
        mats.append(matrix(b))
    together = metrics.scores_many(mats)
    for m, found in zip(mats, together, strict=True):
        b = m.to_bool()
        bf = b.astype(np.float64)
        sign, logdet = np.linalg.slogdet(bf @ bf.T + (1 - bf) @ (1 - bf).T)  # the kernel by hand
        assert found.swap == np.unique(b.T, axis=0).shape[0]
        assert found.standard_ap == np.unique(b, axis=0).shape[0]
        assert found.nwot == (float(logdet) if sign != 0 else float("-inf"))
        assert found == metrics.scores(m)
    assert [f.swap for f in metrics.scores_many(mats, baselines=False)] == [
        f.swap for f in together
    ]
