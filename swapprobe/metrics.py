"""Scores computed from activation patterns: pure functions of patterns and numbers.

Nothing here runs a model or touches a file; every function is exact and easy to test on
hand-made matrices. Definitions follow SPEC.md (SWAP-NAS, ICLR 2024; NWOT, Mellor et al. 2021).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from swapprobe.errors import SettingsError
from swapprobe.patterns import PatternMatrix

__all__ = [
    "SIZE_UNITS",
    "Scores",
    "hamming_matrices",
    "hamming_matrix",
    "nwot",
    "nwot_kernel",
    "parameters_in_unit",
    "regularisation_factor",
    "regularised_swap",
    "saturation",
    "scores",
    "scores_many",
    "standard_activation_patterns",
    "swap",
]

SizeUnit = Literal["K", "M"]
#: parameters per unit: Θ is "thousands" for tiny scoring cells and "millions" for full networks
SIZE_UNITS: dict[str, float] = {"K": 1e3, "M": 1e6}


def swap(patterns: PatternMatrix) -> int:
    """SWAP-Score Ψ: the number of distinct sample-wise (S-bit) patterns over all V units."""
    return patterns.distinct_unit_patterns()


def standard_activation_patterns(patterns: PatternMatrix) -> int:
    """|A|: the number of distinct per-sample (V-bit) patterns; at most S, the paper's baseline."""
    return patterns.distinct_sample_patterns()


def saturation(swap_score: float, units: int, samples: int) -> float:
    """Ψ / min(V, 2^S): how close the score is to its upper bound (1.0 = saturated)."""
    bound = units if samples >= 63 else min(units, 1 << samples)
    return float(swap_score) / bound if bound else 0.0


def parameters_in_unit(param_count: Any, unit: SizeUnit | str) -> Any:
    """Θ expressed in the unit the regularisation is defined in (``"K"`` or ``"M"``); a count
    or an array of counts."""
    try:
        scale = SIZE_UNITS[unit]
    except KeyError:
        raise SettingsError(f"unknown size unit {unit!r}: use K or M") from None
    if np.ndim(param_count):
        return np.asarray(param_count, dtype=float) / scale
    return param_count / scale


def regularisation_factor(theta: Any, mu: float, sigma: float) -> Any:
    """f(Θ) = exp(−(Θ − μ)² / σ), with Θ, μ and σ in the same size unit (the one place the
    formula lives). ``theta`` may be a number (a float comes back) or an array (an array).

    Raises:
        SettingsError: if μ or σ is not a positive finite number.
    """
    for label, value in (("mu", mu), ("sigma", sigma)):
        if not (math.isfinite(value) and value > 0):
            raise SettingsError(f"{label} must be a positive number, got {value}")
    if np.ndim(theta):
        return np.exp(-((np.asarray(theta, dtype=float) - mu) ** 2) / sigma)
    return math.exp(-((float(theta) - mu) ** 2) / sigma)


def regularised_swap(
    swap_score: float, param_count: int, mu: float, sigma: float, unit: SizeUnit
) -> float:
    """Ψ' = Ψ · f(Θ) with Θ = ``param_count`` converted to ``unit``."""
    return swap_score * regularisation_factor(parameters_in_unit(param_count, unit), mu, sigma)


def nwot_kernel(patterns: PatternMatrix) -> np.ndarray:
    """K = B·Bᵀ + (1−B)·(1−B)ᵀ (S×S): the number of units on which two samples agree."""
    return patterns.units - hamming_matrix(patterns.sample_words())


def hamming_matrix(rows: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances (float64, exact) of packed rows ``(S, words)``."""
    return hamming_matrices(rows[None])[0]


def hamming_matrices(rows: np.ndarray) -> np.ndarray:
    """:func:`hamming_matrix` of each of a stack of packed rows ``(R, S, words)`` → ``(R, S, S)``:
    one loop over the samples for all R (a score's repeats), not one per repeat."""
    stack, samples = rows.shape[:2]
    distance = np.zeros((stack, samples, samples), dtype=np.float64)
    for i in range(samples - 1):
        differ = np.bitwise_count(rows[:, i + 1 :] ^ rows[:, i, None]).sum(axis=2, dtype=np.int64)
        distance[:, i, i + 1 :] = differ
        distance[:, i + 1 :, i] = differ
    return distance


def nwot(patterns: PatternMatrix) -> float:
    """NWOT score: log|det K| of :func:`nwot_kernel` (−inf when K is singular)."""
    return _logdet(nwot_kernel(patterns))


def _logdet(kernel: np.ndarray) -> float:
    sign, logdet = np.linalg.slogdet(kernel)
    return float(logdet) if sign != 0 else float("-inf")


@dataclass(frozen=True)
class Scores:
    """SWAP and the baselines of one pattern matrix, computed from one pass of distinct-ing."""

    swap: int
    standard_ap: int | None
    nwot: float | None


def scores(patterns: PatternMatrix, *, baselines: bool = True) -> Scores:
    """All scores at once; the baselines share one pass over the per-sample bit rows."""
    return scores_many([patterns], baselines=baselines)[0]


def scores_many(matrices: Sequence[PatternMatrix], *, baselines: bool = True) -> list[Scores]:
    """:func:`scores` of each matrix (a score's repeats). Matrices of one shape share the
    baselines' passes: one Hamming loop and one batched log-determinant for all (numpy's
    ``slogdet`` factorises each matrix of a stack as it does a single one, so the numbers are
    the same). A modest saving, measured interleaved in one process: 32 repeats of a DARTS
    cell (V = 21504, S = 16) 26.7 → 24.8 ms."""
    if not baselines:
        return [Scores(swap(m), None, None) for m in matrices]
    found: list[Scores] = []
    start = 0
    while start < len(matrices):  # runs of matrices of one shape
        first = matrices[start]
        end = start + 1
        while end < len(matrices) and (
            matrices[end].samples == first.samples and matrices[end].units == first.units
        ):
            end += 1
        group = matrices[start:end]
        rows = np.stack([m.sample_words() for m in group])
        distance = hamming_matrices(rows)
        # Two samples have the same V-bit pattern iff their Hamming distance is 0.
        duplicate_of_earlier = np.tril(distance == 0, k=-1).any(axis=2)
        standard = rows.shape[1] - np.count_nonzero(duplicate_of_earlier, axis=1)
        signs, logdets = np.linalg.slogdet(first.units - distance)
        for m, count, sign, logdet in zip(group, standard, signs, logdets, strict=True):
            nwot_value = float(logdet) if sign != 0 else float("-inf")
            found.append(Scores(swap(m), int(count), nwot_value))
        start = end
    return found
