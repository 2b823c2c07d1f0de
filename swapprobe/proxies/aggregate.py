"""AZ-NAS's rank aggregate: Σ_k log(rank_k / N) over the N candidates compared.

Source: AZ-NAS (CVPR 2024, cvlab-yonsei/AZ-NAS), which found this non-linear sum of ranks
clearly better than a plain sum: a candidate that is bad on any one proxy is pulled far down
(log of a small rank), while being best on one proxy adds at most 0. The value of a candidate
depends on the set it is ranked in, so aggregates of different sets are not comparable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = ["aggregate", "ascending_ranks"]


def ascending_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..N, the biggest value ranked N, ties averaged (``scipy.stats.rankdata``).

    NaN is treated as −inf (a proxy that could not be computed ranks last), so every
    candidate gets a rank.
    """
    arr = np.asarray(values, dtype=np.float64).copy()
    arr[np.isnan(arr)] = -np.inf
    return stats.rankdata(arr, method="average")


def aggregate(proxies: Mapping[str, Sequence[float] | np.ndarray]) -> np.ndarray:
    """Σ_k log(rank_k / N) per candidate; every proxy oriented bigger-is-better.

    Args:
        proxies: name → one value per candidate (all the same length N ≥ 1).

    Returns:
        One aggregate per candidate, ≤ 0, bigger is better (0 = best on every proxy).
    """
    if not proxies:
        raise ValueError("aggregate needs at least one proxy")
    columns = [np.asarray(v, dtype=np.float64) for v in proxies.values()]
    n = len(columns[0])
    if n == 0 or any(len(c) != n for c in columns):
        raise ValueError("every proxy needs one value per candidate, all of the same length")
    total = np.zeros(n)
    for column in columns:
        total += np.log(ascending_ranks(column) / n)
    return total
