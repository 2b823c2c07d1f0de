"""AZ-NAS's rank aggregate: Σ_k log(rank_k / N) over the N candidates compared.

Source: AZ-NAS (CVPR 2024, cvlab-yonsei/AZ-NAS), which found this non-linear sum of ranks
clearly better than a plain sum: a candidate that is bad on any one proxy is pulled far down
(log of a small rank), while being best on one proxy adds at most 0. The value of a candidate
depends on the set it is ranked in, so aggregates of different sets are not comparable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from swapprobe.results import Result

__all__ = ["aggregate", "aggregate_results", "ascending_ranks", "set_aggregates"]


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


def aggregate_results(results: Sequence[Result], proxies: Sequence[str]) -> np.ndarray:
    """The aggregate of SWAP (regularised SWAP when the results carry μ and σ) and the named
    proxies (see :meth:`~swapprobe.results.Result.proxy`) over ``results``, the candidates
    being compared; a proxy a result lacks ranks it last on that proxy."""
    columns: dict[str, list[float]] = {
        "swap": [r.swap if r.reg_swap is None else r.reg_swap for r in results]
    }
    for name in proxies:
        values = [r.proxy(name) for r in results]
        columns[name] = [math.nan if v is None else float(v) for v in values]
    return aggregate(columns)


def set_aggregates(results: Sequence[Result], proxies: Sequence[str]) -> None:
    """Give every result its :attr:`~swapprobe.results.Result.aggregate` among ``results``
    (nothing to do without proxies: SWAP alone is then the ranking)."""
    if not proxies or not results:
        return
    for result, value in zip(results, aggregate_results(results, proxies), strict=True):
        result.aggregate = float(value)
