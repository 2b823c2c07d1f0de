"""ZiCo and L-SWAG from per-layer gradient statistics across mini-batches (numpy only).

A labelled backward pass at initialisation (:mod:`swapprobe.capture.gradients`) hands over,
per weight layer, the gradient of the task loss with respect to each weight on each of B ≥ 2
mini-batches: an array ``g`` of shape (B, W). :func:`layer_gradient_stats` reduces it to a
few floats (:class:`LayerGradientStats`) from which every score here is recomputed exactly,
so a store need not keep gradients.

**ZiCo** (Li et al., "ZiCo: Zero-shot NAS via inverse Coefficient of Variation on
Gradients", ICLR 2023, Eq. 7; repository SLDGroup/ZiCo, ``compute_zico.py``, read, not copied):

    ZiCo = Σ_l log( Σ_{w ∈ θ_l} E_i[|g_{i,w}|] / sqrt(Var_i[g_{i,w}]) )

with the mean of the *absolute* gradient in the numerator and the standard deviation of the
gradient itself (not of |g|) in the denominator, both over the mini-batches i (population
moments: ``np.std`` with ddof = 0, as the authors' code). Weights whose gradient has zero
standard deviation across the batches are left out of the layer's sum, and a layer whose sum
is 0 (e.g. every weight zero-std) contributes nothing, as in the authors' code. Layers are
conv and linear weights (biases and norm parameters excluded), as in the authors' code.

**Λ of L-SWAG** (Casarin, Escalera, Lanz, CVPR 2025, arXiv 2505.07300; SPEC "L-SWAG and
LIBRA"): ZiCo's term with the numerator replaced by 1 and the variance taken of |g|,

    Λ = Σ_{l = l̂}^{L̂} log( Σ_{w ∈ θ_l} 1 / sqrt(Var_i |∂L(X_i, y_i)/∂w|) )

over a layer interval [l̂, L̂] (:mod:`swapprobe.proxies.interval` chooses it). Zero-variance
weights (1/0) are left out and an empty layer contributes nothing, the same convention as
ZiCo's, since the paper derives Λ from ZiCo.

**Ψ of L-SWAG**: SWAP over the activation layers 1..L̂, the number of distinct S-bit patterns
among the units of those layers (:func:`interval_swap`).

**L-SWAG = Λ × Ψ** (:func:`lswag`). The product is taken as written. Negative Λ is not
treated specially: a layer term is negative only when Σ_w 1/σ_w < 1, i.e. every weight's
|gradient| varies by more than the layer has weights, which real networks at initialisation
do not show (gradients of order 1e-3 over thousands of weights give terms near +10 each); a
negative Λ would invert Ψ's order, and :func:`lswag` returns the product regardless so that
the caller sees it. (We could not read in the paper whether it clips Λ; we do not.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from swapprobe.errors import SettingsError
from swapprobe.patterns import PatternMatrix, count_distinct_rows

__all__ = [
    "LayerGradientStats",
    "check_interval",
    "gradient_proxy_values",
    "interval_swap",
    "layer_gradient_stats",
    "lswag",
    "lswag_lambda",
    "psi_by_bin",
    "zico",
]


@dataclass(frozen=True)
class LayerGradientStats:
    """One weight layer's gradient statistics over B mini-batches: a few floats, store-sized.

    Attributes:
        name: the layer's module path (torch) or any label.
        weights: W, the number of weights in the layer.
        batches: B, the number of mini-batches the moments are over.
        zico_sum: Σ_w mean_i|g_w| / std_i(g_w) over the weights with std_i(g_w) > 0 (ZiCo).
        zico_weights: how many weights entered ``zico_sum``.
        inv_std_sum: Σ_w 1 / sqrt(Var_i|g_w|) over the weights with Var_i|g_w| > 0 (Λ).
        inv_std_weights: how many weights entered ``inv_std_sum``.
        std_mean: mean over all W weights of sqrt(Var_i|g_w|), the layer's σ statistic that
            the interval rule bins by depth.
        abs_mean: mean over all W weights and batches of |g|.
    """

    name: str
    weights: int
    batches: int
    zico_sum: float
    zico_weights: int
    inv_std_sum: float
    inv_std_weights: int
    std_mean: float
    abs_mean: float


def layer_gradient_stats(name: str, gradients: np.ndarray) -> LayerGradientStats:
    """Reduce one layer's per-batch gradients, shape (B, ...) with B ≥ 2, to its statistics.

    Moments are computed in float64 (population moments, ddof = 0). B identical values give
    a variance of exactly 0, so "zero" needs no tolerance: a float64 sum of a few float32
    values is exact and its quotient by B is correctly rounded.
    """
    g = np.asarray(gradients, dtype=np.float64)
    if g.ndim < 1 or g.shape[0] < 2:
        raise SettingsError(
            f"layer {name!r}: gradient statistics need at least 2 mini-batches, "
            f"got {g.shape[0] if g.ndim else 0}"
        )
    g = g.reshape(g.shape[0], -1)
    absolute = np.abs(g)
    abs_mean = absolute.mean(axis=0)
    std = g.std(axis=0)
    std_abs = absolute.std(axis=0)
    nonzero = std > 0
    positive = std_abs > 0
    return LayerGradientStats(
        name=name,
        weights=int(g.shape[1]),
        batches=int(g.shape[0]),
        zico_sum=float(np.sum(abs_mean[nonzero] / std[nonzero])),
        zico_weights=int(np.count_nonzero(nonzero)),
        inv_std_sum=float(np.sum(1.0 / std_abs[positive])),
        inv_std_weights=int(np.count_nonzero(positive)),
        std_mean=float(std_abs.mean()) if g.shape[1] else 0.0,
        abs_mean=float(absolute.mean()) if g.shape[1] else 0.0,
    )


def _log_terms(values: Sequence[float]) -> float:
    """Σ log(v) over the positive v (a zero sum contributes nothing, as in ZiCo's code)."""
    return float(sum(math.log(v) for v in values if v > 0))


def zico(layers: Sequence[LayerGradientStats]) -> float:
    """ZiCo = Σ_l log(Σ_w mean|g_w| / std(g_w)) over all layers (module docstring)."""
    return _log_terms([layer.zico_sum for layer in layers])


def lswag_lambda(
    layers: Sequence[LayerGradientStats], start: int = 0, stop: int | None = None
) -> float:
    """Λ over the weight layers ``layers[start:stop]``: Σ_l log(Σ_w 1/sqrt(Var_i|g_w|)).

    ``start``/``stop`` follow Python's slice rule (0-based, ``stop`` excluded), so the
    paper's [l̂, L̂] (1-based, inclusive) is ``start = l̂ − 1, stop = L̂``.
    """
    return _log_terms([layer.inv_std_sum for layer in layers[start:stop]])


def interval_swap(patterns: PatternMatrix, start: int = 0, stop: int | None = None) -> int:
    """SWAP over the activation layers ``patterns.layers[start:stop]`` (slice rule).

    The distinct S-bit patterns among the units of those layers together; with the whole
    range it equals :func:`swapprobe.metrics.swap`. L-SWAG's Ψ is ``start = 0, stop = L̂``.
    """
    chosen = patterns.layers[start:stop]
    if not chosen:
        return 0
    first, last = chosen[0], chosen[-1]
    if first.offset + sum(info.size for info in chosen) != last.offset + last.size:
        raise SettingsError("the pattern matrix's layers are not contiguous in the given order")
    return count_distinct_rows(patterns.words[first.offset : last.offset + last.size])


def lswag(lambda_value: float, psi_value: float) -> float:
    """L-SWAG = Λ × Ψ, the product as written (a negative Λ is not clipped; see the module)."""
    return float(lambda_value) * float(psi_value)


def psi_by_bin(patterns: PatternMatrix, bins: int | None = None) -> np.ndarray:
    """Ψ for every last depth bin b = 0..bins−1: SWAP over the activation layers whose bin is at
    most b (:meth:`~swapprobe.proxies.interval.LayerInterval.psi_stop`). Ten counts of one
    pattern matrix, kept so that L-SWAG is recomputed for any interval without the patterns."""
    from swapprobe.proxies.interval import DEPTH_BINS, LayerInterval

    bins = DEPTH_BINS if bins is None else bins
    count = len(patterns.layers)
    return np.array(
        [
            interval_swap(patterns, 0, LayerInterval(0, b, bins).psi_stop(count))
            for b in range(bins)
        ],
        dtype=np.float64,
    )


def check_interval(interval: tuple[int, int]) -> tuple[int, int]:
    """Refuse an interval that is not depth bins ``0 ≤ first ≤ last < DEPTH_BINS``."""
    from swapprobe.proxies.interval import DEPTH_BINS

    first, last = (int(v) for v in interval)
    if not 0 <= first <= last < DEPTH_BINS:
        raise SettingsError(
            f"interval {first}:{last} must be depth bins with 0 ≤ first ≤ last < {DEPTH_BINS}"
        )
    return first, last


def gradient_proxy_values(
    names: Sequence[str],
    layers: Sequence[LayerGradientStats],
    *,
    psi: np.ndarray | None = None,
    eigenvalues: np.ndarray | None = None,
    interval: tuple[int, int] | None = None,
) -> dict[str, float]:
    """The gradient-pass proxies ``names`` (of ``zico``, ``lswag``, ``lswag-lambda``,
    ``lswag-psi``, ``vkdnw``) from what a store keeps: the per-layer statistics, Ψ per last
    depth bin (:func:`psi_by_bin`), the Fisher eigenvalues, and the depth-bin interval
    ``(first, last)`` (None: the whole depth). The one place these values are computed, for a
    run and for a rescore alike."""
    from swapprobe.proxies.interval import DEPTH_BINS, LayerInterval
    from swapprobe.proxies.vkdnw import vkdnw

    first, last = check_interval(interval) if interval is not None else (0, DEPTH_BINS - 1)
    chosen = LayerInterval(first, last)
    start, stop = chosen.layer_slice(len(layers))
    values: dict[str, float] = {}
    lam = lswag_lambda(layers, start, stop)
    for name in names:
        if name == "zico":
            values[name] = zico(layers)
        elif name == "lswag-lambda":
            values[name] = lam
        elif name in ("lswag", "lswag-psi"):
            if psi is None:
                raise SettingsError(f"{name} needs Ψ from the first repeat's patterns")
            psi_value = float(psi[last])
            values[name] = psi_value if name == "lswag-psi" else lswag(lam, psi_value)
        elif name == "vkdnw":
            if eigenvalues is None:
                raise SettingsError("vkdnw needs the Fisher eigenvalues of the gradient pass")
            values[name] = vkdnw(eigenvalues)
        else:
            raise SettingsError(f"{name!r} is not a gradient-pass proxy")
    return values
