"""Top-weighted measures of a proxy's ranking: nDCG (VKDNW's) beside top-k mean accuracy.

A search keeps only the top of a ranking, and Spearman's ρ and Kendall's τ weigh every pair
of architectures alike. VKDNW (Týbl and Neumann, CVPR 2025, arXiv 2502.04975) proposes the
normalised discounted cumulative gain (Järvelin and Kekäläinen, 2002) for proxies:

    DCG_P  = Σ_{j=1}^{P} (2^{a_(j)} − 1) / log2(j + 1)
    nDCG_P = DCG_P / IDCG_P

a_(j) the accuracy of the architecture the proxy ranks j-th (highest score first), IDCG_P the
same sum with the architectures ordered by accuracy itself, so nDCG_P ∈ [0, 1] and 1 means the
proxy's top P is the true top P in the true order. The gain is exponential in the accuracy
**in percent** as the tables store it, so one point of accuracy doubles an architecture's
weight: nDCG is steeply top-weighted, which is what a search needs. (The exponential gain
is the standard form; the paper's text was not reachable from here, and its code has no nDCG,
so the unit of a is our reading: in fractions the gain would be nearly linear and every
ranking would score close to 1.) The gains are computed relative to 2^{max a}, which cancels
in the ratio and keeps 2^{94} out of floating point.

:func:`swapprobe.proxies.selection.top_k_mean` is the other top-weighted figure (mean accuracy
of the k highest-scored rows); it stays where it is and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from swapprobe.errors import SettingsError
from swapprobe.proxies.selection import top_k_mean

__all__ = ["ndcg", "top_k_mean"]


def _descending(values: np.ndarray) -> np.ndarray:
    """Row order by value, highest first, NaN last, ties by row order."""
    v = np.where(np.isnan(values), -np.inf, values)
    return np.argsort(-v, kind="stable")


def ndcg(
    score: Sequence[float] | np.ndarray, accuracy: Sequence[float] | np.ndarray, k: int
) -> float:
    """nDCG_k of the ranking by ``score`` against ``accuracy`` (percent), module docstring."""
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if s.shape != a.shape or s.ndim != 1:
        raise SettingsError(f"score {s.shape} and accuracy {a.shape} must be equal 1-D shapes")
    if not np.all(np.isfinite(a)):
        raise SettingsError("accuracies must be finite for nDCG")
    if not 1 <= k <= len(a):
        raise SettingsError(f"nDCG's k must be in 1..{len(a)}, got {k}")
    top = a.max()
    gains = np.exp2(a - top) - np.exp2(-top)  # (2^a − 1) / 2^top
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(np.sum(gains[_descending(s)[:k]] * discounts))
    ideal = float(np.sum(np.sort(gains)[::-1][:k] * discounts))
    return dcg / ideal if ideal > 0 else float("nan")
